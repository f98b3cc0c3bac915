using SkiaSharp;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>
/// Pillow decides the resize filter from the image mode the file opens in; these tests encode the
/// same pixels in different file types and check that each gets its mode's rule.
/// </summary>
public class ModeRuleTests
{
    // 40x20 vertical stripes, one pixel wide: even columns red, odd columns blue. Size 10 resizes to
    // 20x10 (a factor of 2) and crops at left 5.
    private const int Width = 40, Height = 20, Size = 10;
    private static readonly byte[] StripePalette = [255, 0, 0, 0, 0, 255];
    private static byte StripeIndex(int x, int y) => (byte)(x & 1);

    private static byte[][] Run(byte[] file) => TestImages.ToBytePlanes(TestImages.Unnormalized(Size).Preprocess(file), Size);

    [Fact]
    public void PalettePngIsResizedWithNearestNeighbour()
    {
        var png = TestImages.Png(Width, Height, 8, 3, TestImages.ByteRows(Width, Height, StripeIndex), StripePalette);
        var planes = Run(png);
        // Nearest picks input column floor((x + 0.5) * 2) = 2x + 1: always odd, always blue.
        Assert.All(planes[0], r => Assert.Equal(0, r));
        Assert.All(planes[2], b => Assert.Equal(255, b));
    }

    [Fact]
    public void PalettePngTransparencyIsIgnoredLikePillowsConvertToRgb()
    {
        // Index 0 (red) fully transparent through tRNS: Pillow's convert("RGB") still shows red.
        var png = TestImages.Png(Width, Height, 8, 3, TestImages.ByteRows(Width, Height, (x, y) => (byte)(x < Width / 2 ? 0 : 1)), StripePalette, transparency: [0]);
        var planes = Run(png);
        Assert.Equal((255, 0, 0), (planes[0][0], planes[1][0], planes[2][0]));
        Assert.Equal((0, 0, 255), (planes[0][Size - 1], planes[1][Size - 1], planes[2][Size - 1]));
    }

    [Fact]
    public void TheSamePixelsAsRgbAreResizedBicubically()
    {
        var png = TestImages.Png(Width, Height, 8, 2, TestImages.RgbRows(Width, Height, (x, y) => x % 2 == 0 ? ((byte)255, (byte)0, (byte)0) : ((byte)0, (byte)0, (byte)255)));
        var planes = Run(png);
        // Red and blue averaged: every pixel mixed, none pure.
        Assert.All(planes[0], r => Assert.InRange(r, (byte)100, (byte)155));
        Assert.All(planes[2], b => Assert.InRange(b, (byte)100, (byte)155));
    }

    [Fact]
    public void PaletteGifIsResizedWithNearestNeighbour()
    {
        var indices = new byte[Width * Height];
        for (int y = 0; y < Height; y++) for (int x = 0; x < Width; x++) indices[y * Width + x] = StripeIndex(x, y);
        var planes = Run(TestImages.Gif(Width, Height, indices, StripePalette));
        Assert.All(planes[0], r => Assert.Equal(0, r));
        Assert.All(planes[2], b => Assert.Equal(255, b));
    }

    [Fact]
    public void OneBitGrayPngIsResizedWithNearestNeighbour()
    {
        // Pillow opens a 1-bit gray PNG as mode "1", which resizes with nearest neighbour too.
        var rows = Enumerable.Range(0, Height).Select(_ => Enumerable.Repeat((byte)0b0101_0101, Width / 8).ToArray()).ToArray();
        var planes = Run(TestImages.Png(Width, Height, 1, 0, rows));
        // Bits are most significant first: even columns 0 (black), odd columns 1 (white).
        Assert.All(planes[1], v => Assert.Equal(255, v));
    }

