using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace Clip.MLNet.Indexing;

/// <summary>What an index is built from: image files and folders, a manifest, or WebDataset tar shards.</summary>
/// <remarks>
/// The items are listed in a fixed order, so partitions are the same on every machine: folders are walked recursively
/// and their files sorted by ordinal path; manifests keep their row order; shards are read in the order of their pattern
/// and their items in archive order.
/// </remarks>
public sealed class ClipIndexSource
{
    /// <summary>The file extensions taken from folders (case-insensitive).</summary>
    public static readonly IReadOnlyList<string> ImageExtensions = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"];

    private static readonly string[] ShardImageExtensions = ["jpg", "jpeg", "png", "webp", "bmp"];

    private readonly Func<CancellationToken, ClipIndexItems> list;

    private ClipIndexSource(string kind, string description, Func<CancellationToken, ClipIndexItems> list)
    {
        Kind = kind;
        Description = description;
        this.list = list;
    }

    /// <summary><c>images</c>, <c>manifest</c> or <c>webdataset</c>.</summary>
    public string Kind { get; }

    /// <summary>The inputs as given (for messages and <c>index.json</c>).</summary>
    public string Description { get; }

    /// <summary>
    /// Image files and folders (walked recursively for <see cref="ImageExtensions"/>, files sorted by ordinal path).
    /// Items are named by their path relative to the input root: the deepest folder holding every input.
    /// </summary>
    public static ClipIndexSource FromImages(IReadOnlyList<string> filesOrFolders)
    {
        ArgumentNullException.ThrowIfNull(filesOrFolders);
        if (filesOrFolders.Count == 0) throw new ArgumentException("no images or folders given", nameof(filesOrFolders));
        var inputs = filesOrFolders.ToArray();
        return new ClipIndexSource("images", string.Join(' ', inputs), ct => ListImages(inputs, ct));
    }

    /// <summary>
    /// A manifest (<c>.csv</c>, <c>.tsv</c> or <c>.parquet</c>) with a column of image paths (relative paths are taken
    /// from the manifest's folder) and optionally a column of captions (<paramref name="captionColumn"/>, required when given;
    /// when null, a column named <c>caption</c> is used if there is one); items are named by the path as written.
    /// </summary>
    public static ClipIndexSource FromManifest(string path, string pathColumn = "image_path", string? captionColumn = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(pathColumn);
        return new ClipIndexSource("manifest", path, ct => ManifestReader.Read(path, pathColumn, captionColumn, ct));
    }

    /// <summary>
    /// WebDataset tar shards: a path or pattern with brace ranges (<c>shards/{0000..0099}.tar</c>) or lists (<c>{a,b}</c>).
    /// Each sample is <c>KEY.jpg</c>/<c>.jpeg</c>/<c>.png</c>/<c>.webp</c> with an optional <c>KEY.txt</c> caption; items are
    /// named <c>SHARD_FILE/KEY</c>. Shards are read as streams, never unpacked.
    /// </summary>
    public static ClipIndexSource FromWebDataset(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return new ClipIndexSource("webdataset", pattern, ct => ListShards(pattern, ct));
    }

    /// <summary>Lists the items (reads folders, the manifest or the shards' headers).</summary>
    internal ClipIndexItems List(CancellationToken cancellation) => list(cancellation);

