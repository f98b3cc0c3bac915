using System.Buffers.Binary;

namespace Clip.MLNet.Imaging;

/// <summary>The encoded formats the preprocessor decodes.</summary>
internal enum ImageFormat { Jpeg, Png, Gif, Bmp, WebP }

/// <summary>
/// The Pillow image mode a file opens in, as far as resizing cares: it decides which filter Pillow's
/// <c>resize</c> applies and whether it goes through premultiplied alpha.
/// </summary>
internal enum PillowModeClass
{
    /// <summary>Decided from what the decoder reports (JPEG, WebP, BMP with 16-32 bits).</summary>
    FromDecoder,
    /// <summary>L (or RGB with a gray palette): bicubic, one channel.</summary>
    Gray,
    /// <summary>RGB: bicubic per channel, any alpha the decoder reports is not Pillow's.</summary>
    Rgb,
    /// <summary>RGBA or LA: bicubic through premultiplied alpha.</summary>
    RgbAlpha,
    /// <summary>P or 1: nearest neighbour, whatever filter was asked for.</summary>
    Palette,
}

/// <summary>What the first bytes of an encoded image say: its format and the Pillow mode it would open in.</summary>
internal readonly record struct ImageHeaderFacts(ImageFormat Format, PillowModeClass Mode, bool AlphaPossible, uint? GifFillRgb);

/// <summary>
/// Reads the signature and the few header fields that decide Pillow's mode (PNG colour type, BMP bit
/// depth and palette, GIF palettes). The decoder (Skia) reports pixels, not modes, and a palette
/// image decoded to RGBA cannot be told from an RGB one afterwards.
/// </summary>
internal static class ImageHeader
{
    // Signatures with bytes above 0x7F: a u8 string literal would encode those as two UTF-8 bytes.
    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private static ReadOnlySpan<byte> JpegXlBox => [0, 0, 0, 0x0C, (byte)'J', (byte)'X', (byte)'L', (byte)' ', 0x0D, 0x0A, 0x87, 0x0A];
    private static ReadOnlySpan<byte> Jpeg2000Box => [0, 0, 0, 0x0C, (byte)'j', (byte)'P', (byte)' ', (byte)' ', 0x0D, 0x0A, 0x87, 0x0A];

