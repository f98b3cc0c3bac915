using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Clip.MLNet.Tests.Support;

/// <summary>
/// A small HTTP server on 127.0.0.1 for download tests: serves byte arrays by path, honours
/// <c>Range: bytes=N-</c>, and can redirect, corrupt, throttle, declare a hash, or drop the connection
/// midway. Every request is recorded. Nothing leaves the machine.
/// </summary>
internal sealed class LocalHttpServer : IDisposable
{
    private readonly HttpListener listener;
    private readonly ConcurrentDictionary<string, ServedFile> files = new(StringComparer.Ordinal);
    private readonly Task loop;

    public LocalHttpServer()
    {
        // Port 0 cannot be given to HttpListener: take a free port from the system, then listen on it.
        for (int attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                BaseUrl = $"http://127.0.0.1:{port}";
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Close();
            }
        }
        loop = Task.Run(AcceptLoop);
    }

    /// <summary><c>http://127.0.0.1:PORT</c>, without a trailing slash.</summary>
    public string BaseUrl { get; } = "";

    /// <summary>Every request received, in order.</summary>
    public ConcurrentQueue<Request> Requests { get; } = new();

    public sealed record Request(string Path, string? Range);

    /// <summary>How one path is served.</summary>
    public sealed class ServedFile(byte[] content)
    {
        public byte[] Content { get; set; } = content;
        /// <summary>Flip one byte in the middle of what is sent.</summary>
        public bool Corrupt { get; set; }
        /// <summary>On the first request only: send this many bytes of the body, then drop the connection.</summary>
        public long? DropFirstAfter { get; set; }
        public bool SupportsRanges { get; set; } = true;
        /// <summary>Pause between 64 KiB chunks.</summary>
        public TimeSpan ChunkDelay { get; set; }
        /// <summary>Sent as <c>X-Linked-Etag</c>, as the Hugging Face hub does for LFS files.</summary>
        public string? DeclaredSha256 { get; set; }
        /// <summary>A Content-Length to announce instead of the real one (the body is then cut short).</summary>
        public long? DeclaredLength { get; set; }
        /// <summary>Answer with a redirect to this path (relative, as the hub does) instead of the content.</summary>
        public string? RedirectTo { get; set; }
        public int Status { get; set; } = 200;
        internal int served;
    }

    public ServedFile Serve(string path, byte[] content, Action<ServedFile>? configure = null)
    {
        var file = new ServedFile(content);
        configure?.Invoke(file);
        files[path] = file;
        return file;
    }

    public int CountRequests(string path) => Requests.Count(r => r.Path == path);

    private async Task AcceptLoop()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => Handle(context));
        }
    }

    private async Task Handle(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var path = context.Request.Url!.AbsolutePath;
            var rangeHeader = context.Request.Headers["Range"];
            Requests.Enqueue(new Request(path, rangeHeader));
            if (!files.TryGetValue(path, out var file))
            {
                response.StatusCode = 404;
                response.Close();
                return;
            }
            if (file.DeclaredSha256 is { } sha) response.AddHeader("X-Linked-Etag", $"\"{sha}\"");
            if (file.RedirectTo is { } target)
            {
                response.StatusCode = 302;
                response.AddHeader("Location", target);
                response.Close();
                return;
            }
            if (file.Status != 200)
            {
                response.StatusCode = file.Status;
                response.Close();
                return;
            }
            var content = file.Content;
            if (file.Corrupt)
            {
                content = (byte[])content.Clone();
                content[content.Length / 2] ^= 0x5A;
            }
            long start = 0;
            if (file.SupportsRanges)
            {
                response.AddHeader("Accept-Ranges", "bytes");
                if (rangeHeader is not null && rangeHeader.StartsWith("bytes=", StringComparison.Ordinal) && rangeHeader.EndsWith('-'))
                {
                    start = long.Parse(rangeHeader["bytes=".Length..^1], CultureInfo.InvariantCulture);
                    if (start >= content.Length)
                    {
                        response.StatusCode = 416;
                        response.AddHeader("Content-Range", $"bytes */{content.Length}");
                        response.Close();
                        return;
                    }
                    response.StatusCode = 206;
                    response.AddHeader("Content-Range", $"bytes {start}-{content.Length - 1}/{content.Length}");
                }
            }
            response.ContentLength64 = file.DeclaredLength ?? content.Length - start;
            int attempt = Interlocked.Increment(ref file.served);
            long limit = attempt == 1 && file.DropFirstAfter is long drop ? drop : long.MaxValue;
            var output = response.OutputStream;
            long sent = 0;
            for (long offset = start; offset < content.Length; offset += 1 << 16)
            {
                int n = (int)Math.Min(1 << 16, content.Length - offset);
                if (sent + n > limit) n = (int)(limit - sent);
                await output.WriteAsync(content.AsMemory((int)offset, n));
                sent += n;
                if (sent >= limit)
                {
                    await output.FlushAsync();
                    response.Abort();
                    return;
                }
                if (file.ChunkDelay > TimeSpan.Zero) await Task.Delay(file.ChunkDelay);
            }
            if (file.DeclaredLength is long declared && declared > content.Length - start)
            {
                response.Abort(); // announced more than there is: cut the connection as a broken server would
                return;
            }
            response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The client went away (as in the disk-full and cancellation tests).
            try { response.Abort(); } catch (ObjectDisposedException) { }
        }
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try { loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
