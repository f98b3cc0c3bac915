using Clip.MLNet.Tests.Support;
using System.Formats.Tar;
using System.Text.Json.Nodes;

namespace Clip.MLNet.Tests.Indexing;

/// <summary>Bad input to <c>clip index</c>: each a non-zero exit below 128 and one line on stderr naming the input.</summary>
[Collection(IndexCollection.Name)]
public sealed class IndexBadInputTests(IndexCorpus corpus)
{
    private static ProcessRunner.Result Index(params string[] arguments) =>
        IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--quiet", .. arguments]);

    private static void AssertOneLineError(ProcessRunner.Result result, params string[] named)
    {
        Assert.True(result.ExitCode is > 0 and < 128, $"exit {result.ExitCode}: {result.Tail()}");
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr: {result.StdErr}");
        foreach (var n in named) Assert.Contains(n, lines[0]);
    }

    private string FolderWithABrokenImage()
    {
        var folder = corpus.NewFolder("broken");
        File.WriteAllBytes(Path.Combine(folder, "a.jpg"), IndexCorpus.Image(1, "jpg"));
        File.WriteAllBytes(Path.Combine(folder, "b.jpg"), IndexCorpus.Image(2, "jpg")[..200]);
        File.WriteAllBytes(Path.Combine(folder, "c.png"), IndexCorpus.Image(3, "png"));
        return folder;
    }

    [Fact]
    public void AnUnreadableImageIsSkippedAndListed()
    {
        var output = corpus.NewFolder("broken-index");
        var result = Index("--images", FolderWithABrokenImage(), "--output", output);
        Assert.True(result.ExitCode == 0, result.Tail());
        var failed = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "failed", "failed_0.json")))!.AsArray();
        Assert.Single(failed);
        Assert.Equal("b.jpg", (string)failed[0]!["image_path"]!);
        Assert.False(string.IsNullOrWhiteSpace((string)failed[0]!["reason"]!));
        var metadata = Clip.MLNet.Indexing.ClipIndexReader.ReadMetadata(Path.Combine(output, "metadata", "metadata_0.parquet"));
        Assert.Equal(["a.jpg", "c.png"], metadata.Select(m => m.ImagePath));
        Assert.Equal(2, IndexCorpus.ReadRows(Path.Combine(output, "img_emb", "img_emb_0.npy")).Length);
    }

    [Fact]
    public void AnUnreadableImageIsAnErrorWithStrict()
    {
        var folder = FolderWithABrokenImage();
        var output = corpus.NewFolder("strict-index");
        var result = Index("--images", folder, "--output", output, "--strict");
        AssertOneLineError(result, Path.Combine(folder, "b.jpg"));
        Assert.False(File.Exists(Path.Combine(output, "img_emb", "img_emb_0.npy")));
    }

    [Fact]
    public void AManifestWithoutItsPathColumnIsRefused()
    {
        var folder = corpus.NewFolder("no-column");
        var manifest = Path.Combine(folder, "list.csv");
        File.WriteAllText(manifest, "file,caption\na.jpg,hello\n");
        AssertOneLineError(Index("--manifest", manifest, "--output", corpus.NewFolder("out")), manifest, "image_path");
    }

    [Fact]
    public void ATruncatedTarIsRefused()
    {
        var folder = corpus.NewFolder("truncated");
        var shard = Path.Combine(folder, "00.tar");
        using (var stream = File.Create(shard))
        using (var writer = new TarWriter(stream, TarEntryFormat.Pax))
            for (int k = 0; k < 3; k++)
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"k{k}.jpg") { DataStream = new MemoryStream(IndexCorpus.Image(k, "jpg")) });
        using (var stream = new FileStream(shard, FileMode.Open)) stream.SetLength(stream.Length * 2 / 3);
        AssertOneLineError(Index("--webdataset", shard, "--output", corpus.NewFolder("out")), shard, "truncated");
    }

    [Fact]
    public void AnOutputFolderOfAnotherModelOrAnotherPartitionCountIsRefused()
    {
        var folder = corpus.NewFolder("small");
        File.WriteAllBytes(Path.Combine(folder, "a.jpg"), IndexCorpus.Image(5, "jpg"));
        var output = corpus.NewFolder("taken");
        var first = Index("--images", folder, "--output", output, "--partitions", "2");
        Assert.True(first.ExitCode == 0, first.Tail());

        var otherModel = Fixtures.ReferencePath("vit", "hf-gelu");
        var model = IndexCorpus.Cli(["index", "--model", otherModel, "--quiet", "--images", folder, "--output", output, "--partitions", "2"]);
        AssertOneLineError(model, Path.GetFullPath(IndexCorpus.ModelPath), Path.GetFullPath(otherModel), Path.Combine(output, "index.json"));

        var count = Index("--images", folder, "--output", output, "--partitions", "3");
        AssertOneLineError(count, Path.Combine(output, "index.json"), "2 partitions", "3");
    }

    [Fact]
    public void APartitionOutOfRangeIsRefused() =>
        AssertOneLineError(Index("--images", corpus.Images, "--output", corpus.NewFolder("out"), "--partitions", "4", "--partition", "4"), "--partition 4", "--partitions 4");

    [Fact]
    public void APartitionFromTheEnvironmentOutOfRangeIsRefused() =>
        AssertOneLineError(IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--quiet", "--images", corpus.Images, "--output", corpus.NewFolder("out"), "--partitions", "4", "--partition-from-env"],
            new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "7" }), "JOB_COMPLETION_INDEX=7", "--partitions 4");

    [Fact]
    public void PartitionWithoutPartitionsIsRefused() =>
        AssertOneLineError(Index("--images", corpus.Images, "--output", corpus.NewFolder("out"), "--partition", "1"), "--partition", "--partitions");
}
