using System.Formats.Tar;
using System.Text;
using Clip.MLNet.Search;
using Clip.MLNet.Tests.Indexing;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Search;

/// <summary>The scan kernels and the library type, without a model.</summary>
[Collection(SearchCollection.Name)]
public sealed class ClipIndexSearcherTests(SearchCorpus corpus)
{
    private static (Half[] Rows, float[] Queries) Random(int n, int d, int q, int seed)
    {
        var random = new Random(seed);
        var rows = new Half[n * d];
        for (int i = 0; i < rows.Length; i++)
        {
            double v = (random.NextDouble() - 0.5) * 0.2;
            rows[i] = (i % 97) switch { 0 => (Half)0.0, 1 => (Half)(-0.0), 2 => (Half)(v * 1e-4), 3 => (Half)(-3e-6), _ => (Half)v }; // zeros and subnormals too
        }
        var queries = Enumerable.Range(0, q * d).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        return (rows, queries);
    }

    [Theory]
    [InlineData(1, 512, 512)]
    [InlineData(1, 96, 512)]  // one query, a row not a multiple of 64: the tail step
    [InlineData(3, 512, 512)]
    [InlineData(4, 64, 512)]
    [InlineData(1, 512, 256)] // the 256-bit kernel
    [InlineData(2, 48, 512)]  // a multiple of 16, not of 32: the 256-bit kernel
    [InlineData(1, 512, 0)]   // convert, then dot
    [InlineData(1, 40, 512)]  // not a multiple of 16: convert, then dot
    [InlineData(17, 512, 512)] // the matrix-product path
    [InlineData(64, 96, 512)]
    public unsafe void ScanEqualsBruteForce(int q, int d, int maxWidth)
    {
        int saved = EmbeddingScan.MaxWidth;
        EmbeddingScan.MaxWidth = maxWidth;
        try { ScanEqualsBruteForceCore(q, d); }
        finally { EmbeddingScan.MaxWidth = saved; }
    }

    private static unsafe void ScanEqualsBruteForceCore(int q, int d)
    {
        const int n = 5003, k = 25;
        var (rows, queries) = Random(n, d, q, seed: q * 1000 + d);
        fixed (Half* data = rows)
        {
            // Two segments, ids continuing across them.
            var segments = new[] { new EmbeddingSegment(data, 2000, 0), new EmbeddingSegment(data + 2000L * d, n - 2000, 2000) };
            var tops = EmbeddingScan.Scan(segments, queries, q, d, k, threads: 2);
            for (int j = 0; j < q; j++)
            {
                var expected = Enumerable.Range(0, n).Select(i =>
                {
                    double s = 0;
                    for (int c = 0; c < d; c++) s += (double)(float)rows[i * d + c] * queries[j * d + c];
                    return (Score: s, Id: (long)i);
                }).OrderByDescending(e => e.Score).Take(k).ToArray();
                var actual = tops[j].Sorted();
                Assert.Equal(k, actual.Length);
                for (int r = 0; r < k; r++)
                {
                    Assert.True(Math.Abs(actual[r].Score - expected[r].Score) <= 1e-4, $"query {j} rank {r}: {actual[r].Score} vs {expected[r].Score}");
                    double own = 0;
                    for (int c = 0; c < d; c++) own += (double)(float)rows[actual[r].Id * d + c] * queries[j * d + c];
                    Assert.True(Math.Abs(actual[r].Score - own) <= 1e-4, $"query {j} rank {r}: id {actual[r].Id}");
                }
            }
        }
    }

    [Theory]
    [InlineData(512, 512)]
    [InlineData(96, 512)]
    [InlineData(512, 256)]
    [InlineData(512, 0)]
    public unsafe void AQueryInABatchScoresBitForBitAsAlone(int d, int maxWidth)
    {
        const int n = 3001;
        var (rows, queries) = Random(n, d, ClipIndexSearcher.IndependentBatchSize, seed: d + maxWidth);
        int saved = EmbeddingScan.MaxWidth;
        EmbeddingScan.MaxWidth = maxWidth;
        try
        {
            fixed (Half* data = rows)
            {
                var segments = new[] { new EmbeddingSegment(data, n, 0) };
                var batch = EmbeddingScan.Scan(segments, queries, ClipIndexSearcher.IndependentBatchSize, d, 20, threads: 2);
                for (int j = 0; j < ClipIndexSearcher.IndependentBatchSize; j++)
                {
                    var alone = EmbeddingScan.Scan(segments, queries[(j * d)..((j + 1) * d)], 1, d, 20, threads: 2);
                    Assert.Equal(alone[0].Sorted(), batch[j].Sorted());
                }
            }
        }
        finally { EmbeddingScan.MaxWidth = saved; }
    }

