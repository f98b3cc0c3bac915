using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Clip.MLNet.Indexing;

/// <summary>
/// NumPy's <c>.npy</c> format 1.0 for the 2-D little-endian arrays of an index: a 128-byte header (magic, version,
/// header length, a Python dict literal padded with spaces to a 64-byte boundary) and the rows, C order.
/// </summary>
public static partial class NpyFile
{
    /// <summary>The header length of the files this writer produces (any reader takes any header length).</summary>
    internal const int HeaderBytes = 128;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The 128-byte header of a C-order <paramref name="rows"/> x <paramref name="columns"/> array of <paramref name="descr"/> (for example <c>&lt;f2</c>).</summary>
    internal static byte[] Header(string descr, long rows, long columns)
    {
        var dict = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
        int textLength = HeaderBytes - 10;
        if (dict.Length + 1 > textLength) throw new ArgumentOutOfRangeException(nameof(rows), "the array shape does not fit the header");
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        header[6] = 1;
        header[7] = 0;
        header[8] = (byte)(textLength & 0xFF);
        header[9] = (byte)(textLength >> 8);
        var text = dict.PadRight(textLength - 1) + "\n";
        Encoding.ASCII.GetBytes(text, header.AsSpan(10));
        return header;
    }

    /// <summary>The description of a 2-D <c>.npy</c> file: element type, shape and where its data starts.</summary>
    /// <param name="Descr">NumPy's type string, for example <c>&lt;f2</c> (little-endian float16) or <c>&lt;f4</c>.</param>
    /// <param name="Rows">The first dimension.</param>
    /// <param name="Columns">The second dimension.</param>
    /// <param name="DataOffset">The byte offset of the first element.</param>
    public sealed record Info(string Descr, long Rows, long Columns, long DataOffset)
    {
        /// <summary>Bytes per element (2 for float16, 4 for float32).</summary>
        public int ElementBytes => int.Parse(Descr.AsSpan(2), CultureInfo.InvariantCulture);
    }

    /// <summary>Reads the header of a 2-D C-order little-endian <c>.npy</c> file and checks that the file holds all its data.</summary>
    /// <exception cref="InvalidDataException">The file is not such an array, or is shorter than its header says.</exception>
    public static Info ReadInfo(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        return ReadInfo(stream, path);
    }

    internal static Info ReadInfo(Stream stream, string path)
    {
        Span<byte> start = stackalloc byte[10];
        if (stream.ReadAtLeast(start, 10, throwOnEndOfStream: false) < 10 || !start[..6].SequenceEqual(Magic))
            throw new InvalidDataException($"{path}: not a .npy file");
        int major = start[6];
        int headerLength;
        int prefix;
        if (major == 1) { headerLength = start[8] | (start[9] << 8); prefix = 10; }
        else if (major is 2 or 3)
        {
            Span<byte> more = stackalloc byte[2];
            if (stream.ReadAtLeast(more, 2, throwOnEndOfStream: false) < 2) throw new InvalidDataException($"{path}: truncated .npy header");
            headerLength = start[8] | (start[9] << 8) | (more[0] << 16) | (more[1] << 24);
            prefix = 12;
        }
        else throw new InvalidDataException($"{path}: unsupported .npy version {major}");
        var text = new byte[headerLength];
        if (stream.ReadAtLeast(text, headerLength, throwOnEndOfStream: false) < headerLength) throw new InvalidDataException($"{path}: truncated .npy header");
        var dict = Encoding.ASCII.GetString(text);
        var m = HeaderPattern().Match(dict);
        if (!m.Success) throw new InvalidDataException($"{path}: expected a 2-D little-endian C-order float array, the header says {dict.Trim()}");
        var info = new Info(m.Groups["descr"].Value, long.Parse(m.Groups["rows"].Value, CultureInfo.InvariantCulture),
            long.Parse(m.Groups["cols"].Value, CultureInfo.InvariantCulture), prefix + headerLength);
        long expected = info.DataOffset + info.Rows * info.Columns * info.ElementBytes;
        if (stream.Length < expected)
            throw new InvalidDataException($"{path}: truncated: {info.Rows} x {info.Columns} {info.Descr} needs {expected} bytes, the file has {stream.Length}");
        return info;
    }

    [GeneratedRegex(@"^\{\s*'descr':\s*'(?<descr><f[248])',\s*'fortran_order':\s*False,\s*'shape':\s*\((?<rows>\d+),\s*(?<cols>\d+)\),?\s*\}\s*$")]
    private static partial Regex HeaderPattern();
}

/// <summary>Writes a float16 <c>.npy</c> file row block by row block, the shape filled in when it is complete.</summary>
internal sealed class NpyHalfWriter : IDisposable
{
    private readonly FileStream stream;
    private readonly long columns;
    private long rows;

    public NpyHalfWriter(string path, long columns)
    {
        this.columns = columns;
        stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        stream.Write(new byte[NpyFile.HeaderBytes]);
    }

    /// <summary>Appends rows: float16 values, little-endian, a whole number of rows.</summary>
    public void Append(ReadOnlySpan<byte> halfValues)
    {
        long rowBytes = columns * 2;
        if (halfValues.Length % rowBytes != 0) throw new ArgumentException("not a whole number of rows", nameof(halfValues));
        stream.Write(halfValues);
        rows += halfValues.Length / rowBytes;
    }

    public long Rows => rows;

    /// <summary>Writes the header and flushes the file to the disk.</summary>
    public void Complete()
    {
        stream.Position = 0;
        stream.Write(NpyFile.Header("<f2", rows, columns));
        stream.Flush(flushToDisk: true);
    }

    public void Dispose() => stream.Dispose();
}
