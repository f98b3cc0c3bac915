using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Clip.MLNet.Imaging;
using SkiaSharp;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>Small synthetic images for the preprocessing tests, built in memory.</summary>
internal static class TestImages
{
    /// <summary>
    /// A PNG written byte by byte, so that the colour type and bit depth are exactly what a test asks
    /// for (encoders choose their own). <paramref name="rows"/> are the unfiltered scanlines.
    /// </summary>
    public static byte[] Png(int width, int height, int bitDepth, int colorType, byte[][] rows, byte[]? palette = null, byte[]? transparency = null)
    {
        using var raw = new MemoryStream();
        foreach (var row in rows)
        {
            raw.WriteByte(0); // filter: none
            raw.Write(row);
        }
        return Png(width, height, bitDepth, colorType, Compress(raw.ToArray()), palette, transparency);
    }

    /// <summary>A PNG with the given header and an already compressed IDAT payload.</summary>
    public static byte[] Png(int width, int height, int bitDepth, int colorType, byte[] idat, byte[]? palette = null, byte[]? transparency = null)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = (byte)bitDepth;
        header[9] = (byte)colorType;
        WriteChunk(png, "IHDR", header);
        if (palette is not null) WriteChunk(png, "PLTE", palette);
        if (transparency is not null) WriteChunk(png, "tRNS", transparency);
        WriteChunk(png, "IDAT", idat);
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    public static byte[] Compress(byte[] data)
    {
        using var output = new MemoryStream();
        using (var z = new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true)) z.Write(data);
        return output.ToArray();
    }

    private static void WriteChunk(Stream png, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        png.Write(length);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        png.Write(crc);
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>
    /// A GIF89a with one frame of 8-bit palette indices and a 256-entry global palette (3 bytes an
    /// entry, padded with black), optionally with a transparency index.
    /// </summary>
    public static byte[] Gif(int width, int height, byte[] indices, byte[] palette, int? transparentIndex = null)
    {
        using var gif = new MemoryStream();
        gif.Write("GIF89a"u8);
        WriteUInt16(gif, width);
        WriteUInt16(gif, height);
        gif.Write([0xF7, 0, 0]); // global colour table of 2^8 entries, background 0, no aspect
        var table = new byte[768];
        palette.CopyTo(table, 0);
        gif.Write(table);
        if (transparentIndex is int t) gif.Write([0x21, 0xF9, 4, 1, 0, 0, (byte)t, 0]);
        gif.WriteByte(0x2C);
        WriteUInt16(gif, 0);
        WriteUInt16(gif, 0);
        WriteUInt16(gif, width);
        WriteUInt16(gif, height);
        gif.WriteByte(0);
        gif.WriteByte(8); // LZW minimum code size
        var data = UncompressedLzw(indices);
        for (int i = 0; i < data.Length; i += 255)
        {
            int n = Math.Min(255, data.Length - i);
            gif.WriteByte((byte)n);
            gif.Write(data, i, n);
        }
        gif.WriteByte(0);
        gif.WriteByte(0x3B);
        return gif.ToArray();
    }

    // LZW that never compresses: every index is sent as a literal 9-bit code, with a clear code often
    // enough that the decoder's table never grows to 10-bit codes.
    private static byte[] UncompressedLzw(byte[] indices)
    {
        const int clear = 256, end = 257;
        var output = new List<byte>();
        int buffer = 0, bits = 0;
        void Emit(int code)
        {
            buffer |= code << bits;
            bits += 9;
            while (bits >= 8)
            {
                output.Add((byte)buffer);
                buffer >>= 8;
                bits -= 8;
            }
        }
        for (int i = 0; i < indices.Length; i++)
        {
            if (i % 200 == 0) Emit(clear);
            Emit(indices[i]);
        }
        Emit(end);
        if (bits > 0) output.Add((byte)buffer);
        return output.ToArray();
    }

    private static void WriteUInt16(Stream s, int v)
    {
        s.WriteByte((byte)v);
        s.WriteByte((byte)(v >> 8));
    }

    /// <summary>RGB rows (3 bytes per pixel) from a colour function.</summary>
    public static byte[][] RgbRows(int width, int height, Func<int, int, (byte R, byte G, byte B)> color) =>
        Enumerable.Range(0, height).Select(y =>
        {
            var row = new byte[width * 3];
            for (int x = 0; x < width; x++) (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = color(x, y);
            return row;
        }).ToArray();

    /// <summary>One byte per pixel rows (gray levels or palette indices).</summary>
    public static byte[][] ByteRows(int width, int height, Func<int, int, byte> value) =>
        Enumerable.Range(0, height).Select(y => Enumerable.Range(0, width).Select(x => value(x, y)).ToArray()).ToArray();

    /// <summary>An image encoded by Skia (JPEG, or PNG of the bitmap's own choosing) from unpremultiplied RGBA.</summary>
    public static byte[] Encode(int width, int height, Func<int, int, (byte R, byte G, byte B, byte A)> color, SKEncodedImageFormat format, int quality = 90)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var pixels = new byte[width * height * 4];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b, a) = color(x, y);
                int p = (y * width + x) * 4;
                (pixels[p], pixels[p + 1], pixels[p + 2], pixels[p + 3]) = (r, g, b, a);
            }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var data = bitmap.Encode(format, quality);
        return data.ToArray();
    }

    /// <summary>
    /// Runs the pipeline with mean 0 and std 1, so that each output float is byte / 255, and returns the
    /// three output planes as bytes (R, G, B).
    /// </summary>
    public static byte[][] RunToBytes(PixelSource source, int size)
    {
        var table = new NormalizationTable([0f, 0f, 0f], [1f, 1f, 1f]);
        var floats = new float[3 * size * size];
        ClipPixelPipeline.Run(source, size, table, floats);
        return ToBytePlanes(floats, size);
    }

    /// <summary>Output of a preprocessor built with mean 0 and std 1, back to bytes per plane.</summary>
    public static byte[][] ToBytePlanes(float[] floats, int size)
    {
        int area = size * size;
        return Enumerable.Range(0, 3).Select(c => Enumerable.Range(0, area).Select(i =>
        {
            float v = floats[c * area + i] * 255f;
            Assert.InRange(v, -0.01f, 255.01f);
            return (byte)MathF.Round(v);
        }).ToArray()).ToArray();
    }

    /// <summary>A preprocessor whose output is byte / 255 (mean 0, std 1).</summary>
    public static ClipImagePreprocessor Unnormalized(int size) => new(size, [0f, 0f, 0f], [1f, 1f, 1f]);
}
