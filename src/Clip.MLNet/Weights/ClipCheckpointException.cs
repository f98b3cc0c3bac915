namespace Clip.MLNet.Weights;

/// <summary>A weight file or folder that cannot be loaded; the message names the file and what is wrong.</summary>
public sealed class ClipCheckpointException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>; the message is prefixed with the path.</summary>
    public ClipCheckpointException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        Path = path;
        Problem = problem;
    }

    /// <summary>The file or folder that failed to load.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it, without the path.</summary>
    public string Problem { get; }
}
