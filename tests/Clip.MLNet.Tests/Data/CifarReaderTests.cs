using Clip.MLNet.Data;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Data;

/// <summary>CIFAR-10/100 binary batches written here, read back as interleaved RGB; names from metadata files or built in.</summary>
public class CifarReaderTests
{
    private static byte Pixel(int record, int ch, int y, int x) => (byte)(record * 50 + ch * 80 + y * 3 + x);

    [Fact]
    public void Cifar10RecordsBecomeInterleavedRgbWithLabels()
    {
        using var dir = new TempDir();
        var batch = dir.File("data_batch_1.bin");
        File.WriteAllBytes(batch, new[] { 6, 1, 9 }.SelectMany((label, r) => DatasetFiles.CifarRecord(new[] { (byte)label }, (c, y, x) => Pixel(r, c, y, x))).ToArray());

        var data = CifarReader.Read(new[] { batch });

        Assert.Equal((3, 32, 32, 3), (data.Count, data.Width, data.Height, data.Channels));
        Assert.Equal(new[] { 6, 1, 9 }, data.Labels);
        Assert.Equal(KnownClassNames.Cifar10, data.ClassNames);
        var px = data.Pixels(2);
        // Pixel (y=5, x=7) of record 2: R, G, B side by side.
        int at = (5 * 32 + 7) * 3;
        Assert.Equal(new[] { Pixel(2, 0, 5, 7), Pixel(2, 1, 5, 7), Pixel(2, 2, 5, 7) }, px.Slice(at, 3).ToArray());
    }

    [Fact]
    public void Cifar100FineAndCoarseLabelsComeFromTheirBytes()
    {
        using var dir = new TempDir();
        var file = dir.File("test.bin");
        File.WriteAllBytes(file, DatasetFiles.CifarRecord(new byte[] { 4, 99 }, (c, y, x) => 0)
            .Concat(DatasetFiles.CifarRecord(new byte[] { 19, 0 }, (c, y, x) => 1)).ToArray());

        var fine = CifarReader.Read(new[] { file }, CifarVariant.Cifar100Fine);
        var coarse = CifarReader.Read(new[] { file }, CifarVariant.Cifar100Coarse);

        Assert.Equal(new[] { 99, 0 }, fine.Labels);
        Assert.Equal(new[] { 4, 19 }, coarse.Labels);
        Assert.Equal("worm", fine.ClassNames![99]);
        Assert.Equal("vehicles_2", coarse.ClassNames![19]);
        Assert.Equal(1, fine.Pixels(1)[0]);
    }

    [Fact]
    public void ClassNamesComeFromTheMetadataFileBesideTheBatch()
    {
        using var dir = new TempDir();
        var batch = dir.File("test_batch.bin");
        File.WriteAllBytes(batch, DatasetFiles.CifarRecord(new byte[] { 2 }, (c, y, x) => 0));
        File.WriteAllText(dir.File("batches.meta.txt"), string.Join("\n", Enumerable.Range(0, 10).Select(i => $"thing{i}")) + "\n\n");
        Assert.Equal("thing2", CifarReader.Read(new[] { batch }).ClassNames![2]);

        File.WriteAllText(dir.File("batches.meta.txt"), "a\nb\n");
        var e = Assert.Throws<InvalidDataException>(() => CifarReader.Read(new[] { batch }));
        Assert.Contains("batches.meta.txt", e.Message);
        Assert.Contains("2 class names, 10 expected", e.Message);
    }

    [Fact]
    public void BuiltInCifar100NamesAreTheCanonicalOnes()
    {
        // The CLIP paper's prompt file lists CIFAR-100's classes in label order, with spaces for underscores.
        var prompts = ZeroShotPrompts.Load(Path.Combine(Fixtures.Data, "zero_shot_prompts.json"), "CIFAR100");
        Assert.Equal(100, KnownClassNames.Cifar100Fine.Count);
        Assert.Equal(prompts.ClassNames, KnownClassNames.Cifar100Fine.Select(KnownClassNames.ToPromptName));
        var cifar10 = ZeroShotPrompts.Load(Path.Combine(Fixtures.Data, "zero_shot_prompts.json"), "CIFAR10");
        Assert.Equal(cifar10.ClassNames, KnownClassNames.Cifar10);
        Assert.Equal(20, KnownClassNames.Cifar100Coarse.Distinct().Count());
    }

    [Fact]
    public void TruncatedBatchIsNamed()
    {
        using var dir = new TempDir();
        var batch = dir.File("data_batch_1.bin");
        File.WriteAllBytes(batch, DatasetFiles.CifarRecord(new byte[] { 1 }, (c, y, x) => 0).Concat(new byte[100]).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => CifarReader.Read(new[] { batch }));
        Assert.Contains(batch, e.Message);
        Assert.Contains("3,073-byte CIFAR-10 records", e.Message);
    }

    [Fact]
    public void EmptyBatchAndLabelOutsideTheClassesAreNamed()
    {
        using var dir = new TempDir();
        var empty = dir.File("empty.bin");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        Assert.Contains(empty, Assert.Throws<InvalidDataException>(() => CifarReader.Read(new[] { empty })).Message);

        var bad = dir.File("bad.bin");
        File.WriteAllBytes(bad, DatasetFiles.CifarRecord(new byte[] { 10 }, (c, y, x) => 0));
        var e = Assert.Throws<InvalidDataException>(() => CifarReader.Read(new[] { bad }));
        Assert.Contains(bad, e.Message);
        Assert.Contains("record 0 has label 10", e.Message);
    }

    [Fact]
    public void FindsSplitsInTheExtractedFolder()
    {
        using var dir = new TempDir();
        var inner = Directory.CreateDirectory(dir.File("cifar-10-batches-bin")).FullName;
        foreach (var n in new[] { "data_batch_2.bin", "data_batch_1.bin", "test_batch.bin" })
            File.WriteAllBytes(Path.Combine(inner, n), DatasetFiles.CifarRecord(new byte[] { 1 }, (c, y, x) => 0));
        Assert.Equal(new[] { "data_batch_1.bin", "data_batch_2.bin" }, CifarReader.FindSplit(dir.Path, CifarVariant.Cifar10, "train").Select(Path.GetFileName));
        var spec = DatasetSpec.Parse($"c10=cifar10:{dir.Path}");
        Assert.Equal("c10", spec.Name);
        Assert.Equal(1, spec.Load().Count);
        Assert.Equal(2, spec.Load("train").Count);
    }
}