    /// <summary>Recognizes the input; null with <paramref name="problem"/> set when it is not a supported image.</summary>
    public static ImageHeaderFacts? Read(ReadOnlySpan<byte> data, out string? problem)
    {
        problem = null;
        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
            return new ImageHeaderFacts(ImageFormat.Jpeg, PillowModeClass.Rgb, false, null);
        if (data.StartsWith(PngSignature))
            return Png(data, out problem);
        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8))
            return Gif(data, out problem);
        if (data.StartsWith("BM"u8))
            return Bmp(data, out problem);
        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8))
            return new ImageHeaderFacts(ImageFormat.WebP, PillowModeClass.FromDecoder, true, null);
        problem = UnsupportedFormatName(data) is { } name
            ? $"unsupported image format {name} (supported: JPEG, PNG, GIF, BMP, WebP)"
            : "not an image: the content does not start like JPEG, PNG, GIF, BMP or WebP";
        return null;
    }

    private static ImageHeaderFacts? Png(ReadOnlySpan<byte> data, out string? problem)
    {
        problem = null;
        // IHDR is the first chunk: length 13 at 8, type at 12, width 16, height 20, depth 24, colour type 25.
        if (data.Length < 26 || !data.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            problem = "damaged PNG: no IHDR header after the signature";
            return null;
        }
        int depth = data[24], colorType = data[25];
        var mode = colorType switch
        {
            0 when depth == 1 => PillowModeClass.Palette,   // Pillow opens 1-bit gray as mode "1"
            0 => PillowModeClass.Gray,
            2 => PillowModeClass.Rgb,
            3 => PillowModeClass.Palette,
            4 or 6 => PillowModeClass.RgbAlpha,
            _ => (PillowModeClass?)null,
        };
        if (mode is null)
        {
            problem = $"damaged PNG: colour type {colorType} does not exist";
            return null;
        }
        return new ImageHeaderFacts(ImageFormat.Png, mode.Value, mode == PillowModeClass.RgbAlpha, null);
    }

    private static ImageHeaderFacts? Bmp(ReadOnlySpan<byte> data, out string? problem)
    {
        problem = null;
        if (data.Length < 18)
        {
            problem = "damaged BMP: the header is cut short";
            return null;
        }
        int headerSize = BinaryPrimitives.ReadInt32LittleEndian(data[14..]);
        bool core = headerSize == 12;   // OS/2 1.x: 16-bit fields, 3-byte palette entries
        int bitsAt = core ? 24 : 28;
        if (data.Length < bitsAt + 2 || headerSize < 12)
        {
            problem = "damaged BMP: the header is cut short";
            return null;
        }
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(data[bitsAt..]);
        int compression = !core && data.Length >= 34 ? BinaryPrimitives.ReadInt32LittleEndian(data[30..]) : 0;
        if (bits > 8)
        {
            // Pillow gives 32-bit BMPs an alpha channel only when bit fields describe one.
            bool alpha = bits == 32 && compression is 3 or 6;
            return new ImageHeaderFacts(ImageFormat.Bmp, alpha ? PillowModeClass.FromDecoder : PillowModeClass.Rgb, alpha, null);
        }
        // Pillow drops a palette that is exactly the ramp 0, 1, 2, ... (or black, white for 1 bit) and
        // opens the image as L (bicubic) or 1; any other palette makes it P.
        int colors = 1 << bits;
        if (!core && data.Length >= 50)
        {
            int used = BinaryPrimitives.ReadInt32LittleEndian(data[46..]);
            if (used > 0) colors = used;
        }
        int entry = core ? 3 : 4, paletteAt = 14 + headerSize;
        bool ramp = data.Length >= paletteAt + colors * entry;
        for (int i = 0; ramp && i < colors; i++)
        {
            int level = colors == 2 ? i * 255 : i;
            var rgb = data.Slice(paletteAt + i * entry, 3);
            ramp = rgb[0] == level && rgb[1] == level && rgb[2] == level;
        }
        var mode = ramp && colors != 2 ? PillowModeClass.Gray : PillowModeClass.Palette;
        return new ImageHeaderFacts(ImageFormat.Bmp, mode, false, null);
    }

    /// <summary>
    /// The GIF facts Pillow acts on for the first frame: its palette (local, else global) unless that
    /// palette is exactly the identity ramp (then Pillow opens mode L), and the index that fills what
    /// the frame leaves transparent or uncovered (the transparency index, else 0).
    /// </summary>
    private static ImageHeaderFacts? Gif(ReadOnlySpan<byte> data, out string? problem)
    {
        problem = null;
        if (data.Length < 13)
        {
            problem = "damaged GIF: the header is cut short";
            return null;
        }
        int flags = data[10];
        int pos = 13;
        ReadOnlySpan<byte> globalPalette = default;
        if ((flags & 0x80) != 0)
        {
            int size = 3 << ((flags & 7) + 1);
            if (data.Length < pos + size) return Truncated(out problem);
            globalPalette = data.Slice(pos, size);
            pos += size;
        }
        int? transparency = null;
        while (pos < data.Length)
        {
            byte block = data[pos++];
            if (block == 0x21)
            {
                if (pos >= data.Length) return Truncated(out problem);
                byte label = data[pos++];
                bool first = true;
                while (pos < data.Length && data[pos] != 0)
                {
                    int length = data[pos];
                    if (pos + 1 + length > data.Length) return Truncated(out problem);
                    if (label == 0xF9 && first && length >= 4 && (data[pos + 1] & 1) != 0) transparency = data[pos + 4];
                    first = false;
                    pos += 1 + length;
                }
                pos++;
            }
            else if (block == 0x2C)
            {
                if (pos + 9 > data.Length) return Truncated(out problem);
                int localFlags = data[pos + 8];
                pos += 9;
                var palette = globalPalette;
                if ((localFlags & 0x80) != 0)
                {
                    int size = 3 << ((localFlags & 7) + 1);
                    if (data.Length < pos + size) return Truncated(out problem);
                    palette = data.Slice(pos, size);
                }
                bool needed = palette.Length > 0 && !IsIdentityRamp(palette);
                int fillIndex = transparency ?? 0;
                uint? fill = needed
                    ? (fillIndex * 3 + 2 < palette.Length ? Rgb(palette.Slice(fillIndex * 3, 3)) : 0u)
                    : (uint)(fillIndex * 0x010101);
                return new ImageHeaderFacts(ImageFormat.Gif, needed ? PillowModeClass.Palette : PillowModeClass.Gray, false, fill);
            }
            else if (block == 0x3B)
            {
                break;
            }
            else
            {
                problem = $"damaged GIF: unknown block 0x{block:X2}";
                return null;
            }
        }
        problem = "damaged GIF: no image in the file";
        return null;
    }

    private static ImageHeaderFacts? Truncated(out string? problem)
    {
        problem = "truncated GIF: the file ends inside its header";
        return null;
    }

    private static bool IsIdentityRamp(ReadOnlySpan<byte> palette)
    {
        for (int i = 0; i + 2 < palette.Length; i += 3)
            if (palette[i] != i / 3 || palette[i + 1] != i / 3 || palette[i + 2] != i / 3) return false;
        return true;
    }

    private static uint Rgb(ReadOnlySpan<byte> rgb) => rgb[0] | (uint)rgb[1] << 8 | (uint)rgb[2] << 16;

    /// <summary>Names formats that are images, just not ones this library decodes, for a clearer error.</summary>
    private static string? UnsupportedFormatName(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith("II*\0"u8) || data.StartsWith("MM\0*"u8)) return "TIFF";
        if (data.StartsWith("8BPS"u8)) return "PSD";
        if (data.StartsWith("%PDF"u8)) return "PDF";
        if (data.StartsWith("qoif"u8)) return "QOI";
        if (data.StartsWith("\0\0\x01\0"u8)) return "ICO";
        if (data.StartsWith("\0\0\x02\0"u8)) return "CUR";
        if (data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x0A]) || data.StartsWith(JpegXlBox)) return "JPEG XL";
        if (data.StartsWith(Jpeg2000Box) || data.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x4F, 0xFF, 0x51])) return "JPEG 2000";
        if (data.Length >= 12 && data.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            var brand = data.Slice(8, 4);
            if (brand.SequenceEqual("avif"u8) || brand.SequenceEqual("avis"u8)) return "AVIF";
            if (brand.StartsWith("hei"u8) || brand.StartsWith("hev"u8) || brand.SequenceEqual("mif1"u8) || brand.SequenceEqual("msf1"u8)) return "HEIF";
        }
        var text = data[..Math.Min(data.Length, 256)].TrimStart((ReadOnlySpan<byte>)[(byte)' ', (byte)'\t', (byte)'\r', (byte)'\n', 0xEF, 0xBB, 0xBF]);
        if (text.StartsWith("<svg"u8) || (text.StartsWith("<?xml"u8) && data[..Math.Min(data.Length, 1024)].IndexOf("<svg"u8) >= 0)) return "SVG";
        if (data.Length >= 2 && data[0] == (byte)'P' && data[1] >= (byte)'1' && data[1] <= (byte)'7') return "PNM";
        return null;
    }
}
