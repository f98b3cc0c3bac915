using System.Collections.Concurrent;
using System.Formats.Tar;
using Clip.MLNet.Indexing;
using Clip.MLNet.Registry;
using static TorchSharp.torch;

namespace Clip.MLNet.Search;

/// <summary>One search result: a row of the index with its score and metadata.</summary>
/// <param name="Rank">1 for the best result.</param>
/// <param name="Score">The inner product of the normalised query and the row: their cosine similarity.</param>
/// <param name="Id">The row's number over the whole index (partition by partition, rows in order), stable while the index is unchanged.</param>
/// <param name="Path">The metadata's <c>image_path</c>.</param>
/// <param name="Caption">The metadata's <c>caption</c>, or null.</param>
public sealed record ClipSearchResult(int Rank, float Score, long Id, string Path, string? Caption);

/// <summary>How <see cref="ClipIndexSearcher.Open"/> opens an index.</summary>
public sealed class ClipIndexSearchOptions
{
    /// <summary>Load the model that embeds text and image queries (default true); without it only vector queries are answered.</summary>
    public bool LoadModel { get; init; } = true;

    /// <summary>The model to embed queries with: a path or registered name; null takes the one recorded in <c>index.json</c>. A model whose weights differ from the index's is refused.</summary>
    public string? Model { get; init; }

    /// <summary>Cache folder and offline rule for a model given by a registered name (the defaults when null).</summary>
    public ClipPretrainedOptions? Pretrained { get; init; }

    /// <summary>Threads scanning the embeddings (default: the processor count).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Exact top-k search over an index folder written by <c>clip index</c> (clip-retrieval's layout with an <c>index.json</c>).
/// The float16 <c>img_emb</c> files are memory-mapped, never read into managed memory, and every search streams over all
/// partitions, so indexes larger than the RAM work (at the speed of the disk). Queries (texts, images or vectors, one or a
/// batch) are L2-normalised and embedded in float32 by the index's own model, loaded once. Thread-safe: scans run
/// concurrently, the model embeds one request at a time.
/// </summary>
public sealed class ClipIndexSearcher : IDisposable
{
    private readonly MappedEmbeddings[] partitions;
    private readonly long[] firstIds;
    private readonly Lazy<IReadOnlyList<ClipIndexEntry>>[] metadata;
    private readonly ClipIndexLayout layout;
    private readonly ClipImagePreprocessor? preprocessor;
    private readonly int threads;
    private readonly object modelLock = new();
    private readonly ConcurrentDictionary<string, Dictionary<string, (long Offset, long Length)>> shardEntries = new(StringComparer.Ordinal);

    private ClipIndexSearcher(string folder, ClipIndexInfo info, ClipIndexLayout layout, MappedEmbeddings[] partitions, ClipModel? model, int threads)
    {
        Folder = folder;
        Info = info;
        this.layout = layout;
        this.partitions = partitions;
        this.threads = threads;
        Model = model;
        firstIds = new long[partitions.Length];
        long total = 0;
        for (int p = 0; p < partitions.Length; p++) { firstIds[p] = total; total += partitions[p].Rows; }
        Count = total;
        metadata = new Lazy<IReadOnlyList<ClipIndexEntry>>[partitions.Length];
        for (int p = 0; p < partitions.Length; p++)
        {
            int partition = p;
            metadata[p] = new Lazy<IReadOnlyList<ClipIndexEntry>>(() => ReadMetadata(partition), LazyThreadSafetyMode.ExecutionAndPublication);
        }
        if (model is not null) preprocessor = new ClipImagePreprocessor(info.ImageSize, info.Mean, info.Std);
    }

    /// <summary>
    /// Batches of at most this many queries are scored exactly as each query alone, bit for bit (one pass of dot
    /// products); larger batches go through a matrix product, whose rounding may differ in the last bits.
    /// </summary>
    public const int IndependentBatchSize = EmbeddingScan.DotQueries;

    /// <summary>The index folder (full path).</summary>
    public string Folder { get; }

    /// <summary>The index's <c>index.json</c>.</summary>
    public ClipIndexInfo Info { get; }

    /// <summary>The number of rows (images) over all partitions.</summary>
    public long Count { get; }

    /// <summary>The embedding size.</summary>
    public int Dimension => Info.EmbeddingDim;

