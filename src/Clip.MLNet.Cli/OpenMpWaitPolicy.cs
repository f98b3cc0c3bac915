using System.Runtime.InteropServices;

namespace Clip.MLNet.Cli;

/// <summary>
/// The tool's default for libtorch's OpenMP threads: PASSIVE (idle threads sleep) unless the user set
/// OMP_WAIT_POLICY. The tool decodes and preprocesses images on threads of its own beside libtorch's; with the
/// OpenMP default, idle libtorch threads spin and take the cores that preprocessing needs. Measured with
/// `clip bench --images` (ViT-B/32, batch 32, 2 cores): ClipImageEmbedding over JPEGs 0.90 -> 0.95 of the image
/// tower alone in fp32 and 0.83 -> 0.93 in bf16, the tower alone 1-3% slower.
/// </summary>
internal static class OpenMpWaitPolicy
{
    public const string Variable = "OMP_WAIT_POLICY";

    /// <summary>What the tool runs with: the user's value, or PASSIVE set by <see cref="ApplyDefault"/>.</summary>
    public static string Current { get; private set; } = Environment.GetEnvironmentVariable(Variable) ?? "(OpenMP default)";

    /// <summary>Sets PASSIVE in the native environment before libtorch (and so libgomp) loads; a no-op where the user chose.</summary>
    public static void ApplyDefault()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } chosen)
        {
            Current = chosen;
            return;
        }
        // .NET keeps its own copy of the environment on Unix: libgomp reads the C library's, so set that one.
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            try
            {
                if (setenv(Variable, "PASSIVE", 0) != 0) return;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return;
            }
        }
        Environment.SetEnvironmentVariable(Variable, "PASSIVE");
        Current = "PASSIVE";
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
