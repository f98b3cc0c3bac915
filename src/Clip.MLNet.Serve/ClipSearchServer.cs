using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Clip.MLNet.Search;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SkiaSharp;

namespace Clip.MLNet.Serve;

/// <summary>
/// <c>clip serve</c>: a search page and a JSON API over one <see cref="ClipIndexSearcher"/> (one model, loaded once) on
/// Kestrel. <c>GET /api/search?text=...&amp;k=...</c> answers <c>clip search --json</c>'s array; <c>POST /api/search</c>
/// searches by the image of the multipart field <c>image</c>; <c>GET /thumb/{id}</c> is a JPEG thumbnail of result row
/// <c>id</c> (read from its file or WebDataset shard: no path is ever taken from a request); <c>GET /</c> is the page.
/// Searches are queued, and those waiting together are answered by one scan (see <c>SearchQueue</c>); a bad
/// request is answered 4xx and the server goes on.
/// </summary>
public sealed class ClipSearchServer : IAsyncDisposable
{
    /// <summary>The largest upload accepted (16 MiB); a larger body is answered 413.</summary>
    public const long MaxUploadBytes = 16 << 20;

    /// <summary>The largest k a request may ask for once k is clamped to the index size.</summary>
    public const int MaxK = 10_000;

    /// <summary>Results on the page.</summary>
    public const int PageResults = 24;

    private const int ThumbnailSize = 256;
    private const int CachedThumbnails = 4096;

    private readonly WebApplication app;
    private readonly ClipIndexSearcher searcher;
    private readonly SearchQueue queue;
    private readonly ConcurrentDictionary<long, byte[]> thumbnails = new();

    private ClipSearchServer(WebApplication app, ClipIndexSearcher searcher)
    {
        this.app = app;
        this.searcher = searcher;
        queue = new SearchQueue(searcher);
    }

