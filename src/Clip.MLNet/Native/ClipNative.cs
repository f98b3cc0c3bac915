using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Clip.MLNet.Native;

namespace Clip.MLNet;

/// <summary>
/// Loads TorchSharp's native library for Clip.MLNet, with no setup step: on Linux it loads the libtorch of TorchSharp's
/// own packages by full path (never a system libtorch on the library path), and where the system's libstdc++ is older
/// than the one TorchSharp's library names for a marker symbol (Debian 12, Ubuntu 22.04), it loads a private copy
/// with that requirement marked weak, kept in a per-user cache (<c>CLIP_MLNET_NATIVE_CACHE</c>, default
/// <c>~/.cache/clip-mlnet/native</c>). Nothing in the NuGet cache or the application's folder is changed.
/// </summary>
/// <remarks>
/// Clip.MLNet does this by itself when the assembly is first used. Code that uses TorchSharp directly before any
/// Clip.MLNet call (for example <c>torch.ones(...)</c> in a notebook's first cell) should call
/// <see cref="Initialize"/> first: once TorchSharp has loaded its native library, nothing can change which one it uses.
/// </remarks>
public static class ClipNative
{
    private static readonly Lazy<Outcome> Result = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed record Outcome(string Description, Exception? Error);

    /// <summary>
    /// Loads TorchSharp's native library if that has not happened yet; safe to call often and from several threads.
    /// </summary>
    /// <exception cref="ClipNativeLibraryException">The library cannot be loaded here; the message says why and what to do.</exception>
    public static void Initialize()
    {
        if (Result.Value.Error is { } error)
            throw new ClipNativeLibraryException(error.Message, error);
    }

    /// <summary>Where the native library was loaded from, after <see cref="Initialize"/>; the error message where it failed.</summary>
    public static string Description => Result.Value.Error?.Message ?? Result.Value.Description;

    private static Outcome Load()
    {
        try
        {
            return new Outcome(TorchSharpNativeLoader.Load().Description, null);
        }
        catch (Exception e) when (e is ClipNativeLibraryException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return new Outcome("", e);
        }
    }

    /// <summary>
    /// Runs when Clip.MLNet is first used, before any of its code can touch TorchSharp: loading later would be too late
    /// in every host (apps, tests, notebooks). Failures are kept and thrown, with their message, by the entry points.
    /// </summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "The native library must be chosen before TorchSharp's first use, whatever the host.")]
    internal static void OnAssemblyLoad() => _ = Result.Value;
}
