namespace Clip.MLNet;

/// <summary>
/// An image that cannot be preprocessed: missing, empty, damaged, too large or in an unsupported
/// format. The message starts with the input's name (its path, or the name the caller gave) and
/// says what is wrong.
/// </summary>
public sealed class ClipImageException : IOException
{
    /// <summary>Creates the exception for <paramref name="input"/>; the message is prefixed with it.</summary>
    public ClipImageException(string input, string problem, Exception? inner = null)
        : base($"{input}: {problem}", inner)
    {
        Input = input;
        Problem = problem;
    }

    /// <summary>Creates the exception for item <paramref name="index"/> of a batch.</summary>
    public ClipImageException(int index, string input, string problem, Exception? inner = null)
        : base($"image {index} ({input}): {problem}", inner)
    {
        Input = input;
        Problem = problem;
        Index = index;
    }

    /// <summary>The path of the image, or the name given for bytes, streams and <c>MLImage</c>s.</summary>
    public string Input { get; }

    /// <summary>What is wrong with the input, without its name.</summary>
    public string Problem { get; }

    /// <summary>The zero-based position of the input in a batch, when it came from one.</summary>
    public int? Index { get; }
}
