using System.Diagnostics;
using System.Formats.Tar;
using System.Text;
using Clip.MLNet.Indexing;

namespace Clip.MLNet.Tests.Indexing;

/// <summary><c>clip index</c> as outside checks run it: partitions, byte-identical reruns, a killed run resumed, captions.</summary>
[Collection(IndexCollection.Name)]
public sealed class IndexCommandTests(IndexCorpus corpus)
{
    [Fact]
    public void FourPartitionsHoldUnitRowsMatchingTheModelForTheImageTheirMetadataNames()
    {
        var layout = ClipIndexReader.ReadLayout(corpus.FullRun);
        Assert.Equal(4, layout.Partitions);
        var info = ClipIndexReader.ReadInfo(corpus.FullRun);
        Assert.Equal(IndexCorpus.ImageCount, info.Items);
        Assert.Equal(Path.GetFullPath(IndexCorpus.ModelPath), info.ModelName);
        Assert.False(Directory.Exists(Path.Combine(corpus.FullRun, "text_emb")), "no captions, no text_emb");
        var names = new List<string>();
        for (int p = 0; p < 4; p++)
        {
            Assert.True(File.Exists(Path.Combine(corpus.FullRun, "img_emb", $"img_emb_{p}.npy")));
            var rows = IndexCorpus.ReadRows(layout.ImageEmbeddingPath(p));
            var metadata = ClipIndexReader.ReadMetadata(layout.MetadataPath(p));
            Assert.Equal(IndexCorpus.ImageCount / 4, rows.Length);
            Assert.Equal(rows.Length, metadata.Count);
            for (int r = 0; r < rows.Length; r++)
            {
                double norm = Math.Sqrt(rows[r].Sum(v => (double)v * v));
                Assert.InRange(norm, 0.995, 1.005);
                Assert.Null(metadata[r].Caption);
                var expected = corpus.EmbedImage(Path.Combine(corpus.Images, metadata[r].ImagePath));
                double cosine = IndexCorpus.Cosine(rows[r], expected);
                Assert.True(cosine >= 0.999, $"partition {p} row {r} ({metadata[r].ImagePath}): cosine {cosine}");
            }
            names.AddRange(metadata.Select(m => m.ImagePath));
        }
        // Every image once, in ordinal order of the relative paths.
        Assert.Equal(IndexCorpus.ImageCount, names.Distinct().Count());
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.Contains(names, n => n.EndsWith(".bmp", StringComparison.Ordinal));
        Assert.Contains("group0/even/img000.jpg", names);
    }

    [Fact]
    public void PartitionsRunOneAtATimeAreByteIdenticalToOneRun()
    {
        var output = corpus.NewFolder("one-at-a-time");
        int runs = 0;
        foreach (var p in new[] { 2, 0, 3, 1 })
        {
            var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", corpus.Images, "--output", output, "--partition", p.ToString(), .. IndexCorpus.RunFlags]);
            Assert.True(result.ExitCode == 0, result.Tail());
            Assert.True(File.Exists(Path.Combine(output, "img_emb", $"img_emb_{p}.npy")));
            Assert.Equal(++runs, Directory.GetFiles(Path.Combine(output, "img_emb")).Length); // that partition only
        }
        IndexCorpus.AssertSameFiles(corpus.FullRun, output);
    }

