using System.Runtime.CompilerServices;

namespace Clip.MLNet.Tests.Support;

/// <summary>
/// Some tests use TorchSharp before any Clip.MLNet call; TorchSharp would then load its native library by itself
/// (and fail where the library's loader is needed). Initialise it first, as README tells applications to.
/// </summary>
internal static class TestAssemblyInitializer
{
    [ModuleInitializer]
    internal static void LoadNativeLibraryFirst()
    {
        if (Environment.GetEnvironmentVariable(ChildProcessEntry.RawNativeVariable) == "1") return;
        Initialize();
    }

    // Apart, so that compiling the check above does not touch Clip.MLNet (whose own initializer would then run).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Initialize()
    {
        try
        {
            ClipNative.Initialize();
        }
        catch (ClipNativeLibraryException)
        {
            // Thrown again, with its message, by the first test that loads a model.
        }
    }
}
