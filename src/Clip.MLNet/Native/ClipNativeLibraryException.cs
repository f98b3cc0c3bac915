namespace Clip.MLNet;

/// <summary>
/// TorchSharp's native library or the libtorch it needs cannot be loaded in this process. The message names the file,
/// what is wrong with it and what to do.
/// </summary>
public sealed class ClipNativeLibraryException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public ClipNativeLibraryException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and the failure underneath.</summary>
    public ClipNativeLibraryException(string message, Exception inner) : base(message, inner) { }
}
