using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace Clip.MLNet.Registry;

/// <summary>
/// Brings one file into the cache: a cached copy is used only if its SHA-256 is the expected one; a
/// download goes to <c>FILE.part</c> (resumed with an HTTP range where the server allows), is verified,
/// then renamed into place. A lock file lets one process at a time download a given file.
/// </summary>
internal sealed class FileFetcher(HttpClient client, bool offline, IProgress<ClipDownloadProgress>? progress, CancellationToken cancellation)
{
    internal const int MaxAttempts = 4;
    private const int MaxRedirects = 10;
    private const int BufferSize = 1 << 20;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a connection may stay silent before the attempt is abandoned (and resumed).</summary>
    internal static TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The pause before a retry, times the attempt number.</summary>
    internal static TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    private static readonly Lazy<HttpClient> Shared = new(() =>
    {
        // Redirects are followed by hand so that the hub's declared hash (on the first hop) is seen.
        // UseProxy with no Proxy set means HttpClient.DefaultProxy: the system / environment settings.
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = true,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        var c = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        var version = typeof(FileFetcher).Assembly.GetName().Version?.ToString(3) ?? "0";
        c.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("Clip.MLNet", version));
        return c;
    });

    /// <summary>The library's shared client.</summary>
    public static HttpClient SharedClient => Shared.Value;

    public bool Offline => offline;

    public enum CacheState { Missing, Good, Mismatch }

    /// <summary>
    /// Whether <paramref name="path"/> holds the expected file: the pinned hash, else the hash recorded at its
    /// first download. A file with neither (placed by hand) is accepted and its hash recorded. A file that does
    /// not match is moved aside to <c>FILE.mismatch</c>, never used.
    /// </summary>
    public async Task<(CacheState State, ClipDownloadException? Problem)> CheckCachedAsync(string path, string? pinned, Uri url)
    {
        if (!File.Exists(path)) return (CacheState.Missing, null);
        var expected = pinned ?? ReadRecord(path);
        var actual = await HashFileAsync(path, cancellation).ConfigureAwait(false);
        if (expected is null)
        {
            // Placed by hand: trusted as it is, and held to this hash from now on (if the cache is writable).
            try { WriteRecord(path, actual); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            return (CacheState.Good, null);
        }
        if (actual == expected) return (CacheState.Good, null);
        var aside = path + ".mismatch";
        try { File.Move(path, aside, overwrite: true); }
        catch (IOException) { aside = path; } // another process moved or replaced it meanwhile
        return (CacheState.Mismatch, new ClipDownloadException(ClipDownloadFailure.HashMismatch,
            $"{path}: the cached file's SHA-256 is {actual}, not {expected} ({Why(pinned)}); it was moved to {aside} and not used. " +
            $"Delete it, or place the right file ({url}) there{(pinned is null ? $", or delete {RecordPath(path)} to accept a changed file" : "")}",
            url, path) { RejectedPath = aside });
    }

    /// <summary>The verified file at <paramref name="path"/>: from the cache, or downloaded from <paramref name="url"/>.</summary>
    public async Task<string> FetchAsync(string label, Uri url, string path, string? pinned)
    {
        var (state, problem) = await CheckCachedAsync(path, pinned, url).ConfigureAwait(false);
        if (state == CacheState.Good) return path;
        if (offline)
            throw problem ?? OfflineMissing(label, [(url, path)]);

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (await LockAsync(path + ".lock").ConfigureAwait(false))
        {
            // Another process may have finished the same file while this one waited for the lock.
            if (File.Exists(path))
            {
                (state, _) = await CheckCachedAsync(path, pinned, url).ConfigureAwait(false);
                if (state == CacheState.Good) return path;
            }
            await DownloadAsync(label, url, path, pinned).ConfigureAwait(false);
        }
        return path;
    }

    public static ClipDownloadException OfflineMissing(string label, IReadOnlyList<(Uri Url, string Path)> missing) =>
        new(ClipDownloadFailure.Offline,
            $"{label} is not in the cache and offline mode is on (ClipPretrainedOptions.Offline or {ClipPretrained.OfflineVariable}); " +
            "to use it offline, place " + string.Join("; and ", missing.Select(m => $"{m.Url} at {m.Path}")),
            missing[0].Url, missing[0].Path);

    private async Task DownloadAsync(string label, Uri url, string path, string? pinned)
    {
        var part = path + ".part";
        var expected = pinned ?? ReadRecord(path);
        Transfer? result = null;
        for (int attempt = 1; result is null; attempt++)
        {
            try
            {
                result = await TransferAsync(label, url, part).ConfigureAwait(false);
            }
            catch (TransientException e)
            {
                // Retry only an attempt that got somewhere: a server that cannot be reached at all is reported at once.
                if (!e.MadeProgress || attempt >= MaxAttempts)
                {
                    long kept = File.Exists(part) ? new FileInfo(part).Length : 0;
                    throw new ClipDownloadException(ClipDownloadFailure.Unreachable,
                        $"could not download {url}: {e.Message}" +
                        (attempt > 1 ? $" (after {attempt} attempts)" : "") +
                        (kept > 0 ? $"; the {kept} bytes received are kept in {part} and the next attempt resumes there" : "") +
                        $". Check the network and proxy settings (HTTPS_PROXY), or place the file by hand at {path}",
                        url, path, e.InnerException);
                }
                await Task.Delay(RetryDelay * attempt, cancellation).ConfigureAwait(false);
            }
        }

        var want = expected ?? result.DeclaredSha256;
        if (want is not null && result.Sha256 != want)
        {
            var rejected = path + ".rejected";
            File.Move(part, rejected, overwrite: true);
            var why = expected is not null ? Why(pinned) : "as the server declared it";
            throw new ClipDownloadException(ClipDownloadFailure.HashMismatch,
                $"{url}: the downloaded file's SHA-256 is {result.Sha256}, not {want} ({why}); it was set aside at {rejected} and not used" +
                (expected is not null && pinned is null ? $" (if the file changed on purpose, delete {RecordPath(path)} to accept it)" : ""),
                url, path) { RejectedPath = rejected };
        }
        if (pinned is null) WriteRecord(path, result.Sha256);
        File.Move(part, path, overwrite: true);
        progress?.Report(new ClipDownloadProgress(label, Path.GetFileName(path), url, result.Length, result.Length, Completed: true));
    }

    private static string Why(string? pinned) => pinned is not null ? "pinned by the registry" : "recorded when it was first downloaded";

    private sealed record Transfer(string Sha256, string? DeclaredSha256, long Length);

    /// <summary>A failure worth another attempt (the connection dropped, stalled, or ended early).</summary>
    private sealed class TransientException(string message, bool madeProgress, Exception? inner = null) : Exception(message, inner)
    {
        public bool MadeProgress { get; } = madeProgress;
    }

    private async Task<Transfer> TransferAsync(string label, Uri url, string part)
    {
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        var (response, declared) = await SendAsync(url, have > 0 ? have : null).ConfigureAwait(false);
        using var _ = response;
        var range = response.Content.Headers.ContentRange;
        switch (response.StatusCode)
        {
            case HttpStatusCode.PartialContent when range?.From == have:
                break;
            case HttpStatusCode.PartialContent:
                File.Delete(part); // a range other than the one asked for: start over
                throw new TransientException("the server sent an unexpected range", madeProgress: true);
            case HttpStatusCode.OK:
                have = 0; // the server ignores ranges: the whole file comes again
                break;
            case HttpStatusCode.RequestedRangeNotSatisfiable when have > 0 && range?.Length == have:
                // The partial file is already complete (an earlier run stopped before moving it into place).
                return new Transfer(await HashFileAsync(part, cancellation).ConfigureAwait(false), declared, have);
            case HttpStatusCode.RequestedRangeNotSatisfiable:
                File.Delete(part);
                throw new TransientException("the server refused to resume", madeProgress: true);
            default:
                var code = (int)response.StatusCode;
                throw new ClipDownloadException(ClipDownloadFailure.HttpError,
                    $"{url}: the server answered HTTP {code} {response.ReasonPhrase}" + (code is 401 or 403 or 404 or 410 ? " (no such file, or access is refused)" : ""),
                    url);
        }

        long? total = response.StatusCode == HttpStatusCode.PartialContent
            ? range!.Length ?? (response.Content.Headers.ContentLength is long rest ? have + rest : null)
            : response.Content.Headers.ContentLength;
        var folder = Path.GetDirectoryName(Path.GetFullPath(part))!;
        if (total is long size) CheckFreeSpace(folder, size - have, url, part);

        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        long received = 0;
        try
        {
            // Unbuffered: every write reaches the file inside the try below, so a full disk is reported as such
            // (a buffered stream would fail later, in Dispose, hiding the first error).
            using var file = new FileStream(part, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
            if (have > 0)
            {
                // Resuming: the bytes already here go into the hash first.
                file.SetLength(have);
                int n;
                while ((n = file.Read(buffer, 0, BufferSize)) > 0) hasher.AppendData(buffer, 0, n);
            }
            else
            {
                file.SetLength(0);
            }

            using var body = await response.Content.ReadAsStreamAsync(cancellation).ConfigureAwait(false);
            var lastReport = DateTime.UtcNow - ProgressInterval;
            progress?.Report(new ClipDownloadProgress(label, Path.GetFileName(part[..^5]), url, have, total, false));
            while (true)
            {
                int n;
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
                {
                    idle.CancelAfter(IdleTimeout);
                    try
                    {
                        n = await body.ReadAsync(buffer.AsMemory(0, BufferSize), idle.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException e) when (!cancellation.IsCancellationRequested)
                    {
                        throw new TransientException($"no data for {IdleTimeout.TotalSeconds:0} s", received > 0, e);
                    }
                    catch (Exception e) when (e is IOException or HttpRequestException)
                    {
                        throw new TransientException($"the connection failed after {have} bytes ({e.Message})", received > 0, e);
                    }
                }
                if (n == 0) break;
                file.Write(buffer, 0, n);
                hasher.AppendData(buffer, 0, n);
                received += n;
                have += n;
                if (progress is not null && DateTime.UtcNow - lastReport >= ProgressInterval)
                {
                    lastReport = DateTime.UtcNow;
                    progress.Report(new ClipDownloadProgress(label, Path.GetFileName(part[..^5]), url, have, total, false));
                }
            }
            if (total is long expectedLength && have != expectedLength)
                throw new TransientException($"the transfer ended at {have} of {expectedLength} bytes", received > 0);
            file.Flush(flushToDisk: true);
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            throw DiskFull(url, part, total is long t ? t - have : null, e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new Transfer(Convert.ToHexStringLower(hasher.GetHashAndReset()), declared, have);
    }

    /// <summary>GET with redirects followed by hand; returns the final response and the SHA-256 a hop declared.</summary>
    private async Task<(HttpResponseMessage Response, string? DeclaredSha256)> SendAsync(Uri url, long? from)
    {
        var current = url;
        string? declared = null;
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, current);
            if (from is long f) request.Headers.Range = new RangeHeaderValue(f, null);
            HttpResponseMessage response;
            using (var headers = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
            {
                headers.CancelAfter(IdleTimeout);
                try
                {
                    response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headers.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!cancellation.IsCancellationRequested)
                {
                    throw new TransientException($"{current.Host} did not answer within {IdleTimeout.TotalSeconds:0} s", madeProgress: false, e);
                }
                catch (HttpRequestException e)
                {
                    // A dropped connection after earlier progress is worth a retry; the caller decides from MadeProgress.
                    throw new TransientException(e.Message, madeProgress: from is not null, e);
                }
            }
            declared ??= DeclaredSha256(response);
            if ((int)response.StatusCode is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                current = location.IsAbsoluteUri ? location : new Uri(current, location);
                response.Dispose();
                continue;
            }
            return (response, declared);
        }
        throw new ClipDownloadException(ClipDownloadFailure.HttpError, $"{url}: more than {MaxRedirects} redirects", url);
    }

    /// <summary>The Hugging Face hub names an LFS file's SHA-256 in <c>X-Linked-Etag</c>; other headers are not trusted as hashes.</summary>
    private static string? DeclaredSha256(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("X-Linked-Etag", out var values)) return null;
        var v = values.FirstOrDefault()?.Trim();
        if (v is null) return null;
        if (v.StartsWith("W/", StringComparison.Ordinal)) v = v[2..];
        v = v.Trim('"').ToLowerInvariant();
        return v.Length == 64 && v.All(char.IsAsciiHexDigit) ? v : null;
    }

    private async Task<IDisposable> LockAsync(string lockPath)
    {
        // An exclusive handle is the lock (flock on Unix, a sharing mode on Windows); the system releases it
        // if the process dies. The file itself is never deleted: deleting would let two holders coexist.
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
            }
            catch (IOException e) when (IsLockConflict(e))
            {
                await Task.Delay(100, cancellation).ConfigureAwait(false);
            }
        }
    }

    private static bool IsLockConflict(IOException e) => OperatingSystem.IsWindows()
        ? (e.HResult & 0xFFFF) is 32 or 33      // ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
        : e.HResult is 11 or 35;                 // EWOULDBLOCK (Linux, macOS)

    internal static bool IsDiskFull(IOException e) => OperatingSystem.IsWindows()
        ? (e.HResult & 0xFFFF) is 112 or 39     // ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL
        : e.HResult is 28 or 122 or 69;          // ENOSPC; EDQUOT (Linux, macOS)

    private static void CheckFreeSpace(string folder, long needed, Uri url, string part)
    {
        long free;
        try { free = new DriveInfo(folder).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return; } // unknown: let the writes tell
        if (needed > free) throw DiskFull(url, part, needed, null, free);
    }

    private static ClipDownloadException DiskFull(Uri url, string part, long? needed, Exception? inner, long? free = null) =>
        new(ClipDownloadFailure.DiskFull,
            $"no room to download {url} into {Path.GetDirectoryName(part)}" +
            (needed is long n ? $": it needs {n:N0} more bytes" : "") + (free is long f ? $" and {f:N0} are free" : "") +
            $". Free some space, or set {ClipPretrained.CacheVariable} (or ClipPretrainedOptions.CacheFolder) to a folder on a larger disk",
            url, part[..^5], inner);

    public static async Task<string> HashFileAsync(string path, CancellationToken cancellation)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.SequentialScan | FileOptions.Asynchronous);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellation).ConfigureAwait(false));
    }

    /// <summary>Where the hash of an unpinned file's first verified download is kept (the format of <c>sha256sum</c>).</summary>
    public static string RecordPath(string path) => path + ".sha256";

    private static string? ReadRecord(string path)
    {
        var record = RecordPath(path);
        if (!File.Exists(record)) return null;
        var text = File.ReadAllText(record).Trim();
        var hex = text.Length >= 64 ? text[..64].ToLowerInvariant() : "";
        return hex.All(char.IsAsciiHexDigit) && hex.Length == 64 ? hex : null;
    }

    private static void WriteRecord(string path, string sha256)
    {
        var record = RecordPath(path);
        var temp = $"{record}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, $"{sha256}  {Path.GetFileName(path)}\n");
        File.Move(temp, record, overwrite: true);
    }
}
