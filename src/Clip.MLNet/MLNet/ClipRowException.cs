namespace Clip.MLNet.Transforms;

/// <summary>A row whose input could not be processed; the message names the column, the row and, when known, the input.</summary>
public sealed class ClipRowException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public ClipRowException(string message, Exception? inner = null) : base(message, inner) { }
}
