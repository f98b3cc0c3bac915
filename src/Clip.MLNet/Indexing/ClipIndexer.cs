using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Clip.MLNet.Imaging;
using Clip.MLNet.Native;
using Microsoft.Win32.SafeHandles;
using Parquet;
using Parquet.Schema;
using static TorchSharp.torch;

namespace Clip.MLNet.Indexing;

/// <summary>How <see cref="ClipIndexer"/> builds an index.</summary>
public sealed class ClipIndexOptions
{
    /// <summary>The index folder (created if missing).</summary>
    public required string OutputFolder { get; init; }

    /// <summary>The model as recorded in <c>index.json</c>: its full path or registered name.</summary>
    public required string ModelName { get; init; }

    /// <summary>SHA-256 (hex) of the model's weights, recorded in and checked against <c>index.json</c> (<see cref="ClipIndexer.ModelSha256"/>).</summary>
    public required string ModelSha256 { get; init; }

    /// <summary>N: the ordered items are cut into this many contiguous partitions (default 1).</summary>
    public int Partitions { get; init; } = 1;

    /// <summary>Images per forward pass (default 32). A batch never spans two partitions.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Make the first unreadable item an error instead of skipping it and listing it in <c>failed/</c>.</summary>
    public bool Strict { get; init; }

    /// <summary>Threads decoding and preprocessing, one batch ahead of the forward pass (default 1).</summary>
    public int PreprocessThreads { get; init; } = 1;

    /// <summary>The tokenizer for captions; the model's own when null.</summary>
    public ClipTokenizer? Tokenizer { get; init; }

    /// <summary>The image preprocessing; the model's own (<see cref="ClipModel.CreateImagePreprocessor"/>) when null.</summary>
    public ClipImagePreprocessor? Preprocessor { get; init; }
}

/// <summary>Where an index run stands, reported after every batch.</summary>
/// <param name="Partition">The partition being written.</param>
/// <param name="ItemsDone">Items done in this run (embedded or skipped as unreadable).</param>
/// <param name="ItemsTotal">Items this run has to do (those of its incomplete partitions).</param>
/// <param name="Failed">Unreadable items so far.</param>
/// <param name="ImagesPerSecond">Items per second since the run started.</param>
/// <param name="Remaining">The estimated time left, once there is a rate.</param>
public sealed record ClipIndexProgress(int Partition, long ItemsDone, long ItemsTotal, long Failed, double ImagesPerSecond, TimeSpan? Remaining);

/// <summary>What happened to one partition.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Written">True when this run wrote it; false when it was complete already (or another process completed it first).</param>
/// <param name="Rows">Embedding rows written.</param>
/// <param name="Failed">Items skipped as unreadable.</param>
/// <param name="Elapsed">The time spent on it.</param>
public sealed record ClipIndexPartitionResult(int Partition, bool Written, long Rows, long Failed, TimeSpan Elapsed);

/// <summary>An index run that cannot go on: an output folder of another index, a partition out of range, an unreadable input.</summary>
public sealed class ClipIndexException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Builds an index of image (and caption) embeddings in clip-retrieval's layout, partition by partition. Each partition
/// is written through temporary files in <c>.partial/</c> renamed into place without replacing, its <c>img_emb</c> file
/// last, so a partition is complete exactly when that file exists; a rerun skips complete partitions, and any process
/// may run any partition (<see cref="RunPartition"/>) against the same folder on a shared filesystem.
/// </summary>
/// <remarks>
/// For the same model, inputs, partition count, batch size, precision and threads on the same machine, the files are
/// byte-identical to an uninterrupted run. Decoding and preprocessing run on other threads one batch ahead of the model.
/// </remarks>
public sealed class ClipIndexer
{
    private readonly ClipModel model;
    private readonly ClipIndexOptions options;
    private readonly ClipIndexItems items;
    private readonly ClipImagePreprocessor preprocessor;
    private readonly ClipTokenizer? tokenizer;

    private ClipIndexer(ClipModel model, ClipIndexOptions options, ClipIndexItems items, ClipIndexInfo info, ClipImagePreprocessor preprocessor, ClipTokenizer? tokenizer)
    {
        this.model = model;
        this.options = options;
        this.items = items;
        this.preprocessor = preprocessor;
        this.tokenizer = tokenizer;
        Info = info;
        Layout = new ClipIndexLayout(Path.GetFullPath(options.OutputFolder), options.Partitions);
    }

    /// <summary>The index's description (<c>index.json</c>).</summary>
    public ClipIndexInfo Info { get; }

    /// <summary>The index's files.</summary>
    public ClipIndexLayout Layout { get; }