    [Fact]
    public void PartitionFromEnvironmentTakesTheSchedulersIndex()
    {
        var output = corpus.NewFolder("from-env");
        var k8s = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", corpus.Images, "--output", output, "--partition-from-env", .. IndexCorpus.RunFlags],
            new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "1", ["SLURM_ARRAY_TASK_ID"] = null });
        Assert.True(k8s.ExitCode == 0, k8s.Tail());
        var slurm = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", corpus.Images, "--output", output, "--partition-from-env", .. IndexCorpus.RunFlags],
            new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = null, ["SLURM_ARRAY_TASK_ID"] = "13", ["SLURM_ARRAY_TASK_MIN"] = "10" });
        Assert.True(slurm.ExitCode == 0, slurm.Tail());
        Assert.Equal(["img_emb_1.npy", "img_emb_3.npy"], Directory.GetFiles(Path.Combine(output, "img_emb")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var p in new[] { 1, 3 })
            Assert.Equal(File.ReadAllBytes(Path.Combine(corpus.FullRun, "img_emb", $"img_emb_{p}.npy")), File.ReadAllBytes(Path.Combine(output, "img_emb", $"img_emb_{p}.npy")));
    }

    [Fact]
    public void ARunKilledAfterItsFirstPartitionResumesByteIdenticalWithoutRewritingIt()
    {
        var output = corpus.NewFolder("killed");
        var first = Path.Combine(output, "img_emb", "img_emb_0.npy");
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { IndexCorpus.ToolPath, "index", "--model", IndexCorpus.ModelPath, "--images", corpus.Images, "--output", output }.Concat(IndexCorpus.RunFlags))
            info.ArgumentList.Add(a);
        using (var process = Process.Start(info)!)
        {
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var clock = Stopwatch.StartNew();
            while (!File.Exists(first) && !process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(1);
            process.Kill(); // SIGKILL
            process.WaitForExit();
        }
        Assert.True(File.Exists(first), "the first partition was not written before the run ended");
        int complete = Directory.GetFiles(Path.Combine(output, "img_emb")).Length;
        Assert.True(complete < 4, "the run finished before it was killed: nothing was resumed");
        var before = File.GetLastWriteTimeUtc(first);
        var length = new FileInfo(first).Length;

        var rerun = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", corpus.Images, "--output", output, .. IndexCorpus.RunFlags]);
        Assert.True(rerun.ExitCode == 0, rerun.Tail());
        Assert.Equal(before, File.GetLastWriteTimeUtc(first));
        Assert.Equal(length, new FileInfo(first).Length);
        IndexCorpus.AssertSameFiles(corpus.FullRun, output);
        // The killed run's partial files were removed by the rerun of their partitions.
        Assert.Empty(Directory.GetFiles(Path.Combine(output, ".partial")));
    }

    [Fact]
    public void WebDatasetShardsWithCaptionsGiveTextEmbeddingsAndParquetCaptions()
    {
        var folder = corpus.NewFolder("wds");
        var expected = new List<(string Name, string? Caption)>();
        for (int s = 0; s < 2; s++)
        {
            using var stream = File.Create(Path.Combine(folder, $"shard-{s:D2}.tar"));
            using var writer = new TarWriter(stream, TarEntryFormat.Pax);
            for (int k = 0; k < 5; k++)
            {
                var key = $"sample{s}{k:D3}";
                Add(writer, key + ".jpg", IndexCorpus.Image(s * 10 + k, "jpg"));
                string? caption = k % 3 == 2 ? null : $"a photo number {s * 10 + k}, with stripes";
                if (caption is not null) Add(writer, key + ".txt", Encoding.UTF8.GetBytes(caption + "\n"));
                expected.Add(($"shard-{s:D2}.tar/{key}", caption));
            }
        }
        var output = corpus.NewFolder("wds-index");
        var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--webdataset", Path.Combine(folder, "shard-{00..01}.tar"), "--output", output, "--partitions", "2", "--quiet"]);
        Assert.True(result.ExitCode == 0, result.Tail());
        CheckCaptioned(output, 2, expected);

        static void Add(TarWriter writer, string name, byte[] data) =>
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
    }

    [Fact]
    public void CsvManifestWithCaptionsGivesTextEmbeddingsAndParquetCaptions()
    {
        var folder = corpus.NewFolder("manifest");
        Directory.CreateDirectory(Path.Combine(folder, "pics"));
        var csv = new StringBuilder("image_path,caption\n");
        var expected = new List<(string Name, string? Caption)>();
        for (int i = 0; i < 6; i++)
        {
            var name = $"pics/p{i}.png";
            File.WriteAllBytes(Path.Combine(folder, name), IndexCorpus.Image(200 + i, "png"));
            var caption = i == 3 ? "a \"quoted\" caption, with a comma" : $"picture {i}";
            csv.Append(name).Append(',').Append('"').Append(caption.Replace("\"", "\"\"")).Append("\"\n");
            expected.Add((name, caption));
        }
        var manifest = Path.Combine(folder, "list.csv");
        File.WriteAllText(manifest, csv.ToString());
        var output = corpus.NewFolder("manifest-index");
        var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--manifest", manifest, "--output", output, "--quiet"]);
        Assert.True(result.ExitCode == 0, result.Tail());
        CheckCaptioned(output, 1, expected);
        var row = IndexCorpus.ReadRows(Path.Combine(output, "img_emb", "img_emb_0.npy"))[3];
        Assert.True(IndexCorpus.Cosine(row, corpus.EmbedImage(Path.Combine(folder, "pics", "p3.png"))) >= 0.999);
    }

    private void CheckCaptioned(string output, int partitions, List<(string Name, string? Caption)> expected)
    {
        var layout = ClipIndexReader.ReadLayout(output);
        Assert.True(ClipIndexReader.ReadInfo(output).HasCaptions);
        var names = new List<string>();
        var captions = new List<string?>();
        var texts = new List<float[]>();
        for (int p = 0; p < partitions; p++)
        {
            var metadata = ClipIndexReader.ReadMetadata(layout.MetadataPath(p));
            var images = IndexCorpus.ReadRows(layout.ImageEmbeddingPath(p));
            var text = IndexCorpus.ReadRows(layout.TextEmbeddingPath(p));
            Assert.Equal(metadata.Count, images.Length);
            Assert.Equal(metadata.Count, text.Length);
            names.AddRange(metadata.Select(m => m.ImagePath));
            captions.AddRange(metadata.Select(m => m.Caption));
            texts.AddRange(text);
        }
        Assert.Equal(expected.Select(e => e.Name), names);
        Assert.Equal(expected.Select(e => e.Caption), captions);
        var reference = corpus.EmbedTexts(expected.Select(e => e.Caption ?? "").ToList());
        for (int i = 0; i < texts.Count; i++)
            Assert.True(IndexCorpus.Cosine(texts[i], reference[i]) >= 0.999, $"caption {i}: cosine {IndexCorpus.Cosine(texts[i], reference[i])}");
    }
}