    [Fact]
    public void GifTransparentPixelsKeepTheirPaletteColour()
    {
        // Pillow keeps a transparent GIF pixel as its index; convert("RGB") shows that index's colour
        // (here green), where Skia decodes it as transparent.
        const int side = 16;
        byte[] palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
        var indices = new byte[side * side];
        for (int i = 0; i < indices.Length; i++) indices[i] = (byte)(i % side < 8 ? 1 : 2);
        var gif = TestImages.Gif(side, side, indices, palette, transparentIndex: 1);
        foreach (int size in new[] { side, side / 2 })
        {
            var planes = TestImages.ToBytePlanes(TestImages.Unnormalized(size).Preprocess(gif), size);
            for (int i = 0; i < size * size; i++)
            {
                bool left = i % size < size / 2;
                Assert.Equal((0, left ? 255 : 0, left ? 0 : 255), (planes[0][i], planes[1][i], planes[2][i]));
            }
        }
    }

    [Fact]
    public void GifWithAnIdentityGrayPaletteIsResizedLikeGrayscale()
    {
        // Pillow opens a GIF whose palette is exactly 0, 1, 2, ... as mode L: bicubic, like a gray PNG.
        const int width = 30, height = 22, size = 12;
        var palette = Enumerable.Range(0, 768).Select(i => (byte)(i / 3)).ToArray();
        var random = new Random(5);
        var levels = new byte[width * height];
        random.NextBytes(levels);
        var gif = TestImages.Gif(width, height, levels, palette);
        var png = TestImages.Png(width, height, 8, 0, TestImages.ByteRows(width, height, (x, y) => levels[y * width + x]));
        var preprocessor = new ClipImagePreprocessor(size);
        Assert.Equal(preprocessor.Preprocess(png), preprocessor.Preprocess(gif));
    }

    [Fact]
    public void GrayIsResizedAsOneChannelWithTheSameResultAsReplicatedRgb()
    {
        // Integer arithmetic per channel: resizing the gray plane once and copying it, or resizing
        // three equal planes, gives identical bytes.
        const int width = 53, height = 71, size = 24;
        var random = new Random(11);
        var levels = new byte[width * height];
        random.NextBytes(levels);
        var gray = TestImages.Png(width, height, 8, 0, TestImages.ByteRows(width, height, (x, y) => levels[y * width + x]));
        var rgb = TestImages.Png(width, height, 8, 2, TestImages.RgbRows(width, height, (x, y) => { var v = levels[y * width + x]; return (v, v, v); }));
        var preprocessor = new ClipImagePreprocessor(size);
        Assert.Equal(preprocessor.Preprocess(rgb), preprocessor.Preprocess(gray));
    }

    [Fact]
    public void GrayPngWithATransparentLevelIsResizedAsPlainGray()
    {
        // Pillow opens gray + tRNS as L with a transparency note: no alpha in the resize.
        const int width = 31, height = 45, size = 16;
        var rows = TestImages.ByteRows(width, height, (x, y) => (byte)((x * 37 + y * 11) % 256));
        var preprocessor = new ClipImagePreprocessor(size);
        Assert.Equal(preprocessor.Preprocess(TestImages.Png(width, height, 8, 0, rows)),
            preprocessor.Preprocess(TestImages.Png(width, height, 8, 0, rows, transparency: [0, 74])));
    }

    [Fact]
    public void GrayAlphaPngIsResizedLikeRgbaWithEqualChannels()
    {
        // Pillow's LA goes through La exactly as RGBA goes through RGBa, with the same rounding.
        const int width = 37, height = 29, size = 16;
        var random = new Random(9);
        var levels = new byte[width * height * 2];
        random.NextBytes(levels);
        var la = TestImages.Png(width, height, 8, 4, Enumerable.Range(0, height).Select(y => levels.AsSpan(y * width * 2, width * 2).ToArray()).ToArray());
        var rgba = TestImages.Png(width, height, 8, 6, Enumerable.Range(0, height).Select(y =>
            Enumerable.Range(0, width).SelectMany(x => { byte v = levels[(y * width + x) * 2], a = levels[(y * width + x) * 2 + 1]; return new[] { v, v, v, a }; }).ToArray()).ToArray());
        var preprocessor = new ClipImagePreprocessor(size);
        Assert.Equal(preprocessor.Preprocess(rgba), preprocessor.Preprocess(la));
    }

