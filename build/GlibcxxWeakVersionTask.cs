// Machine fix (not part of the product): TorchSharp 0.107.0's libLibTorchSharp.so asks for GLIBCXX_3.4.32
// for one symbol, std::ios_base_library_init(), a marker that GCC 13 headers reference and nothing calls.
// Older libstdc++ (Debian 12 stops at 3.4.30) then refuses to load it. Marking that version requirement
// weak (VER_FLG_WEAK in its Vernaux record) lets the loader accept the library; nothing else changes.
//
// One source, compiled three ways: by MSBuild's RoslynCodeTaskFactory for the build's own outputs
// (TorchSharpNativeFix.targets), into the `clip` tool for `clip fix-native`, and into the tests. The two
// last define CLIP_NATIVE_FIX_STANDALONE, which leaves out the MSBuild task (they have no MSBuild).
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
#if !CLIP_NATIVE_FIX_STANDALONE
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class GlibcxxWeakVersionTask : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    public string Version { get; set; } = ElfVersionNeed.GlibcxxVersion;

    public override bool Execute()
    {
        var system = SystemLibstdcxx.Find();
        if (system is null || SystemLibstdcxx.Provides(system, Version))
        {
            Log.LogMessage(MessageImportance.Low, system is null
                ? "No system libstdc++ found: the TorchSharp native fix is not applied."
                : $"{system} provides {Version}: the TorchSharp native fix is not needed.");
            return true;
        }
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var result = ElfVersionNeed.MakeWeak(path, Version);
                Log.LogMessage(MessageImportance.Normal, $"{path}: {ElfVersionNeed.Describe(result, Version)}");
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not apply the {Version} fix to {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif

internal enum ElfVersionNeedState
{
    /// <summary>Not an ELF64 little-endian file, or a damaged one.</summary>
    NotElf,
    /// <summary>The file does not ask for the version at all.</summary>
    NotRequired,
    /// <summary>The file asks for the version as a hard requirement (fails to load without it).</summary>
    Required,
    /// <summary>The requirement is already marked weak.</summary>
    Weak,
    /// <summary>MakeWeak has just marked it weak.</summary>
    MadeWeak,
}

internal static class ElfVersionNeed
{
    public const string GlibcxxVersion = "GLIBCXX_3.4.32";
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    /// <summary>What the file's version requirement on <paramref name="version"/> is; reads only.</summary>
    public static ElfVersionNeedState Inspect(string path, string version = GlibcxxVersion) =>
        Inspect(File.ReadAllBytes(path), version, out _);

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry named <paramref name="version"/>. Idempotent: a two-byte write, once.</summary>
    public static ElfVersionNeedState MakeWeak(string path, string version = GlibcxxVersion)
    {
        var state = Inspect(File.ReadAllBytes(path), version, out long flagsOffset);
        if (state != ElfVersionNeedState.Required) return state;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = flagsOffset;
            int low = f.ReadByte();
            f.Position = flagsOffset;
            f.WriteByte((byte)(low | VerFlgWeak)); // vna_flags is little-endian: the weak bit is in its first byte
        }
        return ElfVersionNeedState.MadeWeak;
    }

    public static string Describe(ElfVersionNeedState state, string version = GlibcxxVersion) => state switch
    {
        ElfVersionNeedState.NotElf => "not an ELF64 little-endian file (left as it is)",
        ElfVersionNeedState.NotRequired => $"does not require {version} (left as it is)",
        ElfVersionNeedState.Required => $"requires {version}",
        ElfVersionNeedState.Weak => $"{version} already weak",
        ElfVersionNeedState.MadeWeak => $"{version} marked weak",
        _ => state.ToString(),
    };

    /// <summary>Walks the SHT_GNU_verneed section's Verneed/Vernaux records, names in the linked string table.</summary>
    static ElfVersionNeedState Inspect(byte[] bytes, string version, out long flagsOffset)
    {
        flagsOffset = -1;
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F'
            || bytes[4] != 2 || bytes[5] != 1)
            return ElfVersionNeedState.NotElf;
        try
        {
            long shoff = (long)BitConverter.ToUInt64(bytes, 0x28);
            int shentsize = BitConverter.ToUInt16(bytes, 0x3A);
            int shnum = BitConverter.ToUInt16(bytes, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                int sh = checked((int)(shoff + (long)i * shentsize));
                if (BitConverter.ToUInt32(bytes, sh + 4) != ShtGnuVerneed) continue;
                long offset = (long)BitConverter.ToUInt64(bytes, sh + 0x18);
                int link = (int)BitConverter.ToUInt32(bytes, sh + 0x28);
                int count = (int)BitConverter.ToUInt32(bytes, sh + 0x2C);
                long strtab = (long)BitConverter.ToUInt64(bytes, checked((int)(shoff + (long)link * shentsize)) + 0x18);
                long vn = offset;
                for (int n = 0; n < count; n++)
                {
                    int auxCount = BitConverter.ToUInt16(bytes, checked((int)vn) + 2);
                    long aux = vn + BitConverter.ToUInt32(bytes, checked((int)vn) + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        long name = strtab + BitConverter.ToUInt32(bytes, checked((int)aux) + 8);
                        if (ReadCString(bytes, name) == version)
                        {
                            flagsOffset = aux + 4;
                            ushort flags = BitConverter.ToUInt16(bytes, checked((int)flagsOffset));
                            return (flags & VerFlgWeak) != 0 ? ElfVersionNeedState.Weak : ElfVersionNeedState.Required;
                        }
                        aux += BitConverter.ToUInt32(bytes, checked((int)aux) + 12);
                    }
                    vn += BitConverter.ToUInt32(bytes, checked((int)vn) + 12);
                }
            }
            return ElfVersionNeedState.NotRequired;
        }
        catch (Exception e) when (e is ArgumentException or OverflowException or IndexOutOfRangeException)
        {
            return ElfVersionNeedState.NotElf; // offsets pointing outside the file: damaged, leave it alone
        }
    }

    static string ReadCString(byte[] bytes, long start)
    {
        if (start < 0 || start >= bytes.Length) throw new ArgumentOutOfRangeException(nameof(start));
        long end = start;
        while (end < bytes.Length && bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, (int)start, (int)(end - start));
    }
}

/// <summary>The system's libstdc++, where the dynamic loader finds it on common x86-64 Linux layouts.</summary>
internal static class SystemLibstdcxx
{
    static readonly string[] Candidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", // Debian, Ubuntu
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",                // Fedora, RHEL, openSUSE
        "/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",                  // Arch, Alpine
    };

    public static string? Find()
    {
        foreach (var c in Candidates)
            if (File.Exists(c)) return c;
        return null;
    }

    /// <summary>The library defines each version it provides as a NUL-terminated name; look for this one.</summary>
    public static bool Provides(string libraryPath, string version)
    {
        var needle = Encoding.ASCII.GetBytes(version + "\0");
        var bytes = File.ReadAllBytes(libraryPath);
        for (int i = 0; i + needle.Length <= bytes.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && bytes[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }
}
