namespace Clip.MLNet.Native;

/// <summary>The CPU's model name and feature flags from <c>/proc/cpuinfo</c> (first processor), read once; empty where it cannot be read.</summary>
internal static class CpuInfo
{
    private static readonly Lazy<(string Model, string[] Flags)> Info = new(Read);

    /// <summary>The <c>model name</c> line, or "unknown".</summary>
    public static string ModelName => Info.Value.Model;

    /// <summary>The <c>flags</c> line split into flags (avx512f, amx_tile, ...).</summary>
    public static IReadOnlyList<string> Flags => Info.Value.Flags;

    private static (string, string[]) Read()
    {
        string model = "unknown";
        string[]? flags = null;
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                {
                    if (model == "unknown" && line.StartsWith("model name", StringComparison.Ordinal)) model = line[(line.IndexOf(':') + 1)..].Trim();
                    else if (flags is null && line.StartsWith("flags", StringComparison.Ordinal))
                        flags = line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (model != "unknown" && flags is not null) break;
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return (model, flags ?? []);
    }
}
