using Clip.MLNet.Imaging;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>Pillow's resize rules and torchvision's resize/crop arithmetic on synthetic images, checked against hand-computed values.</summary>
public class ResamplingTests
{
    [Theory]
    // width, height, size -> resized width, resized height, left, top (worked out by hand below)
    [InlineData(640, 427, 224, 335, 224, 56, 0)]   // 224*640/427 = 335.74 -> 335; (335-224)/2 = 55.5 -> 56 (half to even)
    [InlineData(427, 640, 224, 224, 335, 0, 56)]   // portrait: the same numbers on the other axis
    [InlineData(61, 41, 224, 333, 224, 54, 0)]     // 224*61/41 = 333.27 -> 333; 54.5 -> 54 (half to even, not up)
    [InlineData(300, 200, 224, 336, 224, 56, 0)]   // exact: 336
    [InlineData(227, 224, 224, 227, 224, 2, 0)]    // no resize; 1.5 -> 2
    [InlineData(225, 224, 224, 225, 224, 0, 0)]    // 0.5 -> 0
    [InlineData(229, 224, 224, 229, 224, 2, 0)]    // 2.5 -> 2
    [InlineData(225, 225, 224, 224, 224, 0, 0)]    // square: both sides become the size
    [InlineData(1000, 3, 224, 74666, 224, 37221, 0)] // 224000/3 = 74666.67 -> 74666 (truncated, not rounded); 37221
    [InlineData(3, 7, 336, 336, 784, 0, 224)]      // upscaling: 336*7/3 = 784; (784-336)/2 = 224
    [InlineData(5, 3, 4, 6, 4, 1, 0)]              // 4*5/3 = 6.67 -> 6; 1
    public void ResizeAndCropFollowTorchvision(int width, int height, int size, int resizedWidth, int resizedHeight, int left, int top)
    {
        var g = CropGeometry.For(width, height, size);
        Assert.Equal((resizedWidth, resizedHeight, left, top, size), (g.ResizedWidth, g.ResizedHeight, g.Left, g.Top, g.Size));
    }

    [Fact]
    public void AnAspectRatioBeyondIntIsRefused()
    {
        Assert.Throws<ImageGeometryException>(() => CropGeometry.For(1, 10_000_000, 224));
        Assert.Equal(224_000_000, CropGeometry.For(1_000_000, 1, 224).ResizedWidth);
    }

    [Fact]
    public void AKernelWindowHoldsTheSameWeightsAsTheWholeKernel()
    {
        var whole = ResampleKernel.Compute(640, 335);
        var window = ResampleKernel.Compute(640, 335, 56, 224);
        Assert.Equal(whole.First.AsSpan(56, 224).ToArray(), window.First);
        Assert.Equal(whole.Count.AsSpan(56, 224).ToArray(), window.Count);
        Assert.Equal(whole.Weights.AsSpan(56 * whole.MaxTaps, 224 * whole.MaxTaps).ToArray(), window.Weights);
    }

    [Fact]
    public void KernelWeightsMatchAHandComputedBicubic()
    {
        // 4 -> 8 pixels: output 3 sits at 3.5 * 0.5 = 1.75 in input coordinates; the taps are inputs 0..3
        // at distances -1.25, -0.25, 0.75, 1.75 (pixel centres), and with a = -0.5:
        //   W(1.25) = -0.5 * (((1.25 - 5) * 1.25 + 8) * 1.25 - 4) = -0.0703125
        //   W(0.25) = (1.5 * 0.25 - 2.5) * 0.25^2 + 1              =  0.8671875
        //   W(0.75) = (1.5 * 0.75 - 2.5) * 0.75^2 + 1              =  0.2265625
        //   W(1.75) = -0.5 * (((1.75 - 5) * 1.75 + 8) * 1.75 - 4) = -0.0234375
        // They sum to 1; times 2^22: -294912, 3637248, 950272, -98304.
        var k = ResampleKernel.Compute(4, 8);
        Assert.Equal(0, k.First[3]);
        Assert.Equal(4, k.Count[3]);
        Assert.Equal(new[] { -294912, 3637248, 950272, -98304 }, k.Weights.AsSpan(3 * k.MaxTaps, 4).ToArray());
        // Output 0 sits at 0.25: its window is clipped at the left edge (inputs 0 and 1; input 2's centre,
        // 2.5, is 2.25 away, beyond the support of 2) and renormalized.
        Assert.Equal(0, k.First[0]);
        Assert.Equal(2, k.Count[0]);
    }

