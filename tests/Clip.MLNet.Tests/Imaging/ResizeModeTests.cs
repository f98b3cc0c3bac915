using Clip.MLNet.Imaging;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>open_clip's resize modes (squash, longest with padding) and Pillow's bilinear filter.</summary>
public class ResizeModeTests
{
    private static ClipImagePreprocessor Plain(int size, ClipResizeMode mode, ClipInterpolation interpolation = ClipInterpolation.Bicubic, byte fill = 0) =>
        new(size, [0f, 0f, 0f], [1f, 1f, 1f]) { ResizeMode = mode, Interpolation = interpolation, FillColor = fill };

    private static byte[] Png(int width, int height) =>
        TestImages.Png(width, height, 8, 2, TestImages.RgbRows(width, height, (x, y) => ((byte)(x * 7 % 256), (byte)(y * 13 % 256), (byte)((x + y) * 3 % 256))));

    [Fact]
    public void LongestPadsAnImageThatAlreadyFitsAroundItsPixels()
    {
        // 64 x 32 into 64: ratio 1, so no resize; 16 rows of fill above and below.
        var output = Plain(64, ClipResizeMode.Longest, fill: 51).Preprocess(Png(64, 32));
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
            {
                float r = output[y * 64 + x], g = output[64 * 64 + y * 64 + x];
                if (y < 16 || y >= 48)
                {
                    Assert.Equal(51 / 255f, r);
                    Assert.Equal(51 / 255f, g);
                }
                else
                {
                    Assert.Equal((x * 7 % 256) / 255f, r);
                    Assert.Equal(((y - 16) * 13 % 256) / 255f, g);
                }
            }
    }

    [Fact]
    public void LongestResizesTheLongSideAndCentresTheShortOne()
    {
        // 200 x 100 into 64: 64 x 32 (ratio 3.125), padded 16 rows each side; the middle rows are the squash of the
        // image to 64 x 32, the same as the shortest-side path gives for a 64 x 32 window.
        Assert.Equal((64, 32), ClipPixelPipeline.LongestSize(200, 100, 64));
        Assert.Equal((64, 21), ClipPixelPipeline.LongestSize(300, 100, 64));   // 21.33 rounds down
        Assert.Equal((22, 64), ClipPixelPipeline.LongestSize(100, 290, 64));   // 22.07
        var output = Plain(64, ClipResizeMode.Longest).Preprocess(Png(200, 100));
        Assert.All(Enumerable.Range(0, 16 * 64), i => Assert.Equal(0f, output[i]));
        Assert.All(Enumerable.Range(48 * 64, 16 * 64), i => Assert.Equal(0f, output[i]));
        Assert.Contains(Enumerable.Range(16 * 64, 32 * 64), i => output[i] != 0f);
    }

    [Fact]
    public void AllModesAgreeOnASquareImage()
    {
        var png = Png(96, 96);
        var shortest = Plain(48, ClipResizeMode.Shortest).Preprocess(png);
        Assert.Equal(shortest, Plain(48, ClipResizeMode.Squash).Preprocess(png));
        Assert.Equal(shortest, Plain(48, ClipResizeMode.Longest).Preprocess(png));
    }

    [Fact]
    public void SquashIgnoresTheAspectRatio()
    {
        // A 2:1 image squashed to 32 x 32: each output column covers two input columns, each row one row halved in number.
        var output = Plain(32, ClipResizeMode.Squash).Preprocess(Png(64, 32));
        var cropped = Plain(32, ClipResizeMode.Shortest).Preprocess(Png(64, 32));
        Assert.NotEqual(cropped, output);
    }

    [Fact]
    public void BilinearIsPillowsTriangleFilter()
    {
        // Halving with Pillow's bilinear: support 2 input pixels, weights 1/4, 3/4, 3/4, 1/4 around each output centre
        // (normalized), on a constant image: the constant.
        var k = ResampleKernel.Compute(8, 4, 0, 4, bilinear: true);
        Assert.Equal(new[] { 0, 1, 3, 5 }, k.First);
        Assert.Equal(new[] { 3, 4, 4, 3 }, k.Count);
        int one = 1 << ResampleKernel.PrecisionBits;
        // Output 1 (centre 3.0 in input units): taps at 1.5, 2.5, 3.5, 4.5 -> triangle(|d| / 2) = 0.25, 0.75, 0.75, 0.25, sum 2.
        Assert.Equal(new[] { one / 8, 3 * one / 8, 3 * one / 8, one / 8 }, k.Weights.Skip(k.MaxTaps).Take(4).ToArray());
        var constant = TestImages.Png(8, 8, 8, 2, TestImages.RgbRows(8, 8, (_, _) => ((byte)100, (byte)100, (byte)100)));
        var output = Plain(4, ClipResizeMode.Squash, ClipInterpolation.Bilinear).Preprocess(constant);
        Assert.All(output, v => Assert.Equal(100 / 255f, v));
    }

    [Fact]
    public void ConfiguredPreprocessingRoundTripsThroughItsJson()
    {
        var p = new ClipPreprocessing(64, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f], ClipInterpolation.Bilinear, ClipResizeMode.Longest, 128);
        var made = p.CreatePreprocessor(1000);
        Assert.Equal(ClipResizeMode.Longest, made.ResizeMode);
        Assert.Equal(ClipInterpolation.Bilinear, made.Interpolation);
        Assert.Equal(128, made.FillColor);
        Assert.Equal(1000, made.MaxPixels);
    }
}