    /// <summary>The model that embeds queries (float32), or null when opened without one.</summary>
    public ClipModel? Model { get; }

    /// <summary>
    /// Opens an index folder: reads <c>index.json</c>, maps every partition's <c>img_emb</c> file and, unless
    /// <see cref="ClipIndexSearchOptions.LoadModel"/> is false, loads the index's model in float32.
    /// </summary>
    /// <exception cref="FileNotFoundException">No <c>index.json</c>, or a partition's embedding file is missing.</exception>
    /// <exception cref="InvalidDataException">An embedding file is truncated or of another shape.</exception>
    /// <exception cref="ClipIndexException">The model given is not the one the index was built with (both are named).</exception>
    public static ClipIndexSearcher Open(string folder, ClipIndexSearchOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        options ??= new ClipIndexSearchOptions();
        if (options.Threads <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "the scan threads must be positive");
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such index folder");
        var full = Path.GetFullPath(folder);
        var info = ClipIndexReader.ReadInfo(full);
        var layout = new ClipIndexLayout(full, info.Partitions);
        var mapped = new List<MappedEmbeddings>();
        ClipModel? model = null;
        try
        {
            for (int p = 0; p < info.Partitions; p++)
            {
                var path = layout.ImageEmbeddingPath(p);
                if (!File.Exists(path))
                    throw new FileNotFoundException($"{path}: missing: partition {p} of {info.Partitions} is not complete (run clip index on {full} again to finish it)", path);
                mapped.Add(new MappedEmbeddings(path, info.EmbeddingDim));
            }
            if (options.LoadModel) model = LoadModel(full, info, options);
            return new ClipIndexSearcher(full, info, layout, [.. mapped], model, options.Threads);
        }
        catch
        {
            foreach (var m in mapped) m.Dispose();
            model?.Dispose();
            throw;
        }
    }

    private static ClipModel LoadModel(string folder, ClipIndexInfo info, ClipIndexSearchOptions options)
    {
        var name = options.Model ?? info.ModelName;
        var pretrained = new ClipPretrainedOptions { CacheFolder = options.Pretrained?.CacheFolder, Offline = options.Pretrained?.Offline };
        pretrained.Precision = ScalarType.Float32;
        string sha;
        if (ClipModelResolver.IsPath(name)) sha = ClipIndexer.ModelSha256(name);
        else if (ClipModelResolver.IsRegisteredName(name, pretrained)) sha = ClipIndexer.ModelSha256(ClipPretrained.Download(name, pretrained).ModelPath);
        else throw new FileNotFoundException($"{folder}: the index's model {name} is neither a file or folder nor a registered model name (give the model with its path)", name);
        if (!string.Equals(sha, info.ModelSha256, StringComparison.OrdinalIgnoreCase))
            throw new ClipIndexException($"{folder}: the index was built with model {info.ModelName} (sha256 {info.ModelSha256}), the query model is {name} (sha256 {sha}); search it with the index's model");
        var model = ClipModelResolver.Load(name, pretrained);
        if (model.Config.EmbedDim != info.EmbeddingDim)
        {
            model.Dispose();
            throw new ClipIndexException($"{folder}: the index holds {info.EmbeddingDim}-dimensional embeddings, the model {name} makes {model.Config.EmbedDim}");
        }
        return model;
    }

    /// <summary>The <paramref name="k"/> rows with the highest inner product with the normalised <paramref name="query"/>, best first (k is clamped to <see cref="Count"/>).</summary>
    public IReadOnlyList<ClipSearchResult> Search(ReadOnlySpan<float> query, int k) => Search([query.ToArray()], k)[0];

