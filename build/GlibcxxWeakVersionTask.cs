// Build-time machine fix (not part of the product): TorchSharp 0.107.0's libLibTorchSharp.so asks
// for GLIBCXX_3.4.32 for one symbol, std::ios_base_library_init(), a marker that GCC 13 headers
// reference and nothing calls. Older libstdc++ (Debian 12 stops at 3.4.30) then refuses to load it.
// Marking that version requirement weak (VER_FLG_WEAK in its Vernaux record) lets the loader accept
// the library; nothing else changes. Applied only to copies in build outputs, never to packages.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class GlibcxxWeakVersionTask : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    public string Version { get; set; } = "GLIBCXX_3.4.32";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var result = ElfVersionNeed.MakeWeak(path, Version);
                Log.LogMessage(MessageImportance.Normal, $"{path}: {result}");
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not apply the {Version} fix to {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }
}

public static class ElfVersionNeed
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry named <paramref name="version"/>. Idempotent.</summary>
    public static string MakeWeak(string path, string version)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
            return "not an ELF file";
        if (bytes[4] != 2 || bytes[5] != 1) return "not a little-endian ELF64 file";
        long shoff = (long)BitConverter.ToUInt64(bytes, 0x28);
        int shentsize = BitConverter.ToUInt16(bytes, 0x3A);
        int shnum = BitConverter.ToUInt16(bytes, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(bytes, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(bytes, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(bytes, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(bytes, (int)sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(bytes, (int)(shoff + (long)link * shentsize) + 0x18);
            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(bytes, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(bytes, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strtab + BitConverter.ToUInt32(bytes, (int)aux + 8);
                    if (ReadCString(bytes, name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(bytes, (int)aux + 4);
                        if ((flags & VerFlgWeak) != 0) return $"{version} already weak";
                        flags |= VerFlgWeak;
                        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write))
                        {
                            f.Position = aux + 4;
                            f.WriteByte((byte)(flags & 0xff));
                            f.WriteByte((byte)(flags >> 8));
                        }
                        return $"{version} marked weak";
                    }
                    aux += BitConverter.ToUInt32(bytes, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(bytes, (int)vn + 12);
            }
        }
        return $"no {version} requirement";
    }

    static string ReadCString(byte[] bytes, long start)
    {
        long end = start;
        while (end < bytes.Length && bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, (int)start, (int)(end - start));
    }
}