    [Fact]
    public void TopKKeepsTheBestWithTiesToTheSmallerId()
    {
        var top = new TopK(3);
        foreach (var (s, id) in new[] { (0.5f, 7L), (0.9f, 3L), (0.5f, 2L), (0.1f, 1L), (0.9f, 9L), (0.5f, 1L) }) top.Add(s, id);
        Assert.Equal([(0.9f, 3L), (0.9f, 9L), (0.5f, 1L)], top.Sorted());
    }

    [Fact]
    public void VectorQueriesWithoutAModelMatchBruteForceAndCarryMetadata()
    {
        using var searcher = ClipIndexSearcher.Open(corpus.Index, new ClipIndexSearchOptions { LoadModel = false });
        Assert.Null(searcher.Model);
        Assert.Equal(SearchCorpus.ImageCount, searcher.Count);
        var rows = corpus.Rows();
        var query = rows[42].Row.Select((v, i) => v + (i % 3 == 0 ? 0.01f : 0f)).ToArray();
        var hits = searcher.Search(query, 5);
        Assert.Equal(rows[42].Path, hits[0].Path);
        Assert.Equal(42, hits[0].Id);
        Assert.Equal(rows[42].Path, searcher.Entry(42).ImagePath);
        var batch = searcher.Search([rows[0].Row, rows[299].Row, rows[150].Row], 2);
        Assert.Equal([rows[0].Path, rows[299].Path, rows[150].Path], batch.Select(b => b[0].Path));
        Assert.Throws<InvalidOperationException>(() => searcher.SearchText("a cat", 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => searcher.Search(query, 0));
        Assert.Throws<ArgumentException>(() => searcher.Search(new float[7], 3));
        Assert.Throws<ArgumentException>(() => searcher.Search(new float[searcher.Dimension], 3));
        var bytes = searcher.ReadImage(42);
        Assert.Equal(File.ReadAllBytes(Path.Combine(corpus.Images, rows[42].Path)), bytes);
    }

    [Fact]
    public void WebDatasetItemsAreReadFromTheirShardAndCarryTheirCaptions()
    {
        using var temp = new TempDir();
        var images = new Dictionary<string, (byte[] Bytes, string Caption)>();
        for (int s = 0; s < 2; s++)
        {
            using var stream = File.Create(Path.Combine(temp.Path, $"shard-{s}.tar"));
            using var writer = new TarWriter(stream, TarEntryFormat.Pax);
            for (int k = 0; k < 4; k++)
            {
                var key = $"part/s{s}k{k}";
                var bytes = IndexCorpus.Image(100 + s * 10 + k, k % 2 == 0 ? "jpg" : "png", 64, 48);
                var caption = $"caption {s}-{k}";
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, key + (k % 2 == 0 ? ".jpg" : ".png")) { DataStream = new MemoryStream(bytes) });
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, key + ".txt") { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(caption)) });
                images[$"shard-{s}.tar/{key}"] = (bytes, caption);
            }
        }
        var index = Path.Combine(temp.Path, "index");
        var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--webdataset", Path.Combine(temp.Path, "shard-{0..1}.tar"), "--output", index, "--partitions", "2", "--quiet"]);
        Assert.True(result.ExitCode == 0, result.Tail());
        using var searcher = ClipIndexSearcher.Open(index, new ClipIndexSearchOptions { LoadModel = false });
        Assert.Equal(8, searcher.Count);
        for (long id = 0; id < searcher.Count; id++)
        {
            var entry = searcher.Entry(id);
            Assert.Equal(images[entry.ImagePath].Caption, entry.Caption);
            Assert.Equal(images[entry.ImagePath].Bytes, searcher.ReadImage(id));
        }
        var rows = IndexCorpus.ReadRows(Path.Combine(index, "img_emb", "img_emb_1.npy"));
        var hit = searcher.Search(rows[1], 1)[0];
        Assert.Equal(searcher.Entry(5).ImagePath, hit.Path);
        Assert.Equal(searcher.Entry(5).Caption, hit.Caption);
    }
}