    /// <summary>The top <paramref name="k"/> rows for each query of a batch, in one pass over the embeddings.</summary>
    /// <exception cref="ArgumentException">A query of another size, a zero or non-finite query, or k &lt;= 0.</exception>
    public IReadOnlyList<IReadOnlyList<ClipSearchResult>> Search(IReadOnlyList<float[]> queries, int k, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        CheckK(k);
        if (queries.Count == 0) return [];
        int d = Dimension;
        var flat = new float[queries.Count * d];
        for (int j = 0; j < queries.Count; j++)
        {
            var q = queries[j] ?? throw new ArgumentException($"query {j} is null", nameof(queries));
            if (q.Length != d) throw new ArgumentException($"query {j} has {q.Length} values, the index's embeddings {d}", nameof(queries));
            double norm = Math.Sqrt(q.Sum(v => (double)v * v));
            if (!(norm > 0) || double.IsInfinity(norm)) throw new ArgumentException($"query {j} is zero or not finite: it has no direction to search", nameof(queries));
            for (int i = 0; i < d; i++) flat[j * d + i] = (float)(q[i] / norm);
        }
        int kk = (int)Math.Min(k, Count);
        if (kk == 0) return queries.Select(_ => (IReadOnlyList<ClipSearchResult>)[]).ToArray();
        var tops = EmbeddingScan.Scan(Segments(), flat, queries.Count, d, kk, threads, cancellation);
        return tops.Select(t => (IReadOnlyList<ClipSearchResult>)t.Sorted().Select((hit, i) =>
        {
            var entry = Entry(hit.Id);
            return new ClipSearchResult(i + 1, hit.Score, hit.Id, entry.ImagePath, entry.Caption);
        }).ToArray()).ToArray();
    }

    /// <summary>Searches by text: the query embedded by the index's model.</summary>
    /// <exception cref="ArgumentException">An empty text, or k &lt;= 0.</exception>
    public IReadOnlyList<ClipSearchResult> SearchText(string text, int k) => SearchTexts([text], k)[0];

    /// <summary>Searches a batch of texts in one pass over the embeddings.</summary>
    public IReadOnlyList<IReadOnlyList<ClipSearchResult>> SearchTexts(IReadOnlyList<string> texts, int k, CancellationToken cancellation = default)
    {
        CheckK(k);
        return Search(EmbedTexts(texts), k, cancellation);
    }

    /// <summary>Searches by example: an image file embedded by the index's model with the index's preprocessing.</summary>
    public IReadOnlyList<ClipSearchResult> SearchImage(string path, int k)
    {
        CheckK(k);
        return Search(EmbedImage(File.ReadAllBytes(path), path), k);
    }

    /// <summary>Searches by example: an encoded image (JPEG, PNG, ...).</summary>
    /// <exception cref="ClipImageException">The bytes are not an image.</exception>
    public IReadOnlyList<ClipSearchResult> SearchImage(ReadOnlySpan<byte> encoded, int k, string? name = null)
    {
        CheckK(k);
        return Search(EmbedImage(encoded, name ?? "the query image"), k);
    }

    /// <summary>The L2-normalised float32 embeddings of texts (the index's model).</summary>
    public float[][] EmbedTexts(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var model = RequireModel();
        for (int i = 0; i < texts.Count; i++)
            if (string.IsNullOrWhiteSpace(texts[i])) throw new ArgumentException(texts.Count == 1 ? "the query text is empty" : $"query text {i} is empty", nameof(texts));
        var tokenizer = model.Tokenizer ?? throw new InvalidOperationException($"the model {Info.ModelName} carries no tokenizer: text queries need one");
        lock (modelLock)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var tokens = tokenizer.Tokenize(texts);
            var features = ClipModel.Normalize(model.EncodeText(tokens)).to(ScalarType.Float32).cpu();
            return Rows(features, texts.Count);
        }
    }

