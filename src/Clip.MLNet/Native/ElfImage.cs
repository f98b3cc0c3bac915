using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Clip.MLNet.Native;

/// <summary>
/// The dynamic-linking facts of an ELF64 little-endian shared library that the native loader needs: its soname,
/// the libraries it needs (DT_NEEDED), the symbol versions it needs from them (SHT_GNU_verneed, with the symbols
/// bound to each) and the versions it defines (SHT_GNU_verdef). Reads only the section headers and the few
/// sections named, by offset, so a 460 MB libtorch costs a few kilobytes of reading.
/// Hand-written: no served .NET package reads ELF version sections.
/// </summary>
internal sealed class ElfImage
{
    /// <summary>The section types read here (<c>sh_type</c>).</summary>
    private enum SectionType : uint
    {
        Dynamic = 6,
        Dynsym = 11,
        GnuVerdef = 0x6ffffffd,
        GnuVerneed = 0x6ffffffe,
        GnuVersym = 0x6fffffff,
    }

    /// <summary>The dynamic-section tags read here (<c>d_tag</c>).</summary>
    private enum DynamicTag : long
    {
        Null = 0,
        Needed = 1,
        Soname = 14,
    }

    /// <summary>VER_FLG_WEAK: the loader accepts a library that lacks this version.</summary>
    public const ushort VerFlagWeak = 0x2;

    /// <summary>One required symbol version (a Vernaux record).</summary>
    /// <param name="Library">The library the version is asked of (the Verneed record's file).</param>
    /// <param name="Name">The version, e.g. GLIBCXX_3.4.32.</param>
    /// <param name="Flags">vna_flags.</param>
    /// <param name="Index">vna_other: the index that .gnu.version gives the symbols bound to this version.</param>
    /// <param name="FlagsOffset">Where vna_flags sits in the file.</param>
    public sealed record VersionNeed(string Library, string Name, ushort Flags, ushort Index, long FlagsOffset)
    {
        public bool IsWeak => (Flags & VerFlagWeak) != 0;
    }

    private ElfImage(string path) => Path = path;

    public string Path { get; }
    public string? SoName { get; private set; }
    public IReadOnlyList<string> Needed { get; private set; } = [];
    public IReadOnlyList<VersionNeed> VersionNeeds { get; private set; } = [];
    public IReadOnlySet<string> VersionDefinitions { get; private set; } = new HashSet<string>();
    private readonly Dictionary<ushort, List<string>> symbolsByVersion = new();

    /// <summary>The dynamic symbols that .gnu.version binds to <paramref name="index"/> (a Vernaux index).</summary>
    public IReadOnlyList<string> SymbolsOfVersion(ushort index) =>
        symbolsByVersion.TryGetValue(index, out var names) ? names : [];