    /// <summary>
    /// Lists the source's items and creates the index's <c>index.json</c>, or checks the existing one: an index of another
    /// model, partition count or item list is refused with a <see cref="ClipIndexException"/> naming both.
    /// </summary>
    public static ClipIndexer Open(ClipModel model, ClipIndexSource source, ClipIndexOptions options, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Partitions <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Partitions, "the partition count must be positive");
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "the batch size must be positive");
        if (options.PreprocessThreads <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.PreprocessThreads, "the preprocessing threads must be positive");
        var items = source.List(cancellation);
        var preprocessor = options.Preprocessor ?? model.CreateImagePreprocessor();
        var tokenizer = options.Tokenizer ?? model.Tokenizer;
        if (items.HasCaptions && tokenizer is null)
            throw new ClipIndexException($"{source.Description}: the items have captions, and the model carries no tokenizer to embed them (give one)");
        var info = new ClipIndexInfo(options.ModelName, options.ModelSha256.ToLowerInvariant(), preprocessor.Size, preprocessor.Mean.ToArray(), preprocessor.Std.ToArray(),
            (int)model.Config.EmbedDim, options.Partitions, items.Items.Count, items.Hash(), source.Kind, items.Root, source.Description, items.HasCaptions)
        {
            Resize = ClipIndexInfo.Describe(preprocessor),
        };
        var indexer = new ClipIndexer(model, options, items, info, preprocessor, tokenizer);
        indexer.CreateOrCheckInfo();
        return indexer;
    }

    /// <summary>
    /// SHA-256 (lower-case hex) of a model's weights: of the file, or for a folder (Hugging Face layout) of its files'
    /// names and contents in ordinal order.
    /// </summary>
    public static string ModelSha256(string path)
    {
        if (File.Exists(path))
        {
            using var stream = File.OpenRead(path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        }
        if (!Directory.Exists(path)) throw new FileNotFoundException($"{path}: no such model file or folder", path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.GetFiles(path).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal);
        foreach (var name in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(name + "\0"));
            using var stream = File.OpenRead(Path.Combine(path, name));
            hash.AppendData(SHA256.HashData(stream));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Whether partition <paramref name="partition"/> is complete.</summary>
    public bool IsComplete(int partition) => Layout.IsComplete(CheckPartition(partition));

    /// <summary>
    /// Runs <paramref name="partitions"/> (all when null) in order, skipping complete ones, and reports progress over
    /// the incomplete ones.
    /// </summary>
    public IReadOnlyList<ClipIndexPartitionResult> Run(IEnumerable<int>? partitions = null, IProgress<ClipIndexProgress>? progress = null, CancellationToken cancellation = default)
    {
        var list = (partitions ?? Enumerable.Range(0, Layout.Partitions)).Select(CheckPartition).Distinct().ToList();
        long total = list.Where(p => !Layout.IsComplete(p)).Sum(p => Layout.Range(p, items.Items.Count).Count);
        var counter = new Counter(total);
        var results = new List<ClipIndexPartitionResult>();
        foreach (var p in list)
            results.Add(RunPartitionCore(p, counter, progress, cancellation));
        return results;
    }

    /// <summary>
    /// Runs one partition unless it is complete: callable from any process on the same folder (another worker, another
    /// job of an array). If another process completes it first, this one drops its copy.
    /// </summary>
    public ClipIndexPartitionResult RunPartition(int partition, IProgress<ClipIndexProgress>? progress = null, CancellationToken cancellation = default)
    {
        CheckPartition(partition);
        return RunPartitionCore(partition, new Counter(Layout.IsComplete(partition) ? 0 : Layout.Range(partition, items.Items.Count).Count), progress, cancellation);
    }

    private sealed class Counter(long total)
    {
        public readonly long Total = total;
        public readonly Stopwatch Clock = Stopwatch.StartNew();
        public long Done;
        public long Failed;
    }

    private int CheckPartition(int partition) => partition >= 0 && partition < Layout.Partitions ? partition
        : throw new ClipIndexException($"partition {partition} is out of range: the index {Layout.Root} has {Layout.Partitions} partitions (0 to {Layout.Partitions - 1})");

    private ClipIndexPartitionResult RunPartitionCore(int partition, Counter counter, IProgress<ClipIndexProgress>? progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (Layout.IsComplete(partition)) return new ClipIndexPartitionResult(partition, false, 0, 0, clock.Elapsed);
        var (start, count) = Layout.Range(partition, items.Items.Count);
        foreach (var folder in new[] { "img_emb", "metadata", items.HasCaptions ? "text_emb" : null })
            if (folder is not null) Directory.CreateDirectory(Path.Combine(Layout.Root, folder));
        Directory.CreateDirectory(Layout.PartialFolder);
        RemoveOrphans(partition);
        string Temp(string kind) => Path.Combine(Layout.PartialFolder, $"{kind}_{Layout.Number(partition)}.{Environment.ProcessId}@{Environment.MachineName}.{Guid.NewGuid():N}.tmp");
        var imageTemp = Temp("img_emb");
        var textTemp = items.HasCaptions ? Temp("text_emb") : null;
        var metadataTemp = Temp("metadata");
        var failedTemp = Temp("failed");
        var handles = new ConcurrentDictionary<int, SafeFileHandle>();
        var names = new List<string>();
        var captions = new List<string?>();
        var failures = new List<(string Name, string Reason)>();
        long dim = Info.EmbeddingDim;
        try
        {
            using (var imageWriter = new NpyHalfWriter(imageTemp, dim))
            using (var textWriter = textTemp is null ? null : new NpyHalfWriter(textTemp, dim))
            using (var prefetcher = new ImageBatchPrefetcher(preprocessor, checked((int)count), i => Describe(items.Items[(int)(start + i)]),
                       (i, data) => Fill(items.Items[(int)(start + i)], data, handles), options.BatchSize, prefetch: 1, threads: options.PreprocessThreads, skipFailures: true))
            {
                foreach (var batch in prefetcher.SkippedBatches())
                {
                    ct.ThrowIfCancellationRequested();
                    foreach (var failure in batch.Failures)
                    {
                        var item = items.Items[(int)(start + failure.Index!.Value)];
                        if (options.Strict) throw new ClipImageException(Describe(item), failure.Problem, failure);
                        failures.Add((item.Name, failure.Problem));
                    }
                    if (batch.Rows.Count > 0)
                    {
                        using var scope = NewDisposeScope();
                        using (var features = model.EncodeImage(batch.Pixels))
                            imageWriter.Append(Half(features).bytes);
                        var batchCaptions = batch.Rows.Select(r => items.Items[(int)(start + r)].Caption).ToList();
                        if (textWriter is not null)
                        {
                            using var tokens = tokenizer!.Tokenize(batchCaptions.Select(c => c ?? "").ToList(), truncate: true);
                            using var features = model.EncodeText(tokens);
                            textWriter.Append(Half(features).bytes);
                        }
                        foreach (var r in batch.Rows) names.Add(items.Items[(int)(start + r)].Name);
                        captions.AddRange(batchCaptions);
                    }
                    counter.Done += batch.Rows.Count + batch.Failures.Count;
                    counter.Failed += batch.Failures.Count;
                    Report(partition, counter, progress);
                }
                imageWriter.Complete();
                textWriter?.Complete();
            }
            WriteMetadata(metadataTemp, names, captions);
            if (failures.Count > 0) WriteFailures(failedTemp, failures);

            // Everything else first, the image embeddings last: their presence marks the partition complete.
            if (textTemp is not null) MoveWithoutReplacing(textTemp, Layout.TextEmbeddingPath(partition));
            MoveWithoutReplacing(metadataTemp, Layout.MetadataPath(partition));
            if (failures.Count > 0)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Layout.FailedPath(partition))!);
                MoveWithoutReplacing(failedTemp, Layout.FailedPath(partition));
            }
            bool written = MoveWithoutReplacing(imageTemp, Layout.ImageEmbeddingPath(partition));
            return new ClipIndexPartitionResult(partition, written, names.Count, failures.Count, clock.Elapsed);
        }
        finally
        {
            foreach (var handle in handles.Values) handle.Dispose();
            foreach (var temp in new[] { imageTemp, textTemp, metadataTemp, failedTemp })
                if (temp is not null) TryDelete(temp);
        }
    }

    /// <summary>
    /// Deletes this partition's temporary files left by processes of this machine that are gone (a killed run); files of
    /// other machines, whose processes this one cannot see, are left alone.
    /// </summary>
    private void RemoveOrphans(int partition)
    {
        var prefix = $"_{Layout.Number(partition)}.";
        foreach (var file in Directory.EnumerateFiles(Layout.PartialFolder, "*.tmp"))
        {
            var name = Path.GetFileName(file);
            int at = name.IndexOf(prefix, StringComparison.Ordinal);
            if (at < 0) continue;
            var rest = name[(at + prefix.Length)..^".tmp".Length];         // PID@HOST.GUID
            int host = rest.IndexOf('@'), guid = rest.LastIndexOf('.');
            if (host <= 0 || guid <= host || !int.TryParse(rest.AsSpan(0, host), out int pid)) continue;
            if (rest[(host + 1)..guid] != Environment.MachineName || pid == Environment.ProcessId || IsAlive(pid)) continue;
            TryDelete(file);
        }

        static bool IsAlive(int pid)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException) { return false; }
            catch (InvalidOperationException) { return false; }
        }
    }

    /// <summary>L2-normalised float16 rows on the CPU, contiguous (in the caller's dispose scope).</summary>
    private static Tensor Half(Tensor features) => ClipModel.Normalize(features).to(ScalarType.Float16).cpu().contiguous();

    private static string Describe(ClipIndexItem item) => item.Shard >= 0 ? $"{item.File}/{Path.GetFileName(item.Name)}" : item.File.Length > 0 ? item.File : item.Name;

    private void Fill(ClipIndexItem item, Span<float> destination, ConcurrentDictionary<int, SafeFileHandle> handles)
    {
        if (item.Shard < 0)
        {
            if (item.File.Length == 0) throw new ClipImageException(item.Name, "empty image path");
            preprocessor.PreprocessInto(item.File, destination);
            return;
        }
        if (item.Length > int.MaxValue) throw new ClipImageException(Describe(item), "the image is larger than 2 GiB");
        var handle = handles.GetOrAdd(item.Shard, _ => File.OpenHandle(item.File, FileMode.Open, FileAccess.Read, FileShare.Read));
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, (int)item.Length));
        try
        {
            int length = (int)item.Length, read = 0;
            while (read < length)
            {
                int n = RandomAccess.Read(handle, buffer.AsSpan(read, length - read), item.Offset + read);
                if (n == 0) throw new ClipImageException(Describe(item), "the shard ends inside the image");
                read += n;
            }
            preprocessor.PreprocessInto(buffer.AsSpan(0, length), destination, Describe(item));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Report(int partition, Counter counter, IProgress<ClipIndexProgress>? progress)
    {
        if (progress is null) return;
        double seconds = counter.Clock.Elapsed.TotalSeconds;
        double rate = seconds > 0 ? counter.Done / seconds : 0;
        TimeSpan? remaining = rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, counter.Total - counter.Done) / rate) : null;
        progress.Report(new ClipIndexProgress(partition, counter.Done, counter.Total, counter.Failed, rate, remaining));
    }

    private static void WriteMetadata(string path, List<string> names, List<string?> captions)
    {
        WriteMetadataAsync(path, names, captions).GetAwaiter().GetResult();
    }

    private static async Task WriteMetadataAsync(string path, List<string> names, List<string?> captions)
    {
        var pathField = new DataField<string>("image_path", false);
        var captionField = new DataField<string>("caption", true);
        await using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(pathField, captionField), stream))
        {
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(pathField, names);
            await group.WriteAsync(captionField, captions!);
        }
        stream.Flush(flushToDisk: true);
    }

    private static void WriteFailures(string path, List<(string Name, string Reason)> failures)
    {
        var array = new JsonArray(failures.Select(f => (JsonNode)new JsonObject { ["image_path"] = f.Name, ["reason"] = f.Reason }).ToArray());
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(Encoding.UTF8.GetBytes(array.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n"));
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Puts <paramref name="temp"/> in place as <paramref name="target"/> unless another process did first (atomic, no
    /// replacing: <see cref="NoReplaceFile"/>), then drops <paramref name="temp"/>; true when this call placed it. On a
    /// filesystem without hard links it falls back to a check-then-rename: racing writers of one partition write the same
    /// bytes, and racing index.json writers then may both think they won (the check against the winner is skipped).
    /// </summary>
    internal static bool MoveWithoutReplacing(string temp, string target)
    {
        bool placed = NoReplaceFile.Place(temp, target, racyFallback: true);
        TryDelete(temp);
        return placed;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private void CreateOrCheckInfo()
    {
        Directory.CreateDirectory(Layout.Root);
        var path = Layout.InfoPath;
        if (!File.Exists(path))
        {
            if (Directory.Exists(Path.Combine(Layout.Root, "img_emb")) && Directory.EnumerateFiles(Path.Combine(Layout.Root, "img_emb")).Any())
                throw new ClipIndexException($"{Layout.Root} holds img_emb files but no index.json: not an index this tool wrote (use another output folder)");
            Directory.CreateDirectory(Layout.PartialFolder);
            var temp = Path.Combine(Layout.PartialFolder, $"index.json.{Environment.ProcessId}@{Environment.MachineName}.{Guid.NewGuid():N}.tmp");
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(Encoding.UTF8.GetBytes(Info.ToJson()));
                stream.Flush(flushToDisk: true);
            }
            // Parallel jobs race here: the first rename wins, the others check against it.
            if (MoveWithoutReplacing(temp, path)) return;
        }
        ClipIndexInfo existing;
        try { existing = ClipIndexInfo.Read(path); }
        catch (InvalidDataException e) { throw new ClipIndexException(e.Message, e); }
        if (existing.Mismatch(Info, path) is { } problem) throw new ClipIndexException(problem);
    }
}
