using Clip.MLNet.Weights;

namespace Clip.MLNet.Cli;

/// <summary>A problem with what the user gave the command (a file, a flag value); exits with <see cref="ExitCodes.BadInput"/>.</summary>
internal sealed class CliInputException(string message, Exception? inner = null) : Exception(message, inner);

internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad input: a missing or damaged file, a wrong flag value.</summary>
    public const int BadInput = 2;
    /// <summary>TorchSharp's native library cannot be loaded on this system: EX_UNAVAILABLE.</summary>
    public const int Unavailable = 69;
    /// <summary>A cluster job that cannot finish: some partitions failed on the workers (listed on stderr).</summary>
    public const int JobFailed = 4;
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
        catch (ClipNativeLibraryException e)
        {
            // TorchSharp's native library cannot load here: the message names the file and what to do.
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            if (verbose) Console.Error.WriteLine(e);
            return ExitCodes.Unavailable;
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

    // A row that cannot be read names its input: that is the user's data, not a bug of the tool.
    private static bool IsInputError(Exception e) => e is CliInputException or ClipCheckpointException or ClipImageException or Transforms.ClipRowException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UnauthorizedAccessException or IOException or ArgumentException
        or FormatException
        || (e.GetType().Namespace?.StartsWith("Clip.MLNet", StringComparison.Ordinal) == true && e is not InvalidOperationException);

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
