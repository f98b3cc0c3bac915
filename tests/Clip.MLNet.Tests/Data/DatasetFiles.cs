using System.Buffers.Binary;
using System.IO.Compression;
using SkiaSharp;

namespace Clip.MLNet.Tests.Data;

/// <summary>Writes small dataset files for the reader tests (idx, CIFAR batches, PNG images).</summary>
internal static class DatasetFiles
{
    /// <summary>An idx file: big-endian magic and sizes, then <paramref name="data"/>; gzip-compressed when asked.</summary>
    public static string WriteIdx(string path, int magic, int[] sizes, byte[] data, bool gzip = false)
    {
        var bytes = new byte[4 + 4 * sizes.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < sizes.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), sizes[i]);
        data.CopyTo(bytes, 4 + 4 * sizes.Length);
        if (!gzip)
        {
            File.WriteAllBytes(path, bytes);
            return path;
        }
        using var file = File.Create(path);
        using var z = new GZipStream(file, CompressionLevel.Fastest);
        z.Write(bytes);
        return path;
    }

    /// <summary>Images whose pixel (i, r, c) is a value derived from all three, so any mix-up shows.</summary>
    public static byte[] Pixels(int count, int rows, int cols) =>
        Enumerable.Range(0, count * rows * cols).Select(p => (byte)((p / (rows * cols)) * 31 + (p % (rows * cols)) * 7)).ToArray();

    public static (string Images, string Labels) WriteMnistPair(string folder, string prefix, int count, int rows, int cols, byte[] labels, bool gzip)
    {
        var ext = gzip ? ".gz" : "";
        var images = WriteIdx(Path.Combine(folder, $"{prefix}-images-idx3-ubyte{ext}"), 0x803, new[] { count, rows, cols }, Pixels(count, rows, cols), gzip);
        var lab = WriteIdx(Path.Combine(folder, $"{prefix}-labels-idx1-ubyte{ext}"), 0x801, new[] { labels.Length }, labels, gzip);
        return (images, lab);
    }

    /// <summary>A CIFAR record: label byte(s), then red, green and blue 32×32 planes.</summary>
    public static byte[] CifarRecord(byte[] labelBytes, Func<int, int, int, byte> pixel)
    {
        var record = new byte[labelBytes.Length + 3072];
        labelBytes.CopyTo(record, 0);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    record[labelBytes.Length + ch * 1024 + y * 32 + x] = pixel(ch, y, x);
        return record;
    }

    /// <summary>A solid-colour PNG of <paramref name="size"/>×<paramref name="size"/> with a differently coloured square in one corner.</summary>
    public static string WritePng(string path, SKColor colour, int size = 40, SKColor? mark = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(colour);
            if (mark is { } m) canvas.DrawRect(0, 0, size / 3, size / 3, new SKPaint { Color = m });
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }
}
