namespace Clip.MLNet.Performance;

/// <summary>The process's resident memory from /proc (Linux); zeros elsewhere.</summary>
internal static class ProcessMemory
{
    public static double ResidentMiB() => StatusKiB("VmRSS:") / 1024.0;

    public static double PeakResidentMiB() => StatusKiB("VmHWM:") / 1024.0;

    /// <summary>Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, where the kernel allows it.</summary>
    public static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException) { }
    }

    private static long StatusKiB(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(key.Length).Trim().ToString().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return 0;
    }
}
