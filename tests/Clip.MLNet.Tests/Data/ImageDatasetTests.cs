using Clip.MLNet.Data;
using Clip.MLNet.Tests.Support;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Clip.MLNet.Tests.Data;

/// <summary>The dataset type: its data view, PNG bytes of raw pixels, subsets; and the dataset spec grammar.</summary>
public class ImageDatasetTests
{
    private static RawImageDataset Gray(int count = 4) =>
        new("gray", 5, 3, 1, DatasetFiles.Pixels(count, 3, 5), Enumerable.Range(0, count).Select(i => i % 3).ToArray(), new[] { "a", "b", "c" });

    private static RawImageDataset Rgb() =>
        new("rgb", 2, 2, 3, Enumerable.Range(0, 2 * 12).Select(i => (byte)(i * 10)).ToArray(), new[] { 1, 0 }, new[] { "x", "y" });

    [Fact]
    public void PngBytesDecodeToExactlyThePixelsGrayAsGray()
    {
        var gray = Gray();
        var png = gray.EncodePng(2);
        Assert.Equal(0, png[25]);   // IHDR colour type 0: gray, so preprocessing follows Pillow's rule for mode L
        using (var bitmap = SKBitmap.Decode(png, new SKImageInfo(5, 3, SKColorType.Gray8, SKAlphaType.Opaque)))
            Assert.Equal(gray.Pixels(2).ToArray(), bitmap.Bytes);

        var rgb = Rgb();
        var rgbPng = rgb.EncodePng(1);
        Assert.Equal(2, rgbPng[25]);   // colour type 2: RGB, no alpha
        using var decoded = SKBitmap.Decode(rgbPng, new SKImageInfo(2, 2, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rgba = decoded.Bytes;
        var expected = rgb.Pixels(1).ToArray();
        for (int p = 0; p < 4; p++)
            Assert.Equal(expected.AsSpan(3 * p, 3).ToArray(), rgba.AsSpan(4 * p, 3).ToArray());
    }

    [Fact]
    public void DataViewHasImageBytesAndALabelKeyOverTheClassNames()
    {
        var ml = new MLContext(seed: 1);
        var raw = Gray(5);
        var view = raw.ToImageDataset(captions: new[] { "c0", "c1", "c2", "c3", "c4" }).ToDataView(ml);

        Assert.Equal(5, view.GetRowCount());
        var image = view.Schema[ImageDataset.ImageColumnName];
        Assert.Equal(NumberDataViewType.Byte, Assert.IsType<VectorDataViewType>(image.Type).ItemType);
        var label = view.Schema[ImageDataset.LabelColumnName];
        Assert.Equal(3ul, Assert.IsType<KeyDataViewType>(label.Type).Count);
        var keyValues = default(VBuffer<ReadOnlyMemory<char>>);
        label.GetKeyValues(ref keyValues);
        Assert.Equal(new[] { "a", "b", "c" }, keyValues.DenseValues().Select(v => v.ToString()));

        Assert.Equal(raw.Labels!.Select(l => (uint)l + 1), view.GetColumn<uint>(ImageDataset.LabelColumnName));
        Assert.Equal(new[] { "c0", "c1", "c2", "c3", "c4" }, view.GetColumn<string>(ImageDataset.CaptionColumnName));
        var bytes = view.GetColumn<byte[]>(ImageDataset.ImageColumnName).ToArray();
        Assert.Equal(raw.EncodePng(3), bytes[3]);
    }

    [Fact]
    public void FileDatasetViewHasPathsAndNoCaptionColumnWithoutCaptions()
    {
        var ml = new MLContext(seed: 1);
        var data = ImageDataset.FromFiles("f", new[] { "/x/1.png", "/x/2.png" }, new[] { 1, 0 }, new[] { "p", "q" });
        var view = data.ToDataView(ml);
        Assert.Equal(new[] { "/x/1.png", "/x/2.png" }, view.GetColumn<string>(ImageDataset.ImageColumnName));
        Assert.Null(view.Schema.GetColumnOrNull(ImageDataset.CaptionColumnName));
        Assert.Equal(new uint[] { 2, 1 }, view.GetColumn<uint>(ImageDataset.LabelColumnName));
    }

    [Fact]
    public void SampleAndSplitAreSeededKeepOrderAndPartitionTheRows()
    {
        var paths = Enumerable.Range(0, 40).Select(i => $"/d/{i:D2}.png").ToArray();
        var data = ImageDataset.FromFiles("d", paths, Enumerable.Range(0, 40).Select(i => i % 4).ToArray(), new[] { "a", "b", "c", "d" });
        var s1 = data.Sample(10, seed: 3);
        Assert.Equal(10, s1.Count);
        Assert.Equal(s1.ImagePaths, data.Sample(10, seed: 3).ImagePaths);
        Assert.NotEqual(s1.ImagePaths, data.Sample(10, seed: 4).ImagePaths);
        Assert.Equal(s1.ImagePaths!.Order(StringComparer.Ordinal), s1.ImagePaths);
        Assert.NotEqual(paths.Take(10), s1.ImagePaths);   // not simply the first rows
        Assert.All(s1.ImagePaths!.Zip(s1.Labels!), x => Assert.Equal(int.Parse(x.First[3..5]) % 4, x.Second));

        var (a, b) = data.Split(0.25, seed: 1);
        Assert.Equal(10, a.Count);
        Assert.Equal(30, b.Count);
        Assert.Equal(paths, a.ImagePaths!.Concat(b.ImagePaths!).Order(StringComparer.Ordinal));

        var raw = Gray(6).ToImageDataset().Subset(new[] { 5, 1 });
        Assert.Equal(Gray(6).Pixels(5).ToArray(), raw.Raw!.Pixels(0).ToArray());
        Assert.Equal(new[] { 2, 1 }, raw.Labels);
    }

    [Fact]
    public void RawDatasetRefusesInconsistentSizes()
    {
        Assert.Throws<ArgumentException>(() => new RawImageDataset("x", 2, 2, 1, new byte[7], null, null));
        Assert.Throws<ArgumentException>(() => new RawImageDataset("x", 2, 2, 1, new byte[8], new[] { 0 }, new[] { "a" }));
        var e = Assert.Throws<ArgumentException>(() => new RawImageDataset("x", 2, 2, 1, new byte[8], new[] { 0, 2 }, new[] { "a", "b" }));
        Assert.Contains("image 1 has label 2", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RawImageDataset("x", 2, 2, 4, new byte[16], null, null));
    }

    [Theory]
    [InlineData("fashion-mnist:/data/f", "fashion-mnist", "fashion-mnist", "/data/f")]
    [InlineData("digits=mnist:/a/i.gz,/a/l.gz", "digits", "mnist", "/a/i.gz|/a/l.gz")]
    [InlineData("imagefolder:/data/pets/", "pets", "imagefolder", "/data/pets/")]
    [InlineData("csv:/d/x,y.csv;caption=text", "x,y", "csv", "/d/x,y.csv")]
    [InlineData("cifar100:/d;labels=coarse", "cifar100-coarse", "cifar100", "/d")]
    [InlineData("C10 = cifar10 : /d/a.bin , /d/b.bin ;split=train", "C10", "cifar10", "/d/a.bin|/d/b.bin")]
    public void SpecsParse(string spec, string name, string kind, string locations)
    {
        var parsed = DatasetSpec.Parse(spec);
        Assert.Equal(name, parsed.Name);
        Assert.Equal(kind, parsed.Kind);
        Assert.Equal(locations.Split('|'), parsed.Locations);
    }

    [Theory]
    [InlineData("/data/pets", "no KIND")]
    [InlineData("jpeg:/data/pets", "unknown kind 'jpeg'")]
    [InlineData("imagefolder:", "no location")]
    [InlineData("mnist:/d;split=val", "split=val")]
    [InlineData("mnist:/d;colour=red", "unknown key 'colour'")]
    [InlineData("cifar10:/d;labels=fine", "cifar100 only")]
    [InlineData("mnist:/a,/b,/c", "IMAGES,LABELS")]
    [InlineData("imagefolder:/d;caption=x", "csv and tsv only")]
    [InlineData("=mnist:/d", "empty NAME")]
    public void BadSpecsSayWhatIsWrong(string spec, string problem)
    {
        var e = Assert.Throws<FormatException>(() => DatasetSpec.Parse(spec));
        Assert.Contains(problem, e.Message);
        Assert.Contains(spec, e.Message);
    }

    [Fact]
    public void ClassesFileReplacesAnImageFoldersNames()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("data/n01/a.png"), SKColors.Red);
        DatasetFiles.WritePng(dir.File("data/n02/b.png"), SKColors.Blue);
        File.WriteAllText(dir.File("names.txt"), "red thing\nblue thing\n");
        var data = DatasetSpec.Parse($"imagefolder:{dir.File("data")};classes={dir.File("names.txt")}").Load();
        Assert.Equal(new[] { "red thing", "blue thing" }, data.ClassNames);
        Assert.Equal("data", data.Name);
    }
}