    [Fact]
    public void UpscaledPixelEqualsTheHandComputedValue()
    {
        // A 4x2 gray image with two identical rows [10, 50, 200, 90], size 4: resized to 8x4 (both axes
        // upscaled), cropped at left = (8 - 4) / 2 = 2. Output column 1 is resized column 3:
        // 2^21 + 10*-294912 + 50*3637248 + 200*950272 + 90*-98304 = 362217472, >> 22 = 86
        // (the float bicubic value is 85.86). Identical rows stay identical through the vertical pass.
        byte[] row = [10, 50, 200, 90];
        byte[] pixels = [.. row, .. row];
        var planes = TestImages.RunToBytes(new PixelSource(pixels, 4, 2, 4, PixelLayout.Gray8, AlphaHandling.Ignore, ResizeFilter.Bicubic), 4);
        for (int y = 0; y < 4; y++)
            for (int c = 0; c < 3; c++)
                Assert.Equal(86, planes[c][y * 4 + 1]);
    }

    public static TheoryData<int, int, int, byte> ConstantCases => new()
    {
        { 640, 427, 224, 0 }, { 640, 427, 224, 255 }, { 640, 427, 224, 77 },
        { 97, 1003, 64, 254 }, { 5, 7, 33, 1 }, { 13, 11, 12, 200 }, { 300, 200, 224, 128 },
    };