    [Fact]
    public void RgbaPngGoesThroughPremultipliedAlpha()
    {
        // Transparent red beside opaque blue, as a file: no red may reach the output.
        const int width = 64, height = 32, size = 16;
        var png = TestImages.Png(width, height, 8, 6, Enumerable.Range(0, height).Select(_ =>
            Enumerable.Range(0, width).SelectMany(x => x < width / 2 ? new byte[] { 255, 0, 0, 0 } : new byte[] { 0, 0, 255, 255 }).ToArray()).ToArray());
        var planes = TestImages.ToBytePlanes(TestImages.Unnormalized(size).Preprocess(png), size);
        Assert.All(planes[0], r => Assert.Equal(0, r));
    }

    [Fact]
    public void RgbPngWithATransparentColourIsNotPremultiplied()
    {
        // Colour type 2 with tRNS opens in Pillow as RGB (the transparency is only metadata):
        // the transparent colour is resized like any other.
        const int width = 64, height = 32, size = 16;
        var png = TestImages.Png(width, height, 8, 2, TestImages.RgbRows(width, height, (x, y) => x < width / 2 ? ((byte)255, (byte)0, (byte)0) : ((byte)0, (byte)0, (byte)255)),
            transparency: [0, 0xFF, 0, 0, 0, 0]);
        var planes = TestImages.ToBytePlanes(TestImages.Unnormalized(size).Preprocess(png), size);
        Assert.Contains(planes[0], r => r == 255);
    }

    [Fact]
    public void JpegAndWebPDecode()
    {
        const int width = 120, height = 80;
        (byte, byte, byte, byte) Color(int x, int y) => ((byte)(2 * x), (byte)(3 * y), 128, 255);
        var preprocessor = new ClipImagePreprocessor(32);
        var jpeg = preprocessor.Preprocess(TestImages.Encode(width, height, Color, SKEncodedImageFormat.Jpeg, 95));
        var webp = preprocessor.Preprocess(TestImages.Encode(width, height, Color, SKEncodedImageFormat.Webp, 100));
        var png = preprocessor.Preprocess(TestImages.Encode(width, height, Color, SKEncodedImageFormat.Png));
        // Lossy encodings of a smooth gradient stay within a few levels of the lossless one.
        Assert.True(ReferencePreprocessingTests.Diff(jpeg, png).Max < 0.15);
        Assert.True(ReferencePreprocessingTests.Diff(webp, png).Max < 0.15);
    }

    [Fact]
    public void BmpDecodes()
    {
        // A 24-bit BMP written by hand (Skia does not encode BMP): bottom-up rows, BGR, 4-byte aligned.
        const int width = 6, height = 5;
        int rowBytes = (width * 3 + 3) & ~3;
        var bmp = new byte[54 + rowBytes * height];
        "BM"u8.CopyTo(bmp);
        BitConverter.TryWriteBytes(bmp.AsSpan(2), bmp.Length);
        BitConverter.TryWriteBytes(bmp.AsSpan(10), 54);
        BitConverter.TryWriteBytes(bmp.AsSpan(14), 40);
        BitConverter.TryWriteBytes(bmp.AsSpan(18), width);
        BitConverter.TryWriteBytes(bmp.AsSpan(22), height);
        BitConverter.TryWriteBytes(bmp.AsSpan(26), (short)1);
        BitConverter.TryWriteBytes(bmp.AsSpan(28), (short)24);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int p = 54 + (height - 1 - y) * rowBytes + 3 * x;
                (bmp[p], bmp[p + 1], bmp[p + 2]) = ((byte)(10 * y), (byte)(20 * x), 200); // B, G, R
            }
        var png = TestImages.Png(width, height, 8, 2, TestImages.RgbRows(width, height, (x, y) => (200, (byte)(20 * x), (byte)(10 * y))));
        var preprocessor = new ClipImagePreprocessor(4);
        Assert.Equal(preprocessor.Preprocess(png), preprocessor.Preprocess(bmp));
    }
}
