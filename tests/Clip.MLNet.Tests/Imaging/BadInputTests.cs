using System.Diagnostics;
using Clip.MLNet.Tests.Support;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.Imaging;

/// <summary>Every kind of bad input fails with a <see cref="ClipImageException"/> that names the input and the problem.</summary>
public sealed class BadInputTests : IDisposable
{
    private static readonly ClipImagePreprocessor Preprocessor = new();
    private readonly string folder = Directory.CreateTempSubdirectory("clip-imaging-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private string WriteFile(string name, byte[] content)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    private static ClipImageException Fails(string path, params string[] problemWords)
    {
        var e = Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(path));
        Assert.Equal(path, e.Input);
        Assert.StartsWith(path + ": ", e.Message);
        foreach (var word in problemWords) Assert.Contains(word, e.Problem, StringComparison.OrdinalIgnoreCase);
        return e;
    }

    [Fact]
    public void MissingFile() => Fails(Path.Combine(folder, "no_such_image.jpg"), "no such file");

    [Fact]
    public void MissingFolder() => Fails(Path.Combine(folder, "no_such_folder", "image.jpg"), "no such file");

    [Fact]
    public void ADirectory() => Fails(folder, "directory");

    [Fact]
    public void ZeroByteFile() => Fails(WriteFile("empty.jpg", []), "empty");

    [Fact]
    public void TruncatedJpeg()
    {
        // Skia decodes what is there and fills the rest; a photo missing its lower part is refused.
        var jpeg = File.ReadAllBytes(Fixtures.ReferencePath("images", "china.jpg"));
        Fails(WriteFile("cut.jpg", jpeg[..(jpeg.Length * 6 / 10)]), "truncated");
    }

    [Fact]
    public void JpegCutInsideItsHeader()
    {
        var jpeg = File.ReadAllBytes(Fixtures.ReferencePath("images", "china.jpg"));
        Fails(WriteFile("stub.jpg", jpeg[..100]), "JPEG");
    }

    [Fact]
    public void TruncatedPng()
    {
        var png = File.ReadAllBytes(Fixtures.ReferencePath("images", "china_portrait.png"));
        Fails(WriteFile("cut.png", png[..(png.Length / 2)]), "PNG");
    }

    [Fact]
    public void PngWithDamagedImageData()
    {
        var rows = TestImages.ByteRows(32, 32, (x, y) => (byte)(x * y));
        var png = TestImages.Png(32, 32, 8, 0, rows);
        var idat = png.AsSpan().IndexOf("IDAT"u8);
        for (int i = idat + 6; i < idat + 30; i++) png[i] ^= 0x5A; // inside the zlib stream (CRC left wrong too)
        Fails(WriteFile("damaged.png", png), "PNG");
    }

    [Fact]
    public void TextFileNamedPng() => Fails(WriteFile("notes.png", "just some text, not a picture\n"u8.ToArray()), "not an image");

    [Fact]
    public void UnsupportedFormat() => Fails(WriteFile("scan.tif", [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 0, 0, 0, 0]), "unsupported", "TIFF");

    [Fact]
    public void HugePngIsRefusedFromItsHeaderBeforeDecoding()
    {
        // 30000 x 30000 RGB would be 3.6 GB decoded; the file is a few hundred bytes: a header and the
        // start of a compressed stream of zeros.
        var png = TestImages.Png(30000, 30000, 8, 2, TestImages.Compress(new byte[64 * 1024]));
        Assert.True(png.Length < 2048);
        var path = WriteFile("bomb.png", png);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var e = Fails(path, "30000x30000", "limit");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "allocated more than 16 MB to refuse a bomb");
        Assert.Contains("MaxPixels", e.Problem);
    }

    [Fact]
    public void AnExtremeAspectRatioIsRefusedByName()
    {
        // 1 x 9,600,000: the shorter side to 224 would make the longer 2.15e9 pixels, beyond what Pillow
        // or an int can hold. (Skia's file decoders cap sides at 65535 to 1,000,000 pixels, so only an
        // already decoded image can get here.)
        using var image = MLImage.CreateFromPixels(1, 9_600_000, MLPixelFormat.Rgba32, new byte[4 * 9_600_000]);
        var e = Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(image, "needle"));
        Assert.Equal("needle", e.Input);
        Assert.Contains("aspect ratio", e.Problem);
    }

    [Fact]
    public void ThePixelLimitIsConfigurable()
    {
        var path = Fixtures.ReferencePath("images", "china.jpg"); // 640 x 427 = 273,280 pixels
        var strict = new ClipImagePreprocessor { MaxPixels = 273_279 };
        var e = Assert.Throws<ClipImageException>(() => strict.Preprocess(path));
        Assert.Contains("640x427", e.Message);
        Assert.Equal(224 * 224 * 3, new ClipImagePreprocessor { MaxPixels = 273_280 }.Preprocess(path).Length);
        using var image = MLImage.CreateFromFile(path);
        Assert.Throws<ClipImageException>(() => strict.Preprocess(image));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipImagePreprocessor { MaxPixels = 0 });
        Assert.Equal(178_956_970, new ClipImagePreprocessor().MaxPixels);
    }

    [Fact]
    public void BytesAndStreamsAreNamedInErrors()
    {
        byte[] text = "hello"u8.ToArray();
        Assert.StartsWith("<bytes>: ", Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(text)).Message);
        Assert.StartsWith("upload 7: ", Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(text, "upload 7")).Message);
        Assert.StartsWith("<stream>: ", Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(new MemoryStream(text))).Message);
        Assert.StartsWith("s3://bucket/x.jpg: ", Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(new MemoryStream(text), "s3://bucket/x.jpg")).Message);
        Assert.Contains("empty", Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(ReadOnlySpan<byte>.Empty, "nothing")).Message);
    }

    [Fact]
    public void ABatchErrorNamesTheItemAndItsPath()
    {
        var good = Fixtures.ReferencePath("images", "flower.jpg");
        var missing = Path.Combine(folder, "no_such_image.jpg");
        var text = WriteFile("notes.png", "text"u8.ToArray());
        var e = Assert.Throws<ClipImageException>(() => Preprocessor.PreprocessBatch([good, good, missing, text]));
        Assert.Equal(2, e.Index);
        Assert.Equal(missing, e.Input);
        Assert.StartsWith($"image 2 ({missing}): no such file", e.Message);
    }

    [Fact]
    public void WrongDestinationLengthOrArguments()
    {
        var path = Fixtures.ReferencePath("images", "flower.jpg");
        Assert.Throws<ArgumentException>(() => Preprocessor.PreprocessInto(path, new float[10]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipImagePreprocessor(0));
        Assert.Throws<ArgumentException>(() => new ClipImagePreprocessor(224, [0.5f, 0.5f]));
        Assert.Throws<ArgumentException>(() => new ClipImagePreprocessor(224, null, [1f, 0f, 1f]));
    }

    [Fact]
    public void ExceptionsAreIOExceptions()
    {
        // Callers that already handle file errors (IOException) handle these too.
        Assert.IsAssignableFrom<IOException>(Assert.Throws<ClipImageException>(() => Preprocessor.Preprocess(Path.Combine(folder, "x.png"))));
    }
}