    private static ClipIndexItems ListImages(string[] inputs, CancellationToken ct)
    {
        var full = inputs.Select(i => Path.GetFullPath(i)).ToArray();
        for (int i = 0; i < inputs.Length; i++)
            if (!File.Exists(full[i]) && !Directory.Exists(full[i]))
                throw new FileNotFoundException($"{inputs[i]}: no such image file or folder", inputs[i]);
        string root = CommonFolder(full.Select(f => Directory.Exists(f) ? f : Path.GetDirectoryName(f)!));
        var items = new List<ClipIndexItem>();
        foreach (var input in full)
        {
            ct.ThrowIfCancellationRequested();
            if (File.Exists(input))
            {
                items.Add(new ClipIndexItem(Relative(root, input), null, input, -1, 0, 0));
                continue;
            }
            var files = new List<string>();
            var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false, MatchType = MatchType.Simple };
            foreach (var file in Directory.EnumerateFiles(input, "*", options))
                if (ImageExtensions.Contains(Path.GetExtension(file).ToLowerInvariant()))
                    files.Add(file);
            var named = files.Select(f => (Name: Relative(root, f), Path: f)).ToList();
            named.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            foreach (var (name, path) in named) items.Add(new ClipIndexItem(name, null, path, -1, 0, 0));
        }
        return new ClipIndexItems(root, items, [], HasCaptions: false);
    }

    private static ClipIndexItems ListShards(string pattern, CancellationToken ct)
    {
        var shards = BracePattern.Expand(pattern).Select(p => Path.GetFullPath(p)).ToList();
        foreach (var shard in shards)
            if (!File.Exists(shard)) throw new FileNotFoundException($"{shard}: no such WebDataset shard (from the pattern {pattern})", shard);
        string root = CommonFolder(shards.Select(s => Path.GetDirectoryName(s)!));
        var items = new List<ClipIndexItem>();
        bool captions = false;
        for (int s = 0; s < shards.Count; s++)
        {
            ct.ThrowIfCancellationRequested();
            captions |= ListShard(shards[s], s, Relative(root, shards[s]), items);
        }
        return new ClipIndexItems(root, items, shards, captions);
    }

    /// <summary>Lists one shard's samples (image entries with their captions); true when a caption was found.</summary>
    private static bool ListShard(string shard, int shardIndex, string shardName, List<ClipIndexItem> items)
    {
        using var stream = new FileStream(shard, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long length = stream.Length;
        var samples = new List<(string Key, long Offset, long Length, string? Caption)>();
        var byKey = new Dictionary<string, int>(StringComparer.Ordinal);
        var captionOf = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var reader = new TarReader(stream, leaveOpen: true);
            TarEntry? entry;
            while ((entry = reader.GetNextEntry(copyData: false)) is not null)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
                if (entry.DataOffset < 0 || entry.DataOffset + entry.Length > length)
                    throw new InvalidDataException($"entry {entry.Name} needs {entry.Length} bytes at offset {entry.DataOffset}, the file ends at {length}");
                var (key, extension) = SplitKey(entry.Name);
                if (extension == "txt")
                {
                    using var data = entry.DataStream ?? Stream.Null;
                    using var text = new StreamReader(data, new UTF8Encoding(false, true));
                    captionOf[key] = text.ReadToEnd().TrimEnd('\r', '\n');
                }
                else if (ShardImageExtensions.Contains(extension) && !byKey.ContainsKey(key))
                {
                    byKey[key] = samples.Count;
                    samples.Add((key, entry.DataOffset, entry.Length, null));
                }
            }
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or FormatException or DecoderFallbackException or ArgumentException)
        {
            throw new InvalidDataException($"{shard}: truncated or damaged tar archive ({e.Message.ReplaceLineEndings(" ").TrimEnd('.')})", e);
        }
        foreach (var (key, offset, size, _) in samples)
        {
            captionOf.TryGetValue(key, out var caption);
            items.Add(new ClipIndexItem(shardName + "/" + key, caption, shard, shardIndex, offset, size));
        }
        return captionOf.Count > 0;
    }

    /// <summary>WebDataset's key and extension: the key is the name up to the first dot of its last path segment.</summary>
    private static (string Key, string Extension) SplitKey(string name)
    {
        int slash = name.LastIndexOf('/');
        int dot = name.IndexOf('.', slash + 1);
        return dot < 0 ? (name, "") : (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }

    internal static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    /// <summary>The deepest folder that holds all of <paramref name="folders"/>.</summary>
    internal static string CommonFolder(IEnumerable<string> folders)
    {
        string? common = null;
        foreach (var raw in folders)
        {
            var folder = Path.TrimEndingDirectorySeparator(raw);
            if (common is null) { common = folder; continue; }
            while (!IsWithin(folder, common))
                common = Path.GetDirectoryName(common) ?? Path.GetPathRoot(common)!;
        }
        return common ?? Directory.GetCurrentDirectory();

        static bool IsWithin(string path, string folder) =>
            path == folder || path.StartsWith(folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }
}

/// <summary>One item of an index: its name (the metadata's <c>image_path</c>), caption and where its bytes are.</summary>
/// <param name="Name">The name written to the metadata.</param>
/// <param name="Caption">The caption, if the source has one for it.</param>
/// <param name="File">The image file, or the shard holding it.</param>
/// <param name="Shard">The shard's index (-1 for a plain file).</param>
/// <param name="Offset">The byte offset of the image inside its shard.</param>
/// <param name="Length">The image's length inside its shard.</param>
internal sealed record ClipIndexItem(string Name, string? Caption, string File, int Shard, long Offset, long Length);

/// <summary>The listed items of a source, with the root their names are relative to.</summary>
internal sealed record ClipIndexItems(string Root, IReadOnlyList<ClipIndexItem> Items, IReadOnlyList<string> Shards, bool HasCaptions)
{
    /// <summary>SHA-256 of the ordered item list (names and captions), lower-case hex.</summary>
    public string Hash()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> flag = stackalloc byte[1];
        foreach (var item in Items)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(item.Name));
            flag[0] = item.Caption is null ? (byte)0 : (byte)1;
            hash.AppendData(flag);
            if (item.Caption is not null) hash.AppendData(Encoding.UTF8.GetBytes(item.Caption));
            flag[0] = 0xFF;
            hash.AppendData(flag);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