    /// <summary>The addresses the server listens on (the actual port when 0 was asked for).</summary>
    public IReadOnlyList<string> Urls => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    /// <summary>Starts serving <paramref name="searcher"/> (which must have a model) on <paramref name="host"/>:<paramref name="port"/> (0: any free port).</summary>
    public static async Task<ClipSearchServer> StartAsync(ClipIndexSearcher searcher, string host = "127.0.0.1", int port = 8080, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(searcher);
        ArgumentNullException.ThrowIfNull(host);
        if (searcher.Model is null) throw new ArgumentException("the searcher has no model: open it with one to serve text and image queries", nameof(searcher));
        if (port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "the port must be 0 to 65535");
        IPAddress address;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) address = IPAddress.Loopback;
        else if (!IPAddress.TryParse(host, out address!)) throw new ArgumentException($"--host {host}: not an IP address (for example 127.0.0.1, or 0.0.0.0 for every interface)", nameof(host));

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, port);
            k.Limits.MaxRequestBodySize = MaxUploadBytes + (64 << 10);
        });
        builder.Services.Configure<FormOptions>(o => { o.MultipartBodyLengthLimit = MaxUploadBytes; o.ValueCountLimit = 16; });
        var app = builder.Build();
        var server = new ClipSearchServer(app, searcher);
        server.Map();
        await app.StartAsync(cancellation);
        return server;
    }

    /// <summary>Waits until the server is stopped (Ctrl+C, or <paramref name="cancellation"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => app.WaitForShutdownAsync(cancellation);

    private void Map()
    {
        app.MapGet("/", (Func<HttpContext, Task<IResult>>)Page);
        app.MapGet("/api/search", (Func<HttpContext, Task<IResult>>)SearchByText);
        app.MapPost("/api/search", (Func<HttpContext, Task<IResult>>)SearchByImage).DisableAntiforgery();
        app.MapGet("/thumb/{id:long}", Thumbnail);
        app.MapGet("/api/info", () => Results.Json(new { index = searcher.Folder, model = searcher.Info.ModelName, items = searcher.Count, dim = searcher.Dimension, scans = queue.Scans, queries = queue.Queries }));
        app.MapFallback((HttpContext c) => Results.Content(SearchJson.Error($"{c.Request.Path}: no such page"), "application/json", statusCode: 404));
    }

    private async Task<IResult> SearchByText(HttpContext context)
    {
        var query = context.Request.Query;
        if (!TryK(query["k"], 10, out int k, out var bad)) return bad!;
        var text = query["text"].ToString();
        if (string.IsNullOrWhiteSpace(text)) return Problem(400, "text: the query is empty (GET /api/search?text=...&k=...)");
        bool thumbs = IsTrue(query["thumbs"]);
        return await Run(() => searcher.EmbedTexts([text])[0], k, thumbs);
    }

    private async Task<IResult> SearchByImage(HttpContext context)
    {
        var query = context.Request.Query;
        if (!TryK(query["k"], 10, out int k, out var bad)) return bad!;
        if (!context.Request.HasFormContentType) return Problem(415, "POST /api/search takes multipart/form-data with the image in the field 'image'");
        if (context.Request.ContentLength > MaxUploadBytes) return Problem(413, $"the upload has {context.Request.ContentLength} bytes, more than the {MaxUploadBytes} allowed");
        IFormCollection form;
        try { form = await context.Request.ReadFormAsync(context.RequestAborted); }
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException or IOException)
        {
            bool tooLarge = e is BadHttpRequestException { StatusCode: 413 } || e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase);
            return Problem(tooLarge ? 413 : 400, tooLarge ? $"the upload is larger than the {MaxUploadBytes} bytes allowed" : $"the form cannot be read: {e.Message}");
        }
        var file = form.Files.GetFile("image");
        if (file is null) return Problem(400, "no image: send the file in the multipart field 'image'");
        if (file.Length == 0) return Problem(400, $"image {file.FileName}: empty file");
        if (file.Length > MaxUploadBytes) return Problem(413, $"image {file.FileName}: {file.Length} bytes, more than the {MaxUploadBytes} allowed");
        var bytes = new byte[file.Length];
        await using (var stream = file.OpenReadStream()) await stream.ReadExactlyAsync(bytes, context.RequestAborted);
        var name = string.IsNullOrEmpty(file.FileName) ? "the uploaded image" : file.FileName;
        return await Run(() => searcher.EmbedImage(bytes, name), k, IsTrue(query["thumbs"]));
    }

    /// <summary>Runs a search in the queue; bad input becomes a 4xx.</summary>
    private async Task<IResult> Run(Func<float[]> embed, int k, bool thumbs)
    {
        try
        {
            var results = await queue.Search(embed, k);
            return Results.Content(SearchJson.Write(results, thumbs), "application/json; charset=utf-8");
        }
        catch (ClipImageException e) { return Problem(415, OneLine(e.Message)); }
        catch (ArgumentException e) { return Problem(400, OneLine(e.Message)); }
    }

    private IResult Thumbnail(long id)
    {
        if (id < 0 || id >= searcher.Count) return Problem(404, $"no result {id} (the index has {searcher.Count} rows)");
        if (thumbnails.TryGetValue(id, out var cached)) return Results.Bytes(cached, "image/jpeg");
        byte[] encoded;
        try { encoded = searcher.ReadImage(id, MaxUploadBytes * 4); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return Problem(404, OneLine(e.Message));
        }
        var jpeg = Shrink(encoded);
        if (jpeg is null) return Problem(422, $"result {id} ({searcher.Entry(id).ImagePath}): not a decodable image");
        if (thumbnails.Count < CachedThumbnails) thumbnails.TryAdd(id, jpeg);
        return Results.Bytes(jpeg, "image/jpeg");
    }

    /// <summary>The image scaled down to fit <see cref="ThumbnailSize"/> (never up), as JPEG; null when it cannot be decoded.</summary>
    private static byte[]? Shrink(byte[] encoded)
    {
        using var bitmap = SKBitmap.Decode(encoded);
        if (bitmap is null || bitmap.Width <= 0 || bitmap.Height <= 0) return null;
        double scale = Math.Min(1.0, (double)ThumbnailSize / Math.Max(bitmap.Width, bitmap.Height));
        int w = Math.Max(1, (int)Math.Round(bitmap.Width * scale)), h = Math.Max(1, (int)Math.Round(bitmap.Height * scale));
        using var resized = scale < 1 ? bitmap.Resize(new SKImageInfo(w, h), SKFilterQuality.Medium) : null;
        using var image = SKImage.FromBitmap(resized ?? bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 85);
        return data?.ToArray();
    }

    private async Task<IResult> Page(HttpContext context)
    {
        var q = context.Request.Query["q"].ToString();
        IReadOnlyList<ClipSearchResult> initial = [];
        string? error = null;
        if (!string.IsNullOrWhiteSpace(q))
        {
            try { initial = await queue.Search(() => searcher.EmbedTexts([q])[0], PageResults); }
            catch (ArgumentException e) { error = OneLine(e.Message); }
        }
        return Results.Content(SearchPage.Render(q, initial, error, searcher.Count, PageResults), "text/html; charset=utf-8");
    }

    private bool TryK(string? value, int fallback, out int k, out IResult? bad)
    {
        bad = null;
        k = fallback;
        long count = searcher.Count;
        if (string.IsNullOrEmpty(value)) return true;
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out k)) { bad = Problem(400, $"k={value}: not an integer"); return false; }
        if (k <= 0) { bad = Problem(400, $"k must be positive, got {k}"); return false; }
        k = (int)Math.Min(k, Math.Max(1, count)); // clamped to the index size, as clip search does
        if (k > MaxK) { bad = Problem(400, $"k={k}: at most {MaxK} results per request"); return false; }
        return true;
    }

    private static bool IsTrue(string? value) => value is "1" or "true" or "True";

    private static IResult Problem(int status, string message) => Results.Content(SearchJson.Error(message), "application/json; charset=utf-8", statusCode: status);

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();

    /// <summary>Stops the server (the searcher stays the caller's).</summary>
    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        queue.Dispose();
    }
}
