using System.Runtime.InteropServices;

namespace Clip.MLNet.Native;

/// <summary>
/// Puts a finished file in place under its final name only if no other process put one there first, atomically.
/// .NET's <c>File.Move(overwrite: false)</c> does not do this on Unix: it checks, then renames, and a rename replaces,
/// so two processes could both "win". link(2) fails with EEXIST instead. Hand-written: no served package offers it.
/// </summary>
internal static class NoReplaceFile
{
    private const int EExist = 17;   // Linux and macOS
    private const int EPerm = 1, ENotSupLinux = 95, ENotSupMac = 45;   // a filesystem without hard links

    /// <summary>
    /// Gives <paramref name="source"/>'s file the name <paramref name="target"/> unless that name exists; false when it
    /// exists. <paramref name="source"/> may remain (the caller deletes it). On a filesystem without hard links (some
    /// network and FAT filesystems) it throws <see cref="IOException"/>, or with <paramref name="racyFallback"/> uses
    /// <c>File.Move(overwrite: false)</c>, which is not race-free (for callers whose racing writers write the same bytes).
    /// </summary>
    public static bool Place(string source, string target, bool racyFallback = false)
    {
        if (!OperatingSystem.IsWindows())   // Windows' MoveFileEx without REPLACE_EXISTING is already atomic
        {
            if (Link(source, target) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EExist) return false;
            if (!racyFallback || errno is not (EPerm or ENotSupLinux or ENotSupMac))
                throw new IOException($"cannot link {source} to {target} (errno {errno})");
        }
        try { File.Move(source, target, overwrite: false); return true; }
        catch (IOException) when (File.Exists(target)) { return false; }
    }

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string existing, string created);
}
