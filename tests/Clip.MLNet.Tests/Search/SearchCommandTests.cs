using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Clip.MLNet.Tests.Indexing;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Search;

/// <summary><c>clip search</c> and <c>clip serve</c> as outside checks run them, against brute force over the index's own arrays.</summary>
[Collection(SearchCollection.Name)]
public sealed class SearchCommandTests(SearchCorpus corpus)
{
    internal sealed record Hit(int Rank, float Score, string Path, string? Caption);

    internal static Hit[] Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(e =>
        {
            Assert.Equal(["rank", "score", "path", "caption"], e.EnumerateObject().Select(p => p.Name).Take(4));
            return new Hit(e.GetProperty("rank").GetInt32(), e.GetProperty("score").GetSingle(), e.GetProperty("path").GetString()!,
                e.GetProperty("caption").ValueKind == JsonValueKind.Null ? null : e.GetProperty("caption").GetString());
        }).ToArray();
    }

    private Hit[] CliSearch(params string[] arguments)
    {
        var result = IndexCorpus.Cli(["search", "--index", corpus.Index, .. arguments]);
        Assert.True(result.ExitCode == 0, result.Tail());
        return Parse(result.StdOut);
    }

    [Theory]
    [InlineData("a photo of a temple", 20)]
    [InlineData("a red bicycle at night", 7)]
    public void JsonScoresEqualBruteForceOverTheIndexArrays(string text, int k)
    {
        var hits = CliSearch("--text", text, "--k", k.ToString(), "--json");
        var query = corpus.EmbedText(text);
        var brute = corpus.Rows().Select(r => (Score: (float)r.Row.Select((v, i) => (double)v * query[i]).Sum(), r.Path))
            .OrderByDescending(r => r.Score).ToArray();
        var byPath = brute.ToDictionary(b => b.Path, b => b.Score);
        Assert.Equal(k, hits.Length);
        for (int i = 0; i < k; i++)
        {
            Assert.Equal(i + 1, hits[i].Rank);
            Assert.True(Math.Abs(hits[i].Score - brute[i].Score) <= 2e-3, $"rank {i + 1}: {hits[i].Score} vs brute force {brute[i].Score}");
            Assert.True(Math.Abs(hits[i].Score - byPath[hits[i].Path]) <= 2e-3, $"{hits[i].Path}: {hits[i].Score} vs its brute-force score {byPath[hits[i].Path]}");
            Assert.Null(hits[i].Caption);
            if (i > 0) Assert.True(hits[i].Score <= hits[i - 1].Score, "best first");
        }
    }

    [Fact]
    public void KDefaultsTo10AndIsClampedToTheIndexSize()
    {
        Assert.Equal(10, CliSearch("--text", "a dog", "--json").Length);
        var all = CliSearch("--text", "a dog", "--k", "100000", "--json");
        Assert.Equal(SearchCorpus.ImageCount, all.Length);
        Assert.Equal(SearchCorpus.ImageCount, all.Select(h => h.Path).Distinct().Count());
        var table = IndexCorpus.Cli(["search", "--index", corpus.Index, "--text", "a dog", "--k", "3"]);
        Assert.True(table.ExitCode == 0, table.Tail());
        Assert.Equal(4, table.StdOut.Trim().Split('\n').Length); // header + 3 rows
    }

    [Fact]
    public void AnImageFindsItselfFirst()
    {
        var image = Path.Combine(corpus.Images, "set1", "item005.png");
        var hits = CliSearch("--image", image, "--k", "3", "--json");
        Assert.Equal("set1/item005.png", hits[0].Path);
        Assert.InRange(hits[0].Score, 0.995f, 1.005f);
    }

    [Fact]
    public async Task ApiSearchReturnsTheSameListAsTheCommand()
    {
        var expected = CliSearch("--text", "a photo of a temple", "--k", "15", "--json");
        using var http = new HttpClient { BaseAddress = new Uri(corpus.ServerUrl) };
        var response = await http.GetAsync("/api/search?text=a+photo+of+a+temple&k=15");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var actual = Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(expected.Select(h => (h.Rank, h.Path, h.Caption)), actual.Select(h => (h.Rank, h.Path, h.Caption)));
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i].Score - actual[i].Score) <= 1e-5, $"rank {i + 1}");
        var all = Parse(await http.GetStringAsync("/api/search?text=a+photo+of+a+temple&k=1000000"));
        Assert.Equal(SearchCorpus.ImageCount, all.Length); // clamped to the index size, as clip search does
    }

    [Fact]
    public async Task ManyConcurrentRequestsAreAllAnsweredCorrectly()
    {
        using var http = new HttpClient { BaseAddress = new Uri(corpus.ServerUrl), Timeout = TimeSpan.FromMinutes(3) };
        string[] texts = ["a photo of a temple", "a red bicycle at night", "stripes", "a green field", "a blue square", "noise"];
        var expected = new Dictionary<string, string>();
        foreach (var t in texts) expected[t] = await http.GetStringAsync($"/api/search?k=12&text={Uri.EscapeDataString(t)}");
        var image = await File.ReadAllBytesAsync(Path.Combine(corpus.Images, "set2", "item010.jpg"));
        var before = JsonDocument.Parse(await http.GetStringAsync("/api/info")).RootElement;
        var tasks = Enumerable.Range(0, 60).Select(async i =>
        {
            switch (i % 4)
            {
                case 0:
                case 1:
                    var t = texts[i % texts.Length];
                    var body = await http.GetStringAsync($"/api/search?k=12&text={Uri.EscapeDataString(t)}");
                    // Batched with whatever else was waiting, the answer is the one the query gets alone, bit for bit.
                    Assert.Equal(expected[t], body);
                    break;
                case 2:
                    using (var form = new MultipartFormDataContent())
                    {
                        var content = new ByteArrayContent(image);
                        content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
                        form.Add(content, "image", "item010.jpg");
                        var response = await http.PostAsync("/api/search?k=5", form);
                        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                        Assert.Equal("set2/item010.jpg", Parse(await response.Content.ReadAsStringAsync())[0].Path);
                    }
                    break;
                default:
                    var thumb = await http.GetAsync($"/thumb/{i}");
                    Assert.Equal(HttpStatusCode.OK, thumb.StatusCode);
                    Assert.Equal("image/jpeg", thumb.Content.Headers.ContentType?.MediaType);
                    var bytes = await thumb.Content.ReadAsByteArrayAsync();
                    Assert.True(bytes.Length > 100 && bytes[0] == 0xFF && bytes[1] == 0xD8, "a JPEG");
                    break;
            }
        }).ToArray();
        await Task.WhenAll(tasks);
        // Requests that waited together were answered by one pass over the index.
        var after = JsonDocument.Parse(await http.GetStringAsync("/api/info")).RootElement;
        long scans = after.GetProperty("scans").GetInt64() - before.GetProperty("scans").GetInt64();
        long queries = after.GetProperty("queries").GetInt64() - before.GetProperty("queries").GetInt64();
        Assert.Equal(45, queries);
        Assert.True(scans < queries, $"{queries} queries in {scans} scans");
        Assert.Equal(12, Parse(await http.GetStringAsync("/api/search?k=12&text=still+serving")).Length);
    }

    [Fact]
    public async Task BadRequestsAre4xxAndTheServerKeepsServing()
    {
        using var http = new HttpClient { BaseAddress = new Uri(corpus.ServerUrl) };
        async Task Expect(HttpStatusCode status, Task<HttpResponseMessage> request, string what)
        {
            var response = await request;
            Assert.True(response.StatusCode == status, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
        await Expect(HttpStatusCode.BadRequest, http.GetAsync("/api/search?text=&k=5"), "empty query");
        await Expect(HttpStatusCode.BadRequest, http.GetAsync("/api/search?text=%20%20&k=5"), "blank query");
        await Expect(HttpStatusCode.BadRequest, http.GetAsync("/api/search?text=a+cat&k=0"), "k=0");
        await Expect(HttpStatusCode.BadRequest, http.GetAsync("/api/search?text=a+cat&k=-3"), "k<0");
        await Expect(HttpStatusCode.BadRequest, http.GetAsync("/api/search?text=a+cat&k=ten"), "k not a number");
        using (var form = new MultipartFormDataContent { { new ByteArrayContent("just some text, not an image"u8.ToArray()), "image", "notes.txt" } })
            await Expect(HttpStatusCode.UnsupportedMediaType, http.PostAsync("/api/search", form), "non-image upload");
        using (var form = new MultipartFormDataContent { { new ByteArrayContent(new byte[17 << 20]), "image", "huge.jpg" } })
        {
            // Expect: 100-continue, as curl and browsers send large bodies: the refusal comes before the body is sent.
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/search") { Content = form };
            request.Headers.ExpectContinue = true;
            await Expect(HttpStatusCode.RequestEntityTooLarge, http.SendAsync(request), "oversized upload");
        }
        using (var form = new MultipartFormDataContent { { new StringContent("x"), "other" } })
            await Expect(HttpStatusCode.BadRequest, http.PostAsync("/api/search", form), "no image field");
        foreach (var traversal in new[] { "/thumb/../../../etc/passwd", "/thumb/..%2F..%2F..%2Fetc%2Fpasswd", "/thumb/%2Fetc%2Fpasswd", "/thumb/-1", "/thumb/99999999", "/thumb/1.5", "/thumb/set0%2Fitem000.jpg" })
        {
            var response = await http.GetAsync(traversal);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode is >= 400 and < 500, $"{traversal}: {(int)response.StatusCode}");
            Assert.DoesNotContain("root:", body);
        }
        Assert.Equal(3, Parse(await http.GetStringAsync("/api/search?k=3&text=still+serving")).Length);
    }

    [Fact]
    public void AnIndexOfAnotherModelIsRefusedNamingBoth()
    {
        var other = Fixtures.ReferencePath("vit", "hf-gelu");
        var result = IndexCorpus.Cli(["search", "--index", corpus.Index, "--model", other, "--text", "a cat"]);
        Assert.Equal(2, result.ExitCode);
        var line = result.StdErr.Trim();
        Assert.DoesNotContain('\n', line);
        Assert.Contains(Path.GetFullPath(IndexCorpus.ModelPath), line);
        Assert.Contains(other, line);
        // The same refusal when index.json names a model whose weights changed.
        var copy = corpus.CopyIndex("other-model");
        var json = Path.Combine(copy, "index.json");
        File.WriteAllText(json, File.ReadAllText(json).Replace(Path.GetFullPath(IndexCorpus.ModelPath), other));
        var renamed = IndexCorpus.Cli(["search", "--index", copy, "--text", "a cat"]);
        Assert.Equal(2, renamed.ExitCode);
        Assert.Contains(other, renamed.StdErr);
        Assert.Contains("sha256", renamed.StdErr);
    }

    [Fact]
    public void MissingOrTruncatedEmbeddingsAreOneLineErrors()
    {
        var missing = corpus.CopyIndex("missing");
        File.Delete(Path.Combine(missing, "img_emb", "img_emb_1.npy"));
        var a = IndexCorpus.Cli(["search", "--index", missing, "--text", "a cat"]);
        Assert.Equal(2, a.ExitCode);
        Assert.Contains("img_emb_1.npy", a.StdErr);
        Assert.Contains("missing", a.StdErr);

        var truncated = corpus.CopyIndex("truncated");
        var file = Path.Combine(truncated, "img_emb", "img_emb_2.npy");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length - 1000)]);
        var b = IndexCorpus.Cli(["search", "--index", truncated, "--text", "a cat"]);
        Assert.Equal(2, b.ExitCode);
        Assert.Contains("img_emb_2.npy", b.StdErr);
        Assert.Contains("truncated", b.StdErr);

        var header = corpus.CopyIndex("header");
        File.WriteAllBytes(Path.Combine(header, "img_emb", "img_emb_0.npy"), bytes[..40]);
        var c = IndexCorpus.Cli(["search", "--index", header, "--text", "a cat"]);
        Assert.Equal(2, c.ExitCode);
        Assert.Contains("img_emb_0.npy", c.StdErr);

        foreach (var r in new[] { a, b, c }) Assert.Single(r.StdErr.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("--text", "", "empty")]
    [InlineData("--text", "   ", "empty")]
    [InlineData("--k", "0", "--k must be positive")]
    [InlineData("--k", "-2", "--k must be positive")]
    public void BadQueriesAreOneLineErrors(string flag, string value, string expected)
    {
        string[] args = flag == "--k" ? ["search", "--index", corpus.Index, "--text", "a cat", "--k", value] : ["search", "--index", corpus.Index, "--text", value];
        var result = IndexCorpus.Cli(args);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.StdErr);
        Assert.Single(result.StdErr.Trim().Split('\n'));
    }

    [Fact]
    public void ANonImageQueryFileIsAnError()
    {
        var notImage = Path.Combine(corpus.CopyIndex("notimage"), "notes.jpg");
        File.WriteAllText(notImage, "not an image");
        var result = IndexCorpus.Cli(["search", "--index", corpus.Index, "--image", notImage]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("notes.jpg", result.StdErr);
    }
}
