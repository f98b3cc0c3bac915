using Clip.MLNet.Indexing;
using Clip.MLNet.Tests.Support;
using Parquet;
using Parquet.Schema;

namespace Clip.MLNet.Tests.Indexing;

/// <summary>How index inputs are listed: shard patterns, CSV quoting, TSV and Parquet manifests, folder order.</summary>
public sealed class IndexInputTests
{
    [Fact]
    public void ShardPatternsExpandRangesAndLists()
    {
        Assert.Equal(["s/0008.tar", "s/0009.tar", "s/0010.tar"], BracePattern.Expand("s/{0008..0010}.tar"));
        Assert.Equal(["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"], BracePattern.Expand("{a,b}-{1..2}.tar"));
        Assert.Equal(["plain.tar"], BracePattern.Expand("plain.tar"));
        Assert.Throws<FormatException>(() => BracePattern.Expand("s/{0001..x}.tar"));
        Assert.Throws<FormatException>(() => BracePattern.Expand("s/{0001..0003.tar"));
    }

    [Fact]
    public async Task CsvTsvAndParquetManifestsListPathsAndCaptionsInRowOrder()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("m.csv"), "id,image_path,caption\r\n1,b.jpg,\"two, \"\"quoted\"\"\nlines\"\r\n2,/abs/a.png,plain\r\n");
        var csv = ClipIndexSource.FromManifest(dir.File("m.csv")).List(default);
        Assert.True(csv.HasCaptions);
        Assert.Equal(["b.jpg", "/abs/a.png"], csv.Items.Select(i => i.Name));
        Assert.Equal(["two, \"quoted\"\nlines", "plain"], csv.Items.Select(i => i.Caption));
        Assert.Equal([dir.File("b.jpg"), "/abs/a.png"], csv.Items.Select(i => i.File));

        File.WriteAllText(dir.File("m.tsv"), "file\ttext\nx/c.jpg\ta caption\n");
        var tsv = ClipIndexSource.FromManifest(dir.File("m.tsv"), "file", "text").List(default);
        Assert.Equal(["x/c.jpg"], tsv.Items.Select(i => i.Name));
        Assert.Equal(["a caption"], tsv.Items.Select(i => i.Caption));
        Assert.Throws<InvalidDataException>(() => ClipIndexSource.FromManifest(dir.File("m.tsv"), "file", "caption").List(default));

        var path = new DataField<string>("image_path");
        var other = new DataField<int>("n");
        await using (var stream = File.Create(dir.File("m.parquet")))
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(other, path), stream))
        using (var group = writer.CreateRowGroup())
        {
            await group.WriteAsync(other, new ReadOnlyMemory<int>([1, 2]));
            await group.WriteAsync(path, ["p/1.jpg", "p/2.jpg"]);
        }
        var parquet = ClipIndexSource.FromManifest(dir.File("m.parquet")).List(default);
        Assert.False(parquet.HasCaptions);
        Assert.Equal(["p/1.jpg", "p/2.jpg"], parquet.Items.Select(i => i.Name));
    }

    [Fact]
    public void FoldersAreListedInOrdinalOrderOfTheirRelativePaths()
    {
        using var dir = new TempDir();
        foreach (var name in new[] { "b/Z.jpg", "b/a.PNG", "B/x.bmp", "a.jpg", "a/b.webp", "notes.txt" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(dir.File(name))!);
            File.WriteAllBytes(dir.File(name), [1]);
        }
        var listed = ClipIndexSource.FromImages([dir.Path]).List(default);
        Assert.Equal(["B/x.bmp", "a.jpg", "a/b.webp", "b/Z.jpg", "b/a.PNG"], listed.Items.Select(i => i.Name));
        Assert.Equal(Path.GetFullPath(dir.Path), listed.Root);
    }
}
