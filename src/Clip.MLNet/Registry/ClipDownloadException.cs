namespace Clip.MLNet;

/// <summary>Why a pretrained file could not be had.</summary>
public enum ClipDownloadFailure
{
    /// <summary>Offline mode is on and the file is not in the cache.</summary>
    Offline,
    /// <summary>The server could not be reached, or the transfer kept failing.</summary>
    Unreachable,
    /// <summary>The server answered with an error status (404 and the like).</summary>
    HttpError,
    /// <summary>The file's SHA-256 is not the expected one; the file was set aside, not used.</summary>
    HashMismatch,
    /// <summary>The cache's disk has no room for the file.</summary>
    DiskFull,
}

/// <summary>A pretrained model's file could not be downloaded or verified; the message says what to do.</summary>
/// <param name="failure">What went wrong.</param>
/// <param name="message">What happened and what to do.</param>
/// <param name="url">The address of the file concerned.</param>
/// <param name="cachePath">Where the file belongs in the cache.</param>
/// <param name="inner">The exception that caused this one.</param>
public sealed class ClipDownloadException(ClipDownloadFailure failure, string message, Uri? url = null, string? cachePath = null, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>What went wrong.</summary>
    public ClipDownloadFailure Failure { get; } = failure;

    /// <summary>The address of the file concerned.</summary>
    public Uri? Url { get; } = url;

    /// <summary>Where the file belongs in the cache (where it may be placed by hand).</summary>
    public string? CachePath { get; } = cachePath;

    /// <summary>For <see cref="ClipDownloadFailure.HashMismatch"/>: where the refused file was set aside.</summary>
    public string? RejectedPath { get; init; }
}

/// <summary>A name that is neither a registered model nor (where paths are accepted) an existing file or folder.</summary>
public sealed class ClipUnknownModelException : ArgumentException
{
    /// <summary>Creates the exception; the message names the closest registered names.</summary>
    public ClipUnknownModelException(string name, IReadOnlyList<string> closestNames, string? prefix = null)
        : base(Describe(name, closestNames, prefix))
    {
        Name = name;
        ClosestNames = closestNames;
    }

    /// <summary>The name that was asked for.</summary>
    public string Name { get; }

    /// <summary>The registered names closest to it, best first.</summary>
    public IReadOnlyList<string> ClosestNames { get; }

    private static string Describe(string name, IReadOnlyList<string> closest, string? prefix) =>
        (prefix ?? $"'{name}' is not a registered model name")
        + (closest.Count > 0 ? $" (closest: {string.Join(", ", closest)})" : "");
}
