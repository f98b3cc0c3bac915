using Clip.MLNet.Weights;

namespace Clip.MLNet.Cli;

/// <summary>A problem with what the user gave the command (a file, a flag value); exits with <see cref="ExitCodes.BadInput"/>.</summary>
internal sealed class CliInputException(string message, Exception? inner = null) : Exception(message, inner);

internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad input: a missing or damaged file, a wrong flag value.</summary>
    public const int BadInput = 2;
    /// <summary>Stopped by the user (Ctrl+C).</summary>
    public const int Cancelled = 3;
    /// <summary>An error inside the tool (a bug): EX_SOFTWARE.</summary>
    public const int Internal = 70;
}

/// <summary>Runs a command body and turns exceptions into one line on stderr and an exit code below 128.</summary>
internal static class CliRunner
{
    public static int Run(bool verbose, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsInputError(e))
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            if (verbose) Console.Error.WriteLine(e);
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (NeedsNativeFix(e))
        {
            // TorchSharp's native library on a libstdc++ older than GCC 13's: name the one command that fixes it.
            Console.Error.WriteLine($"error: TorchSharp's native library needs {ElfVersionNeed.GlibcxxVersion}, which this system's libstdc++ lacks; run 'clip fix-native' once, then try again");
            if (verbose) Console.Error.WriteLine(e);
            return ExitCodes.Internal;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return ExitCodes.Cancelled;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"internal error: {OneLine(e.Message)} (run with --verbose for details)");
            if (verbose) Console.Error.WriteLine(e);
            return ExitCodes.Internal;
        }
    }

    private static bool NeedsNativeFix(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is DllNotFoundException && x.Message.Contains(ElfVersionNeed.GlibcxxVersion, StringComparison.Ordinal)) return true;
            // When TorchSharp's `torch` class is the first thing touched, its loader swallows the loader's message and
            // throws from the type initializer instead: look at the tool's own copy and the system's libstdc++ directly.
            if (x is TypeInitializationException { TypeName: "TorchSharp.torch" } && OwnLibraryLacksGlibcxx()) return true;
        }
        return false;
    }

    private static bool OwnLibraryLacksGlibcxx()
    {
        try
        {
            var system = SystemLibstdcxx.Find();
            if (system is null || SystemLibstdcxx.Provides(system, ElfVersionNeed.GlibcxxVersion)) return false;
            var own = AppContext.BaseDirectory;
            foreach (var candidate in new[] { Path.Combine(own, "libLibTorchSharp.so"), Path.Combine(own, "runtimes", "linux-x64", "native", "libLibTorchSharp.so") })
                if (File.Exists(candidate) && ElfVersionNeed.Inspect(candidate) == ElfVersionNeedState.Required) return true;
            return false;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    // A row that cannot be read names its input: that is the user's data, not a bug of the tool.
    private static bool IsInputError(Exception e) => e is CliInputException or ClipCheckpointException or ClipImageException or Transforms.ClipRowException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UnauthorizedAccessException or IOException or ArgumentException
        or FormatException
        || (e.GetType().Namespace?.StartsWith("Clip.MLNet", StringComparison.Ordinal) == true && e is not InvalidOperationException);

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