    [Theory]
    [MemberData(nameof(ConstantCases))]
    public void AConstantImageStaysExactlyConstant(int width, int height, int size, byte level)
    {
        // Rounded fixed-point weights need not sum to exactly 2^22, but the error times 255 stays far
        // below the rounding half: no level may drift, shrinking or enlarging, gray or colour.
        var gray = Enumerable.Repeat(level, width * height).ToArray();
        var outGray = TestImages.RunToBytes(new PixelSource(gray, width, height, width, PixelLayout.Gray8, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
        var rgba = new byte[width * height * 4];
        for (int p = 0; p < rgba.Length; p += 4) (rgba[p], rgba[p + 1], rgba[p + 2], rgba[p + 3]) = (level, (byte)(255 - level), level, 255);
        var outRgb = TestImages.RunToBytes(new PixelSource(rgba, width, height, width * 4, PixelLayout.Rgba32, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
        for (int c = 0; c < 3; c++)
        {
            Assert.All(outGray[c], v => Assert.Equal(level, v));
            Assert.All(outRgb[c], v => Assert.Equal(c == 1 ? 255 - level : level, v));
        }
    }

    [Fact]
    public void DownscalingACheckerboardAveragesInsteadOfAliasing()
    {
        // One-pixel black/white checkerboard halved: a point-sampling resize would return pure black or
        // white; Pillow's widened kernel averages each 2x2 neighbourhood to mid gray.
        const int side = 448, size = 224;
        var pixels = new byte[side * side];
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                pixels[y * side + x] = (byte)(((x + y) & 1) == 0 ? 255 : 0);
        var planes = TestImages.RunToBytes(new PixelSource(pixels, side, side, side, PixelLayout.Gray8, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
        for (int y = 4; y < size - 4; y++)
            for (int x = 4; x < size - 4; x++)
                Assert.InRange(planes[0][y * size + x], (byte)124, (byte)131);
    }

    [Fact]
    public void SimdAndScalarPassesAgree()
    {
        // The horizontal pass has a SIMD path for 4-byte pixels; its result must equal a plain
        // per-channel evaluation of the same fixed-point sums on a noisy image.
        const int width = 97, height = 61, size = 40;
        var random = new Random(7);
        var rgba = new byte[width * height * 4];
        random.NextBytes(rgba);
        for (int p = 3; p < rgba.Length; p += 4) rgba[p] = 255;
        var fromRgba = TestImages.RunToBytes(new PixelSource(rgba, width, height, width * 4, PixelLayout.Rgba32, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
        for (int c = 0; c < 3; c++)
        {
            var plane = new byte[width * height];
            for (int i = 0; i < plane.Length; i++) plane[i] = rgba[4 * i + c];
            var fromGray = TestImages.RunToBytes(new PixelSource(plane, width, height, width, PixelLayout.Gray8, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
            Assert.Equal(fromGray[0], fromRgba[c]);
        }
    }

    [Fact]
    public void BgraPixelsGiveTheSameResultAsRgba()
    {
        const int width = 50, height = 31, size = 16;
        var random = new Random(3);
        var rgba = new byte[width * height * 4];
        random.NextBytes(rgba);
        var bgra = (byte[])rgba.Clone();
        for (int p = 0; p < bgra.Length; p += 4) (bgra[p], bgra[p + 2]) = (bgra[p + 2], bgra[p]);
        foreach (var alpha in new[] { AlphaHandling.Ignore, AlphaHandling.Straight, AlphaHandling.Premultiplied })
            Assert.Equal(
                TestImages.RunToBytes(new PixelSource(rgba, width, height, width * 4, PixelLayout.Rgba32, alpha, ResizeFilter.Bicubic), size),
                TestImages.RunToBytes(new PixelSource(bgra, width, height, width * 4, PixelLayout.Bgra32, alpha, ResizeFilter.Bicubic), size));
    }

    [Fact]
    public void NearestIndicesFollowPillowsHalfPixelRule()
    {
        // Output x samples input floor((x + 0.5) * in / out); 300 -> 336 (the palette fixture's width)
        // has no position landing exactly on an integer, so the accumulated doubles must agree with it.
        var indices = ClipPixelPipeline.NearestIndices(300, 336, 0, 336);
        for (int x = 0; x < 336; x++) Assert.Equal((2 * x + 1) * 300 / (2 * 336), indices[x]);
        Assert.Equal(new[] { 0, 1, 2 }, indices[..3]);
        Assert.Equal(299, indices[335]);
        // A window of the same table, as the crop uses it.
        Assert.Equal(indices.AsSpan(56, 224).ToArray(), ClipPixelPipeline.NearestIndices(300, 336, 56, 224));
        // Shrinking by 2 picks the odd columns (position 1.0, 3.0, ...).
        Assert.Equal(new[] { 1, 3, 5, 7 }, ClipPixelPipeline.NearestIndices(8, 4, 0, 4));
    }

    [Fact]
    public void PremultiplicationRoundsLikePillow()
    {
        // Pillow's MULDIV255 is round(c * a / 255) (never a tie: 255 is odd).
        for (int c = 0; c < 256; c++)
            for (int a = 0; a < 256; a++)
                Assert.Equal((int)Math.Round(c * a / 255.0, MidpointRounding.AwayFromZero), ClipPixelPipeline.Premultiply((byte)c, (byte)a));
        // And back: 255 * c / a truncated, clipped at 255; alpha 0 and 255 leave the colour as is.
        Assert.Equal(199, ClipPixelPipeline.Unpremultiply(100, 128));   // 199.2
        Assert.Equal(255, ClipPixelPipeline.Unpremultiply(200, 100));   // 510 -> 255
        Assert.Equal(37, ClipPixelPipeline.Unpremultiply(37, 0));
        Assert.Equal(37, ClipPixelPipeline.Unpremultiply(37, 255));
    }

    [Fact]
    public void TransparentColourDoesNotBleedIntoOpaqueNeighbours()
    {
        // Left half fully transparent red, right half opaque blue. Resized straight, the red would
        // smear across the boundary; through premultiplied alpha the transparent pixels weigh nothing.
        const int width = 64, height = 32, size = 16;
        var rgba = new byte[width * height * 4];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int p = (y * width + x) * 4;
                (rgba[p], rgba[p + 1], rgba[p + 2], rgba[p + 3]) = x < width / 2 ? ((byte)255, (byte)0, (byte)0, (byte)0) : ((byte)0, (byte)0, (byte)255, (byte)255);
            }
        var premultiplied = TestImages.RunToBytes(new PixelSource(rgba, width, height, width * 4, PixelLayout.Rgba32, AlphaHandling.Straight, ResizeFilter.Bicubic), size);
        Assert.All(premultiplied[0], r => Assert.Equal(0, r));
        Assert.All(premultiplied[1], g => Assert.Equal(0, g));
        // Fully covered pixels on the blue side stay blue.
        Assert.Equal(255, premultiplied[2][8 * size + size - 1]);

        // The control: the same pixels with their alpha ignored do mix red in at the boundary.
        var straight = TestImages.RunToBytes(new PixelSource(rgba, width, height, width * 4, PixelLayout.Rgba32, AlphaHandling.Ignore, ResizeFilter.Bicubic), size);
        Assert.Contains(straight[0], r => r > 0 && r < 255);
    }

    [Fact]
    public void AnRgbaImageAlreadyAtSizeKeepsItsStraightColours()
    {
        // Pillow returns an image of the requested size untouched: no premultiplied round trip, which
        // would turn (200, 100, 50) at alpha 3 into (255, 85, 85).
        const int size = 8;
        var rgba = new byte[size * size * 4];
        for (int p = 0; p < rgba.Length; p += 4) (rgba[p], rgba[p + 1], rgba[p + 2], rgba[p + 3]) = (200, 100, 50, 3);
        var planes = TestImages.RunToBytes(new PixelSource(rgba, size, size, size * 4, PixelLayout.Rgba32, AlphaHandling.Straight, ResizeFilter.Bicubic), size);
        Assert.All(planes[0], v => Assert.Equal(200, v));
        Assert.All(planes[1], v => Assert.Equal(100, v));
        Assert.All(planes[2], v => Assert.Equal(50, v));
    }

    [Fact]
    public void NormalizationIsTorchvisionsFloat32Arithmetic()
    {
        var table = new NormalizationTable(ClipImagePreprocessor.OpenAIMean, ClipImagePreprocessor.OpenAIStd);
        // (v / 255 - mean) / std, every step in float32.
        Assert.Equal((0f / 255f - 0.48145466f) / 0.26862954f, table[0, 0]);
        Assert.Equal((255f / 255f - 0.4578275f) / 0.26130258f, table[1, 255]);
        Assert.Equal((128f / 255f - 0.40821073f) / 0.27577711f, table[2, 128]);
    }
}
