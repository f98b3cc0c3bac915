using Clip.MLNet.Registry;

namespace Clip.MLNet;

/// <summary>The files of a pretrained model, verified and in the cache.</summary>
/// <param name="Model">The registry entry.</param>
/// <param name="Source">The source the files came from.</param>
/// <param name="ModelPath">What <see cref="ClipModel.Load"/> takes: the source's folder (hub sources) or its weight file.</param>
/// <param name="VocabularyPath">The tokenizer vocabulary downloaded for it; null when the folder brings its own or the options named one.</param>
public sealed record ClipPretrainedFiles(ClipPretrainedModel Model, ClipModelSource Source, string ModelPath, string? VocabularyPath);

/// <summary>
/// Pretrained models by name: registry lookup, the download cache, verified downloads.
/// <see cref="ClipModel.FromPretrained(string, ClipPretrainedOptions?)"/> is the usual entry point.
/// </summary>
public static class ClipPretrained
{
    /// <summary>Environment variable naming the cache folder.</summary>
    public const string CacheVariable = "CLIP_MLNET_CACHE";

    /// <summary>Environment variable that turns offline mode on (<c>1</c>, <c>true</c>, <c>yes</c>, <c>on</c>).</summary>
    public const string OfflineVariable = "CLIP_MLNET_OFFLINE";

    /// <summary>Environment variable naming a registry file that replaces the built-in registry.</summary>
    public const string RegistryVariable = "CLIP_MLNET_REGISTRY";

