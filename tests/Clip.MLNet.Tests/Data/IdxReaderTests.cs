using Clip.MLNet.Data;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Data;

/// <summary>MNIST-style idx files, written here, read back; and the ways they go wrong.</summary>
public class IdxReaderTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsPixelsAndLabelsPlainOrGzipped(bool gzip)
    {
        using var dir = new TempDir();
        var labels = new byte[] { 3, 0, 9, 1, 7 };
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 5, 4, 6, labels, gzip);

        var data = IdxReader.Read(images, lab, KnownClassNames.FashionMnist);

        Assert.Equal((5, 6, 4, 1), (data.Count, data.Width, data.Height, data.Channels));
        Assert.Equal("t10k", data.Name);
        var expected = DatasetFiles.Pixels(5, 4, 6);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(expected.AsSpan(i * 24, 24).ToArray(), data.Pixels(i).ToArray());
            Assert.Equal(labels[i], data.Label(i));
        }
        Assert.Equal("Ankle boot", data.ClassNames![data.Label(2)]);
        Assert.Equal(expected, data.AllPixels.ToArray());
    }

    [Fact]
    public void DefaultClassNamesAreTheDigits()
    {
        using var dir = new TempDir();
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "train", 2, 2, 2, new byte[] { 4, 2 }, gzip: false);
        Assert.Equal(KnownClassNames.Mnist, IdxReader.Read(images, lab).ClassNames);
    }

    [Fact]
    public void FindsASplitInAFolder()
    {
        using var dir = new TempDir();
        var test = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 2, 2, 2, new byte[] { 1, 2 }, gzip: true);
        var train = DatasetFiles.WriteMnistPair(dir.Path, "train", 3, 2, 2, new byte[] { 1, 2, 3 }, gzip: false);
        Assert.Equal(test, IdxReader.FindSplit(dir.Path, "test"));
        Assert.Equal(train, IdxReader.FindSplit(dir.Path, "train"));
        var spec = DatasetSpec.Parse($"fashion-mnist:{dir.Path}");
        var loaded = spec.Load();
        Assert.Equal(2, loaded.Count);
        Assert.Equal("fashion-mnist", loaded.Name);
        Assert.Equal(KnownClassNames.FashionMnist, loaded.ClassNames);
        Assert.Equal(3, spec.Load("train").Count);
    }

    [Fact]
    public void WrongMagicIsNamed()
    {
        using var dir = new TempDir();
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 2, 2, 2, new byte[] { 1, 2 }, gzip: false);
        // The labels file where the images file belongs.
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(lab, lab));
        Assert.Contains(lab, e.Message);
        Assert.Contains("0x00000801", e.Message);
        Assert.Contains("not an idx file of images", e.Message);
    }

    [Fact]
    public void TruncatedImagesAreNamed()
    {
        using var dir = new TempDir();
        var images = DatasetFiles.WriteIdx(dir.File("x-images-idx3-ubyte"), 0x803, new[] { 3, 28, 28 }, new byte[3 * 784 - 10]);
        var labels = DatasetFiles.WriteIdx(dir.File("x-labels-idx1-ubyte"), 0x801, new[] { 3 }, new byte[3]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, labels));
        Assert.Contains(images, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("3 images of 28x28", e.Message);
    }

    [Fact]
    public void TruncatedGzipIsNamed()
    {
        using var dir = new TempDir();
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 50, 28, 28, new byte[50], gzip: true);
        var bytes = File.ReadAllBytes(images);
        File.WriteAllBytes(images, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, lab));
        Assert.Contains(images, e.Message);
    }

    [Fact]
    public void LabelCountMustMatchImageCount()
    {
        using var dir = new TempDir();
        var images = DatasetFiles.WriteIdx(dir.File("a-images-idx3-ubyte"), 0x803, new[] { 3, 2, 2 }, new byte[12]);
        var labels = DatasetFiles.WriteIdx(dir.File("a-labels-idx1-ubyte"), 0x801, new[] { 2 }, new byte[2]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, labels));
        Assert.Contains(labels, e.Message);
        Assert.Contains("2 labels for the 3 images", e.Message);
    }

    [Fact]
    public void EmptyDatasetIsAnError()
    {
        using var dir = new TempDir();
        var images = DatasetFiles.WriteIdx(dir.File("a-images-idx3-ubyte"), 0x803, new[] { 0, 28, 28 }, Array.Empty<byte>());
        var labels = DatasetFiles.WriteIdx(dir.File("a-labels-idx1-ubyte"), 0x801, new[] { 0 }, Array.Empty<byte>());
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, labels));
        Assert.Contains(images, e.Message);
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void LabelOutsideTheClassesIsNamed()
    {
        using var dir = new TempDir();
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 3, 2, 2, new byte[] { 0, 11, 1 }, gzip: false);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, lab, KnownClassNames.FashionMnist));
        Assert.Contains(lab, e.Message);
        Assert.Contains("label 1 is 11", e.Message);
    }

    [Fact]
    public void TrailingBytesAreAnError()
    {
        using var dir = new TempDir();
        var images = DatasetFiles.WriteIdx(dir.File("a-images-idx3-ubyte"), 0x803, new[] { 1, 2, 2 }, new byte[5]);
        var labels = DatasetFiles.WriteIdx(dir.File("a-labels-idx1-ubyte"), 0x801, new[] { 1 }, new byte[1]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(images, labels));
        Assert.Contains("1 bytes after", e.Message);
    }
}
