using System.Text.Json;
using Clip.MLNet.Tests.Support;
using Microsoft.ML.Data;
using Xunit.Abstractions;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>The reference's own images through the preprocessor, against the reference's pixel_values_224 rows.</summary>
public class ReferencePreprocessingTests(ITestOutputHelper output)
{
    private const double MaxTolerance = 0.02, MeanTolerance = 0.002;
    private const int Size = 224;
    private static readonly ClipImagePreprocessor Preprocessor = new();

    private static readonly Lazy<string[]> ManifestImages = new(() =>
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Fixtures.ReferencePath("manifest.json")));
        return json.RootElement.GetProperty("images").EnumerateArray().Select(e => e.GetString()!).ToArray();
    });

    // Named here (not read from the manifest) so that each image is its own test case; the test checks the manifest agrees.
    public static TheoryData<string> Images => new()
    {
        "china.jpg", "flower.jpg", "china_portrait.png", "flower_gray.png",
        "china_rgba.png", "flower_small.png", "china_palette.gif", "flower_exact224.png",
    };

    /// <summary>The fixture's expected row for <paramref name="image"/>, as floats.</summary>
    internal static float[] ExpectedRow(string image)
    {
        int index = Array.IndexOf(ManifestImages.Value, image);
        Assert.True(index >= 0, $"{image} is not in manifest.json's images");
        using var row = Fixtures.Expected("pixel_values_224")[index].contiguous();
        return row.data<float>().ToArray();
    }

    internal static (double Max, double Mean) Diff(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0, sum = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            max = Math.Max(max, d);
            sum += d;
        }
        return (max, sum / actual.Length);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void EachFixtureImageMatchesItsReferenceRow(string image)
    {
        var actual = Preprocessor.Preprocess(Fixtures.ReferencePath("images", image));
        var (max, mean) = Diff(actual, ExpectedRow(image));
        output.WriteLine($"{image}: max |diff| {max:F5}, mean |diff| {mean:F6}");
        Assert.True(max <= MaxTolerance && mean <= MeanTolerance, $"{image}: max |diff| {max:F5} (<= {MaxTolerance}), mean |diff| {mean:F6} (<= {MeanTolerance})");
    }

    public static TheoryData<string> LosslessImages => new()
    {
        "china_portrait.png", "flower_gray.png", "china_rgba.png", "flower_small.png", "china_palette.gif", "flower_exact224.png",
    };

    [Theory]
    [MemberData(nameof(LosslessImages))]
    public void LosslessFixturesAreBitExact(string image)
    {
        // PNG and GIF decode to the same bytes everywhere, so everything after decoding (Pillow's
        // resize rules, the crop, float32 normalization) must reproduce the reference exactly: a single
        // 8-bit level off somewhere would still pass the tolerance, not this.
        var actual = Preprocessor.Preprocess(Fixtures.ReferencePath("images", image));
        var expected = ExpectedRow(image);
        int different = actual.Where((v, i) => v != expected[i]).Count();
        Assert.True(different == 0, $"{image}: {different} of {actual.Length} values differ from the reference");
    }

    [Fact]
    public void TheComparisonTellsDifferentImagesApart()
    {
        // Guards the comparison itself: each image is far from the other images' rows.
        var china = Preprocessor.Preprocess(Fixtures.ReferencePath("images", "china.jpg"));
        Assert.True(Diff(china, ExpectedRow("flower.jpg")).Mean > 0.1);
        Assert.True(Diff(china, ExpectedRow("china_portrait.png")).Mean > 0.1);
        Assert.True(Diff(china, ExpectedRow("china_palette.gif")).Mean > 0.01);
    }

    [Fact]
    public void TheTheoryCoversEveryManifestImage() =>
        Assert.Equal(ManifestImages.Value.OrderBy(x => x), ((IEnumerable<object[]>)Images).Select(row => (string)row[0]).OrderBy(x => x));

    [Theory]
    [MemberData(nameof(Images))]
    public void PathBytesAndStreamGiveIdenticalOutput(string image)
    {
        var path = Fixtures.ReferencePath("images", image);
        var fromPath = Preprocessor.Preprocess(path);
        var bytes = File.ReadAllBytes(path);
        var fromBytes = Preprocessor.Preprocess(bytes, image);
        var fromMemory = new float[Preprocessor.OutputLength];
        Preprocessor.PreprocessInto(new ReadOnlyMemory<byte>(bytes).Span, fromMemory, image);
        float[] fromFileStream, fromMemoryStream;
        using (var stream = File.OpenRead(path)) fromFileStream = Preprocessor.Preprocess(stream, image);
        using (var stream = new MemoryStream(bytes)) fromMemoryStream = Preprocessor.Preprocess(stream, image);
        using (var stream = new NonSeekableStream(bytes))
        {
            var fromPipe = Preprocessor.Preprocess(stream, image);
            Assert.Equal(fromPath, fromPipe);
        }
        Assert.Equal(fromPath, fromBytes);
        Assert.Equal(fromPath, fromMemory);
        Assert.Equal(fromPath, fromFileStream);
        Assert.Equal(fromPath, fromMemoryStream);
    }

    public static TheoryData<string> NonPaletteImages => new()
    {
        "china.jpg", "flower.jpg", "china_portrait.png", "flower_gray.png", "china_rgba.png", "flower_small.png", "flower_exact224.png",
    };

    [Theory]
    [MemberData(nameof(NonPaletteImages))]
    public void MLImageInputMatchesThePathResult(string image)
    {
        var path = Fixtures.ReferencePath("images", image);
        using var mlImage = MLImage.CreateFromFile(path);
        var fromImage = Preprocessor.Preprocess(mlImage, image);
        var (max, mean) = Diff(fromImage, Preprocessor.Preprocess(path));
        output.WriteLine($"{image} ({mlImage.PixelFormat}): MLImage vs path max |diff| {max:F5}, mean {mean:F6}");
        Assert.True(max <= MaxTolerance && mean <= MeanTolerance, $"{image}: MLImage vs path max |diff| {max:F5}, mean {mean:F6}");
        var (refMax, refMean) = Diff(fromImage, ExpectedRow(image));
        Assert.True(refMax <= MaxTolerance && refMean <= MeanTolerance, $"{image}: MLImage vs reference max |diff| {refMax:F5}, mean {refMean:F6}");
    }

    [Fact]
    public void RgbaMLImageInRgbaOrderMatchesBgra()
    {
        // MLImage.CreateFromPixels with Rgba32 pixels: the same picture as the file's Bgra32 MLImage.
        var path = Fixtures.ReferencePath("images", "china_rgba.png");
        using var bgra = MLImage.CreateFromFile(path);
        Assert.Equal(MLPixelFormat.Bgra32, bgra.PixelFormat);
        var swapped = bgra.Pixels.ToArray();
        for (int p = 0; p < swapped.Length; p += 4) (swapped[p], swapped[p + 2]) = (swapped[p + 2], swapped[p]);
        using var rgba = MLImage.CreateFromPixels(bgra.Width, bgra.Height, MLPixelFormat.Rgba32, swapped);
        Assert.Equal(Preprocessor.Preprocess(bgra), Preprocessor.Preprocess(rgba));
    }

    [Fact]
    public void BatchStacksTheImagesInOrder()
    {
        var names = ManifestImages.Value;
        var paths = names.Select(n => Fixtures.ReferencePath("images", n)).ToArray();
        using var batch = Preprocessor.PreprocessBatch(paths);
        Assert.Equal(new long[] { names.Length, 3, Size, Size }, batch.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, batch.dtype);
        for (int i = 0; i < names.Length; i++)
        {
            using var row = batch[i].contiguous();
            Assert.Equal(Preprocessor.Preprocess(paths[i]), row.data<float>().ToArray());
        }
        using var all = Preprocessor.PreprocessBatch(paths, maxDegreeOfParallelism: 1);
        Assert.Equal(batch.data<float>().ToArray(), all.data<float>().ToArray());
    }

    [Fact]
    public void SeveralThreadsWithOneInstanceGetTheSingleThreadedResults()
    {
        var names = ManifestImages.Value;
        var expected = names.ToDictionary(n => n, n => Preprocessor.Preprocess(Fixtures.ReferencePath("images", n)));
        var work = Enumerable.Range(0, 48).Select(i => names[i % names.Length]).ToArray();
        var results = new float[work.Length][];
        Parallel.For(0, work.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            results[i] = Preprocessor.Preprocess(Fixtures.ReferencePath("images", work[i])));
        for (int i = 0; i < work.Length; i++) Assert.Equal(expected[work[i]], results[i]);
    }

    /// <summary>A stream that cannot seek and hands out a few bytes at a time, like a network stream.</summary>
    private sealed class NonSeekableStream(byte[] data) : Stream
    {
        private int position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 1000), data.Length - position);
            Array.Copy(data, position, buffer, offset, n);
            position += n;
            return n;
        }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