    /// <summary>The L2-normalised float32 embedding of an encoded image (the index's model and preprocessing).</summary>
    public float[] EmbedImage(ReadOnlySpan<byte> encoded, string? name = null)
    {
        var model = RequireModel();
        var pixels = preprocessor!.Preprocess(encoded, name ?? "the query image");
        lock (modelLock)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            int s = preprocessor.Size;
            var input = tensor(pixels, [1, 3, s, s]);
            var features = ClipModel.Normalize(model.EncodeImage(input)).to(ScalarType.Float32).cpu();
            return Rows(features, 1)[0];
        }
    }

    /// <summary>The metadata of row <paramref name="id"/>.</summary>
    public ClipIndexEntry Entry(long id)
    {
        var (p, row) = Locate(id);
        return metadata[p].Value[(int)row];
    }

    /// <summary>
    /// The encoded bytes of row <paramref name="id"/>'s image: its file under the index's input root, or its entry in its
    /// WebDataset shard; at most <paramref name="maxBytes"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The image (or its shard) is no longer there.</exception>
    /// <exception cref="InvalidDataException">The image is larger than <paramref name="maxBytes"/>.</exception>
    public byte[] ReadImage(long id, long maxBytes = 64 << 20)
    {
        var entry = Entry(id);
        var root = Info.InputRoot;
        if (Info.InputKind != "webdataset")
        {
            var file = Path.GetFullPath(Path.Combine(root, entry.ImagePath));
            if (!File.Exists(file)) throw new FileNotFoundException($"{file}: image of index row {id} not found", file);
            var length = new FileInfo(file).Length;
            if (length > maxBytes) throw new InvalidDataException($"{file}: {length} bytes, more than the {maxBytes} allowed");
            return File.ReadAllBytes(file);
        }
        // SHARD_FILE/KEY: the shard is the longest prefix that is a file under the root.
        var name = entry.ImagePath;
        for (int slash = name.LastIndexOf('/'); slash > 0; slash = name.LastIndexOf('/', slash - 1))
        {
            var shard = Path.GetFullPath(Path.Combine(root, name[..slash]));
            if (!File.Exists(shard)) continue;
            var entries = shardEntries.GetOrAdd(shard, ListShard);
            if (!entries.TryGetValue(name[(slash + 1)..], out var at)) break;
            if (at.Length > maxBytes) throw new InvalidDataException($"{shard}: entry {name[(slash + 1)..]} has {at.Length} bytes, more than the {maxBytes} allowed");
            using var stream = new FileStream(shard, FileMode.Open, FileAccess.Read, FileShare.Read);
            stream.Position = at.Offset;
            var bytes = new byte[at.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        throw new FileNotFoundException($"{name}: image of index row {id} not found in its WebDataset shard under {root}", name);
    }

    /// <summary>The image entries of a shard by WebDataset key (the first image of each key).</summary>
    private static Dictionary<string, (long, long)> ListShard(string shard)
    {
        var entries = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        using var stream = new FileStream(shard, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new TarReader(stream, leaveOpen: true);
        TarEntry? entry;
        while ((entry = reader.GetNextEntry(copyData: false)) is not null)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            int slash = entry.Name.LastIndexOf('/');
            int dot = entry.Name.IndexOf('.', slash + 1);
            if (dot < 0) continue;
            var extension = entry.Name[(dot + 1)..].ToLowerInvariant();
            if (extension is "jpg" or "jpeg" or "png" or "webp" or "bmp") entries.TryAdd(entry.Name[..dot], (entry.DataOffset, entry.Length));
        }
        return entries;
    }

    private (int Partition, long Row) Locate(long id)
    {
        if (id < 0 || id >= Count) throw new ArgumentOutOfRangeException(nameof(id), id, $"no row {id} in an index of {Count} rows");
        int p = Array.BinarySearch(firstIds, id);
        if (p < 0) p = ~p - 1;
        while (p + 1 < firstIds.Length && firstIds[p + 1] <= id) p++; // skip empty partitions
        return (p, id - firstIds[p]);
    }

    private IReadOnlyList<ClipIndexEntry> ReadMetadata(int partition)
    {
        var path = layout.MetadataPath(partition);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: missing: partition {partition}'s metadata", path);
        var rows = ClipIndexReader.ReadMetadata(path);
        if (rows.Count != partitions[partition].Rows)
            throw new InvalidDataException($"{path}: {rows.Count} rows, its embedding file {partitions[partition].Path} has {partitions[partition].Rows}");
        return rows;
    }

    private unsafe List<EmbeddingSegment> Segments()
    {
        var list = new List<EmbeddingSegment>(partitions.Length);
        for (int p = 0; p < partitions.Length; p++)
            if (partitions[p].Rows > 0) list.Add(new EmbeddingSegment(partitions[p].Data, partitions[p].Rows, firstIds[p]));
        return list;
    }

    private ClipModel RequireModel() => Model ?? throw new InvalidOperationException($"{Folder}: opened without a model: only vector queries are answered");

    private static void CheckK(int k)
    {
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be positive, got {k}");
    }

    private static float[][] Rows(Tensor features, int n)
    {
        var flat = features.contiguous().data<float>().ToArray();
        int d = flat.Length / n;
        return Enumerable.Range(0, n).Select(i => flat[(i * d)..((i + 1) * d)]).ToArray();
    }

    /// <summary>Unmaps the embedding files and disposes the model.</summary>
    public void Dispose()
    {
        foreach (var p in partitions) p.Dispose();
        Model?.Dispose();
    }
}