    /// <summary>Reads <paramref name="path"/>; <see cref="InvalidDataException"/> naming it for anything that is not a sound ELF64 LE file.</summary>
    public static ElfImage Read(string path, bool withSymbols = false)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var image = new ElfImage(path);
        try
        {
            image.Parse(handle, RandomAccess.GetLength(handle), withSymbols);
        }
        catch (Exception e) when (e is ArgumentException or OverflowException or IndexOutOfRangeException or EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: not a readable ELF64 shared library ({e.Message})", e);
        }
        return image;
    }

    private readonly record struct Section(SectionType Type, long Offset, long Size, uint Link, long EntrySize);

    private void Parse(SafeFileHandle file, long length, bool withSymbols)
    {
        var header = ReadBytes(file, 0, 64, length);
        if (header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F' || header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{Path}: not an ELF64 little-endian file");
        long shoff = checked((long)BitConverter.ToUInt64(header, 0x28));
        int shentsize = BitConverter.ToUInt16(header, 0x3A);
        int shnum = BitConverter.ToUInt16(header, 0x3C);
        if (shentsize < 64 || shnum == 0) throw new InvalidDataException($"{Path}: no section headers");
        var table = ReadBytes(file, shoff, checked(shentsize * shnum), length);
        var sections = new Section[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int s = i * shentsize;
            sections[i] = new Section((SectionType)BitConverter.ToUInt32(table, s + 4), checked((long)BitConverter.ToUInt64(table, s + 0x18)),
                checked((long)BitConverter.ToUInt64(table, s + 0x20)), BitConverter.ToUInt32(table, s + 0x28), checked((long)BitConverter.ToUInt64(table, s + 0x38)));
        }
        var strings = new Dictionary<uint, byte[]>();
        byte[] StringTable(uint index)
        {
            if (!strings.TryGetValue(index, out var bytes))
                strings[index] = bytes = ReadBytes(file, sections[index].Offset, checked((int)sections[index].Size), length);
            return bytes;
        }

        var versionNeeds = new List<VersionNeed>();
        var definitions = new HashSet<string>(StringComparer.Ordinal);
        Section? dynsym = null, versym = null;
        foreach (var section in sections)
        {
            switch (section.Type)
            {
                case SectionType.Dynamic:
                {
                    var dyn = ReadBytes(file, section.Offset, checked((int)section.Size), length);
                    var names = StringTable(section.Link);
                    var needed = new List<string>();
                    for (int e = 0; e + 16 <= dyn.Length; e += 16)
                    {
                        var tag = (DynamicTag)BitConverter.ToInt64(dyn, e);
                        if (tag == DynamicTag.Null) break;
                        if (tag == DynamicTag.Needed) needed.Add(CString(names, BitConverter.ToUInt64(dyn, e + 8)));
                        else if (tag == DynamicTag.Soname) SoName = CString(names, BitConverter.ToUInt64(dyn, e + 8));
                    }
                    Needed = needed;
                    break;
                }
                case SectionType.GnuVerneed:
                {
                    var data = ReadBytes(file, section.Offset, checked((int)section.Size), length);
                    var names = StringTable(section.Link);
                    int vn = 0;
                    while (true)
                    {
                        int auxCount = BitConverter.ToUInt16(data, vn + 2);
                        string library = CString(names, BitConverter.ToUInt32(data, vn + 4));
                        int aux = vn + checked((int)BitConverter.ToUInt32(data, vn + 8));
                        for (int a = 0; a < auxCount; a++)
                        {
                            versionNeeds.Add(new VersionNeed(library, CString(names, BitConverter.ToUInt32(data, aux + 8)),
                                BitConverter.ToUInt16(data, aux + 4), BitConverter.ToUInt16(data, aux + 6), section.Offset + aux + 4));
                            uint nextAux = BitConverter.ToUInt32(data, aux + 12);
                            if (nextAux == 0) break;
                            aux += checked((int)nextAux);
                        }
                        uint next = BitConverter.ToUInt32(data, vn + 12);
                        if (next == 0) break;
                        vn += checked((int)next);
                    }
                    break;
                }
                case SectionType.GnuVerdef:
                {
                    var data = ReadBytes(file, section.Offset, checked((int)section.Size), length);
                    var names = StringTable(section.Link);
                    int vd = 0;
                    while (true)
                    {
                        int aux = vd + checked((int)BitConverter.ToUInt32(data, vd + 12));
                        definitions.Add(CString(names, BitConverter.ToUInt32(data, aux)));
                        uint next = BitConverter.ToUInt32(data, vd + 16);
                        if (next == 0) break;
                        vd += checked((int)next);
                    }
                    break;
                }
                case SectionType.Dynsym: dynsym = section; break;
                case SectionType.GnuVersym: versym = section; break;
            }
        }
        VersionNeeds = versionNeeds;
        VersionDefinitions = definitions;

        if (withSymbols && dynsym is { } symbols && versym is { } versions && symbols.EntrySize >= 24)
        {
            var symbolBytes = ReadBytes(file, symbols.Offset, checked((int)symbols.Size), length);
            var versionBytes = ReadBytes(file, versions.Offset, checked((int)versions.Size), length);
            var names = StringTable(symbols.Link);
            long count = Math.Min(symbols.Size / symbols.EntrySize, versions.Size / 2);
            for (int i = 0; i < count; i++)
            {
                ushort index = (ushort)(BitConverter.ToUInt16(versionBytes, i * 2) & 0x7fff);
                if (index < 2) continue; // local or global: no version
                var name = CString(names, BitConverter.ToUInt32(symbolBytes, checked((int)(i * symbols.EntrySize))));
                if (!symbolsByVersion.TryGetValue(index, out var list)) symbolsByVersion[index] = list = [];
                list.Add(name);
            }
        }
    }

    private static byte[] ReadBytes(SafeFileHandle file, long offset, int count, long length)
    {
        if (offset < 0 || count < 0 || offset + count > length) throw new EndOfStreamException($"{count} bytes at {offset} lie outside the file");
        var buffer = new byte[count];
        int done = 0;
        while (done < count)
        {
            int n = RandomAccess.Read(file, buffer.AsSpan(done), offset + done);
            if (n == 0) throw new EndOfStreamException($"{count} bytes at {offset} lie outside the file");
            done += n;
        }
        return buffer;
    }

    private static string CString(byte[] table, ulong start)
    {
        if (start >= (ulong)table.Length) throw new IndexOutOfRangeException($"string offset {start} outside its table");
        int end = (int)start;
        while (end < table.Length && table[end] != 0) end++;
        return Encoding.ASCII.GetString(table, (int)start, end - (int)start);
    }
}