    /// <summary>The cache folder: <see cref="ClipPretrainedOptions.CacheFolder"/>, else <c>CLIP_MLNET_CACHE</c>, else the platform's user cache folder.</summary>
    public static string ResolveCacheFolder(ClipPretrainedOptions? options = null)
    {
        if (!string.IsNullOrWhiteSpace(options?.CacheFolder)) return Path.GetFullPath(options.CacheFolder);
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } env) return Path.GetFullPath(env);
        string root;
        if (OperatingSystem.IsWindows())
            root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        else if (OperatingSystem.IsMacOS())
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Library", "Caches");
        else
            root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "clip-mlnet");
    }

    /// <summary>Whether offline mode is on: <see cref="ClipPretrainedOptions.Offline"/>, else <c>CLIP_MLNET_OFFLINE</c>, else <c>HF_HUB_OFFLINE</c>.</summary>
    public static bool ResolveOffline(ClipPretrainedOptions? options = null)
    {
        if (options?.Offline is bool b) return b;
        static bool? Flag(string name) => Environment.GetEnvironmentVariable(name)?.Trim().ToLowerInvariant() switch
        {
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            _ => null,
        };
        return Flag(OfflineVariable) ?? Flag("HF_HUB_OFFLINE") ?? false;
    }

    /// <summary>The registry names are looked up in: <see cref="ClipPretrainedOptions.Registry"/>, else the file named by <c>CLIP_MLNET_REGISTRY</c>, else the built-in one.</summary>
    public static ClipModelRegistry ResolveRegistry(ClipPretrainedOptions? options = null)
    {
        if (options?.Registry is { } r) return r;
        if (Environment.GetEnvironmentVariable(RegistryVariable) is { Length: > 0 } path) return ClipModelRegistry.Load(path);
        return ClipModelRegistry.Default;
    }

    /// <summary>Where a source's file belongs in the cache (where it may be placed by hand for offline use).</summary>
    public static string CachePath(ClipModelSource source, ClipSourceFile file, ClipPretrainedOptions? options = null) =>
        Path.Combine(SourceFolder(source, ResolveCacheFolder(options)), Path.Combine(file.Path.Split('/').Select(Safe).ToArray()));

    /// <summary>Brings the files of the model named <paramref name="name"/> into the cache, verified; see <see cref="DownloadAsync"/>.</summary>
    public static ClipPretrainedFiles Download(string name, ClipPretrainedOptions? options = null) =>
        DownloadAsync(name, options).GetAwaiter().GetResult();

    /// <summary>
    /// Brings the files of the model named <paramref name="name"/> (and its tokenizer vocabulary, unless the
    /// options name one or the files bring their own) into the cache, verified. A source already complete in the
    /// cache is used without touching the network; otherwise the sources are downloaded in order until one
    /// succeeds.
    /// </summary>
    /// <exception cref="ClipUnknownModelException">No model has that name.</exception>
    /// <exception cref="ClipDownloadException">No source could be had: offline with an empty cache, no network, a hash mismatch, a full disk.</exception>
    /// <exception cref="OperationCanceledException">The options' token was cancelled (a partial download is kept and resumed next time).</exception>
    public static async Task<ClipPretrainedFiles> DownloadAsync(string name, ClipPretrainedOptions? options = null)
    {
        options ??= new ClipPretrainedOptions();
        var registry = ResolveRegistry(options);
        var model = registry.Get(name);
        var session = new Session(options, model.Name);

        // A complete, verified source in the cache wins, whatever its rank: no network.
        var problems = new List<ClipDownloadException>();
        foreach (var source in model.Sources)
        {
            var cached = await session.CachedSourceAsync(source, problems).ConfigureAwait(false);
            if (cached is not null) return await WithVocabularyAsync(session, registry, model, source, cached).ConfigureAwait(false);
        }
        if (session.Fetcher.Offline)
        {
            if (problems.Count > 0) throw problems[0];
            var first = model.Sources[0];
            throw FileFetcher.OfflineMissing(model.Name, first.Files
                .Select(f => (first.FileUrl(f, session.HubEndpoint), session.PathOf(first, f)))
                .Where(m => !File.Exists(m.Item2)).ToList());
        }

        var failures = new List<ClipDownloadException>();
        foreach (var source in model.Sources)
        {
            try
            {
                var path = await session.FetchSourceAsync(source).ConfigureAwait(false);
                return await WithVocabularyAsync(session, registry, model, source, path).ConfigureAwait(false);
            }
            catch (ClipDownloadException e) when (e.Failure is ClipDownloadFailure.Unreachable or ClipDownloadFailure.HttpError or ClipDownloadFailure.HashMismatch)
            {
                failures.Add(e); // try the next source; a full disk or cancellation ends the search
            }
        }
        if (failures.Count == 1) throw failures[0];
        var worst = failures.FirstOrDefault(f => f.Failure == ClipDownloadFailure.HashMismatch) ?? failures[0];
        throw new ClipDownloadException(worst.Failure,
            $"none of the {failures.Count} sources of {model.Name} could be fetched: " + string.Join(" | ", failures.Select((f, i) => $"{i + 1}) {f.Message}")),
            worst.Url, worst.CachePath, worst) { RejectedPath = worst.RejectedPath };
    }

    /// <summary>The vocabulary file of the model named <paramref name="name"/> (downloaded if needed), or the options' own.</summary>
    internal static async Task<string> DownloadVocabularyAsync(string name, ClipPretrainedOptions? options)
    {
        options ??= new ClipPretrainedOptions();
        if (options.VocabularyPath is { } own) return own;
        var registry = ResolveRegistry(options);
        var model = registry.Get(name);
        if (model.Tokenizer == ClipPretrainedModel.SourceTokenizer)
            throw new NotSupportedException($"the tokenizer of {model.Name} is the SentencePiece model in its hub folder, not a separate vocabulary: " +
                "download the model (ClipModel.FromPretrained) and use its Tokenizer, or tokenize with the downloaded folder (clip tokenize --model FOLDER)");
        if (Weights.OpenClipTokenizers.IsBert(model.Tokenizer))
            throw new NotSupportedException($"the tokenizer of {model.Name} is BERT's WordPiece ({model.Tokenizer}) under its open_clip config's rule (context, strip_sep_token), " +
                "not CLIP's BPE: download the model (ClipModel.FromPretrained) and use its Tokenizer, or load the vocab.txt with ClipTokenizer.FromWordPiece");
        return await FetchVocabularyAsync(new Session(options, model.Name), registry, model).ConfigureAwait(false);
    }

    private static async Task<ClipPretrainedFiles> WithVocabularyAsync(Session session, ClipModelRegistry registry, ClipPretrainedModel model, ClipModelSource source, string path)
    {
        bool bringsOwn = (source.Files.Any(f => f.Path == "vocab.json") && source.Files.Any(f => f.Path == "merges.txt"))
            || model.Tokenizer == ClipPretrainedModel.SourceTokenizer;
        string? vocabulary = session.Options.VocabularyPath is null && !bringsOwn
            ? await FetchVocabularyAsync(session, registry, model).ConfigureAwait(false)
            : null;
        return new ClipPretrainedFiles(model, source, path, vocabulary);
    }

    private static Task<string> FetchVocabularyAsync(Session session, ClipModelRegistry registry, ClipPretrainedModel model)
    {
        var vocab = registry.Vocabularies[model.Tokenizer];
        var file = vocab.Weights;
        return session.Fetcher.FetchAsync($"the {model.Tokenizer} vocabulary of {model.Name}", vocab.FileUrl(file), session.PathOf(vocab, file), file.Sha256);
    }

    private static string SourceFolder(ClipModelSource source, string cacheRoot)
    {
        if (source.Kind == ClipSourceKind.HuggingFaceHub)
        {
            var repo = source.Repository!.Replace("/", "--", StringComparison.Ordinal);
            return Path.Combine(cacheRoot, "hub", Safe(repo), Safe(source.EffectiveRevision), source.Layout!);
        }
        // url/HOST[_PORT]/PATH-WITHOUT-THE-FILE: the address stays readable in the cache.
        var url = source.Url!;
        var host = url.IsDefaultPort ? url.Host : $"{url.Host}_{url.Port}";
        var folders = url.AbsolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries).SkipLast(1).Select(s => Safe(Uri.UnescapeDataString(s)));
        return Path.Combine(new[] { cacheRoot, "url", Safe(host) }.Concat(folders).ToArray());
    }

    /// <summary>One path segment, safe on every platform (no separators, no reserved characters, never . or ..).</summary>
    private static string Safe(string segment)
    {
        var chars = segment.Select(c => c < 32 || "<>:\"/\\|?*".Contains(c) ? '_' : c).ToArray();
        var s = new string(chars);
        return s is "" or "." or ".." ? "_" + s : s;
    }

    /// <summary>One call's settings: cache root, endpoint, fetcher.</summary>
    private sealed class Session
    {
        private readonly HashSet<string> verified = new(StringComparer.Ordinal);

        public Session(ClipPretrainedOptions options, string label)
        {
            Options = options;
            Label = label;
            CacheRoot = ResolveCacheFolder(options);
            HubEndpoint = options.HubEndpoint ?? (Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : null);
            if (HubEndpoint is not null && (!Uri.TryCreate(HubEndpoint, UriKind.Absolute, out var hub) || (hub.Scheme != Uri.UriSchemeHttp && hub.Scheme != Uri.UriSchemeHttps)))
                throw new ArgumentException($"the hub endpoint (ClipPretrainedOptions.HubEndpoint or HF_ENDPOINT) must be an absolute http(s) address, not '{HubEndpoint}'");
            Fetcher = new FileFetcher(options.HttpClient ?? FileFetcher.SharedClient, ResolveOffline(options), options.Progress, options.CancellationToken);
        }

        public ClipPretrainedOptions Options { get; }
        public string Label { get; }
        public string CacheRoot { get; }
        public string? HubEndpoint { get; }
        public FileFetcher Fetcher { get; }

        public string PathOf(ClipModelSource source, ClipSourceFile file) =>
            Path.Combine(SourceFolder(source, CacheRoot), Path.Combine(file.Path.Split('/').Select(Safe).ToArray()));

        /// <summary>What <see cref="ClipModel.Load"/> takes for a source: its folder, or its one file.</summary>
        public string ModelPath(ClipModelSource source) => source.Kind == ClipSourceKind.HuggingFaceHub
            ? SourceFolder(source, CacheRoot)
            : PathOf(source, source.Weights);

        /// <summary>The source's model path if all its files are cached and verified; null otherwise. Never touches the network.</summary>
        public async Task<string?> CachedSourceAsync(ClipModelSource source, List<ClipDownloadException> problems)
        {
            foreach (var file in source.Files)
            {
                var path = PathOf(source, file);
                if (!File.Exists(path)) return null;
                var (state, problem) = await Fetcher.CheckCachedAsync(path, file.Sha256, source.FileUrl(file, HubEndpoint)).ConfigureAwait(false);
                if (problem is not null) problems.Add(problem);
                if (state != FileFetcher.CacheState.Good) return null;
                verified.Add(path);
            }
            return ModelPath(source);
        }

        public async Task<string> FetchSourceAsync(ClipModelSource source)
        {
            // The small files first: a source whose config is missing fails before gigabytes are fetched.
            foreach (var file in source.Files.Skip(1).Append(source.Weights))
            {
                var path = PathOf(source, file);
                if (verified.Contains(path) && File.Exists(path)) continue;
                await Fetcher.FetchAsync(Label, source.FileUrl(file, HubEndpoint), path, file.Sha256).ConfigureAwait(false);
                verified.Add(path);
            }
            return ModelPath(source);
        }
    }
}
