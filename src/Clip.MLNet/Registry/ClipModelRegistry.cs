using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Clip.MLNet;

/// <summary>
/// Named pretrained CLIP models and where to fetch them: data (a JSON document), not code. The default
/// registry is embedded in the library (OpenAI's nine models, the most used open_clip / Hugging Face
/// repositories); <see cref="Parse"/> and <see cref="Load"/> read others, for tests, mirrors or private models.
/// </summary>
public sealed partial class ClipModelRegistry
{
    private const string FormatName = "clip.mlnet.registry";
    private readonly Dictionary<string, ClipPretrainedModel> byName;

    private ClipModelRegistry(IReadOnlyList<ClipPretrainedModel> models, IReadOnlyDictionary<string, ClipModelSource> vocabularies, string origin)
    {
        Models = models;
        Vocabularies = vocabularies;
        Origin = origin;
        byName = new Dictionary<string, ClipPretrainedModel>(StringComparer.OrdinalIgnoreCase);
        foreach (var m in models)
            foreach (var n in m.Aliases.Prepend(m.Name))
                if (!byName.TryAdd(n, m))
                    throw new InvalidDataException($"{origin}: the name '{n}' is used by two models ({byName[n].Name} and {m.Name}); names are compared without regard to case");
    }

    private static readonly Lazy<ClipModelRegistry> DefaultRegistry = new(() =>
    {
        using var stream = typeof(ClipModelRegistry).Assembly.GetManifestResourceStream("Clip.MLNet.Registry.models.json")
            ?? throw new InvalidOperationException("The embedded model registry is missing from the Clip.MLNet assembly.");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd(), "the built-in registry");
    });

    /// <summary>The registry built into the library.</summary>
    public static ClipModelRegistry Default => DefaultRegistry.Value;

    /// <summary>The registered models, in the registry's order.</summary>
    public IReadOnlyList<ClipPretrainedModel> Models { get; }

    /// <summary>Tokenizer vocabularies by the name models give as <see cref="ClipPretrainedModel.Tokenizer"/> (each a one-file source).</summary>
    public IReadOnlyDictionary<string, ClipModelSource> Vocabularies { get; }

    /// <summary>Where the registry was read from (for messages).</summary>
    public string Origin { get; }

    /// <summary>Reads a registry file (the format of the embedded <c>Registry/models.json</c>).</summary>
    /// <exception cref="InvalidDataException">The file is not a valid registry.</exception>
    public static ClipModelRegistry Load(string path) => Parse(File.ReadAllText(path), path);

    /// <summary>Reads a registry from its JSON text.</summary>
    /// <param name="json">The registry document.</param>
    /// <param name="origin">Names the document in error messages.</param>
    /// <exception cref="InvalidDataException">The document is not a valid registry.</exception>
    public static ClipModelRegistry Parse(string json, string origin = "registry")
    {
        JsonObject root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })?.AsObject()
                ?? throw new InvalidDataException("empty document"); }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{origin}: not a valid registry document: {e.Message}", e);
        }
        try
        {
            if ((string?)root["format"] != FormatName) throw new InvalidDataException($"'format' must be \"{FormatName}\"");
            if ((int?)root["version"] != 1) throw new InvalidDataException($"registry version {root["version"]} is not supported (this library reads version 1)");
            var vocabularies = new Dictionary<string, ClipModelSource>(StringComparer.Ordinal);
            if (root["vocabularies"] is JsonObject vocabs)
                foreach (var (name, node) in vocabs)
                {
                    var source = ClipModelSource.Parse(node as JsonObject ?? throw new InvalidDataException($"vocabulary '{name}' is not an object"), $"vocabulary '{name}'");
                    if (source.Kind != ClipSourceKind.Url) throw new InvalidDataException($"vocabulary '{name}' must be a url source (one file)");
                    vocabularies[name] = source;
                }
            var models = new List<ClipPretrainedModel>();
            foreach (var node in root["models"] as JsonArray ?? throw new InvalidDataException("'models' must be an array"))
            {
                var model = ClipPretrainedModel.Parse(node as JsonObject ?? throw new InvalidDataException("each model must be an object"));
                if (model.Tokenizer == ClipPretrainedModel.SourceTokenizer)
                {
                    // The tokenizer is a SentencePiece file of the hub folder itself (SigLIP's spiece.model, SigLIP2's tokenizer.model).
                    if (model.Sources.Any(s => s.Kind != ClipSourceKind.HuggingFaceHub || !s.Files.Any(f => Weights.OpenClipTokenizers.SentencePieceFiles.Contains(f.Path))))
                        throw new InvalidDataException($"model '{model.Name}' takes its tokenizer from its sources, so each must be a hub source listing {string.Join(" or ", Weights.OpenClipTokenizers.SentencePieceFiles)}");
                }
                else if (!vocabularies.ContainsKey(model.Tokenizer))
                    throw new InvalidDataException($"model '{model.Name}' names the tokenizer '{model.Tokenizer}', which the registry's 'vocabularies' lack");
                models.Add(model);
            }
            return new ClipModelRegistry(models, vocabularies, origin);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"{origin}: {e.Message}", e);
        }
    }

    /// <summary>The model registered under <paramref name="name"/> (its name or an alias, any case), or null.</summary>
    public ClipPretrainedModel? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return byName.GetValueOrDefault(name.Trim());
    }

    /// <summary>The model registered under <paramref name="name"/>.</summary>
    /// <exception cref="ClipUnknownModelException">No model has that name; the message gives the closest ones.</exception>
    public ClipPretrainedModel Get(string name) => Find(name) ?? throw new ClipUnknownModelException(name, ClosestNames(name));

    /// <summary>
    /// Registered names closest to <paramref name="name"/> (edit distance, ignoring case and the
    /// separators <c>/ - _ @ :</c>), best first: what to suggest for a misspelt name.
    /// </summary>
    public IReadOnlyList<string> ClosestNames(string name, int count = 3)
    {
        var key = Simplify(name);
        return Models
            .Select(m => (m.Name, Distance: m.Aliases.Prepend(m.Name).Min(n => Levenshtein(key, Simplify(n)))))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(count).Select(x => x.Name).ToList();
    }

    private static string Simplify(string s) => Separators().Replace(s.Trim().ToLowerInvariant(), "");

    [GeneratedRegex(@"[/\-_@:\s]")]
    private static partial Regex Separators();

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}

/// <summary>A registered pretrained model: its names, preprocessing, activation, tokenizer and where its files come from.</summary>
public sealed class ClipPretrainedModel
{
    /// <summary>The model's name (OpenAI's spelling for OpenAI's models, the repository id for hub models).</summary>
    public string Name { get; }

    /// <summary>Other names the model is found by (for example <c>ViT-B-32</c>, <c>hf-hub:timm/...</c>).</summary>
    public IReadOnlyList<string> Aliases { get; }

    /// <summary>The side length of the input images, in pixels (checked against the weights when loaded).</summary>
    public int ImageSize { get; }

    /// <summary>Per-channel normalization mean (R, G, B) the model was trained with; pass it to <see cref="ClipImagePreprocessor"/>.</summary>
    public IReadOnlyList<float> Mean { get; }

    /// <summary>Per-channel normalization standard deviation (R, G, B).</summary>
    public IReadOnlyList<float> Std { get; }

    /// <summary>The MLP activation the model was trained with (weights do not record it).</summary>
    public ClipActivation Activation { get; }

    /// <summary>
    /// The tokenizer vocabulary, a key of <see cref="ClipModelRegistry.Vocabularies"/> (<c>clip-bpe</c>: CLIP's BPE), or
    /// <see cref="SourceTokenizer"/> when the model's hub folder carries its own (SigLIP's SentencePiece models).
    /// </summary>
    public string Tokenizer { get; }

    private ClipPretrainedModel(string name, IReadOnlyList<string> aliases, int imageSize, IReadOnlyList<float> mean, IReadOnlyList<float> std,
        ClipActivation activation, string tokenizer, IReadOnlyList<ClipModelSource> sources)
    {
        Name = name;
        Aliases = aliases;
        ImageSize = imageSize;
        Mean = mean;
        Std = std;
        Activation = activation;
        Tokenizer = tokenizer;
        Sources = sources;
    }

    /// <summary>The <see cref="Tokenizer"/> value of models whose hub folder carries the tokenizer file (<c>spiece.model</c>, <c>tokenizer.model</c>).</summary>
    public const string SourceTokenizer = "source";

    /// <summary>Where the files come from, tried in order; any one complete source is enough.</summary>
    public IReadOnlyList<ClipModelSource> Sources { get; }

    /// <inheritdoc/>
    public override string ToString() => Name;

    internal static ClipPretrainedModel Parse(JsonObject o)
    {
        var name = (string?)o["name"];
        if (string.IsNullOrWhiteSpace(name)) throw new InvalidDataException("a model has no 'name'");
        try
        {
            var aliases = (o["aliases"] as JsonArray)?.Select(a => (string?)a ?? throw new InvalidDataException("an alias is null")).ToArray() ?? Array.Empty<string>();
            var size = (int?)o["image_size"] ?? throw new InvalidDataException("no 'image_size'");
            if (size <= 0) throw new InvalidDataException($"'image_size' must be positive, not {size}");
            float[] Triple(string key)
            {
                var values = (o[key] as JsonArray ?? throw new InvalidDataException($"no '{key}' (three numbers, R G B)")).Select(v => (float)v!).ToArray();
                return values.Length == 3 ? values : throw new InvalidDataException($"'{key}' must hold three numbers (R, G, B)");
            }
            var mean = Triple("mean");
            var std = Triple("std");
            if (std.Any(s => s <= 0)) throw new InvalidDataException("'std' must be positive");
            var activationName = (string?)o["activation"] ?? throw new InvalidDataException("no 'activation' (quick_gelu or gelu)");
            var activation = ClipActivationNames.TryParse(activationName) ?? throw new InvalidDataException($"unknown activation '{activationName}' (quick_gelu or gelu)");
            var tokenizer = (string?)o["tokenizer"] ?? throw new InvalidDataException("no 'tokenizer'");
            var sources = (o["sources"] as JsonArray ?? throw new InvalidDataException("no 'sources'"))
                .Select((s, i) => ClipModelSource.Parse(s as JsonObject ?? throw new InvalidDataException("a source is not an object"), $"source {i + 1}"))
                .ToArray();
            if (sources.Length == 0) throw new InvalidDataException("no sources");
            return new ClipPretrainedModel(name.Trim(), Array.AsReadOnly(aliases), size, Array.AsReadOnly(mean), Array.AsReadOnly(std), activation, tokenizer, Array.AsReadOnly(sources));
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"model '{name}': {e.Message}", e);
        }
    }
}

/// <summary>How a <see cref="ClipModelSource"/> names its files.</summary>
public enum ClipSourceKind
{
    /// <summary>A Hugging Face hub repository: files at <c>{endpoint}/{repo}/resolve/{revision}/{file}</c>.</summary>
    HuggingFaceHub,
    /// <summary>One file at a fixed address.</summary>
    Url,
}

/// <summary>One complete set of files for a model: a hub repository in one layout, or a single weight file.</summary>
public sealed class ClipModelSource
{
    /// <summary>The hub host used when neither the options nor <c>HF_ENDPOINT</c> name another.</summary>
    public const string DefaultHubEndpoint = "https://huggingface.co";

    private static readonly Dictionary<string, string[]> LayoutFiles = new(StringComparer.Ordinal)
    {
        // The weights first: they are what a source is displayed and pinned by.
        ["open_clip"] = ["open_clip_model.safetensors", "open_clip_config.json"],
        ["transformers"] = ["model.safetensors", "config.json", "vocab.json", "merges.txt"],
    };

    /// <summary>Hub repository or fixed address.</summary>
    public ClipSourceKind Kind { get; }

    /// <summary>The hub repository id (<c>owner/name</c>); null for a url source.</summary>
    public string? Repository { get; }

    /// <summary>The pinned hub revision (a commit id), or null for the moving <c>main</c>.</summary>
    public string? Revision { get; }

    /// <summary>The hub file layout: <c>open_clip</c> or <c>transformers</c>; null for a url source.</summary>
    public string? Layout { get; }

    /// <summary>The file's address, for a url source.</summary>
    public Uri? Url { get; }

    /// <summary>The files, the weights first.</summary>
    public IReadOnlyList<ClipSourceFile> Files { get; }

    private ClipModelSource(ClipSourceKind kind, string? repository, string? revision, string? layout, Uri? url, IReadOnlyList<ClipSourceFile> files)
    {
        Kind = kind;
        Repository = repository;
        Revision = revision;
        Layout = layout;
        Url = url;
        Files = files;
    }

    /// <summary>The weight file (the first of <see cref="Files"/>).</summary>
    public ClipSourceFile Weights => Files[0];

    /// <summary>The revision in hub URLs: the pinned one or <c>main</c>.</summary>
    public string EffectiveRevision => Revision ?? "main";

    /// <summary>The address of one of this source's files.</summary>
    /// <param name="file">One of <see cref="Files"/>.</param>
    /// <param name="hubEndpoint">The hub host (<see cref="DefaultHubEndpoint"/> when null).</param>
    public Uri FileUrl(ClipSourceFile file, string? hubEndpoint = null)
    {
        if (Kind == ClipSourceKind.Url) return Url!;
        var endpoint = (hubEndpoint ?? DefaultHubEndpoint).TrimEnd('/');
        var path = string.Join('/', file.Path.Split('/').Select(Uri.EscapeDataString));
        return new Uri($"{endpoint}/{Repository}/resolve/{Uri.EscapeDataString(EffectiveRevision)}/{path}");
    }

    /// <summary>A short description: <c>hf-hub:owner/name@revision (layout)</c> or the address.</summary>
    public override string ToString() => Kind == ClipSourceKind.Url
        ? Url!.ToString()
        : $"hf-hub:{Repository}@{EffectiveRevision} ({Layout})";

    internal static ClipModelSource Parse(JsonObject o, string what)
    {
        static string? Sha(JsonNode? node, string context)
        {
            var s = (string?)node;
            if (s is null) return null;
            s = s.Trim().ToLowerInvariant();
            return s.Length == 64 && s.All(char.IsAsciiHexDigit) ? s : throw new InvalidDataException($"{context}: 'sha256' must be 64 hex digits");
        }
        if (o["url"] is JsonNode urlNode)
        {
            var text = (string?)urlNode;
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
                throw new InvalidDataException($"{what}: 'url' must be an absolute http(s) address, not '{text}'");
            var fileName = (string?)o["file"] ?? Uri.UnescapeDataString(url.Segments[^1]);
            if (string.IsNullOrEmpty(fileName) || fileName.EndsWith('/')) throw new InvalidDataException($"{what}: the url names no file; add 'file'");
            return new ClipModelSource(ClipSourceKind.Url, null, null, null, url, [new ClipSourceFile(fileName, Sha(o["sha256"], what))]);
        }
        if (o["hub"] is JsonNode hubNode)
        {
            var repo = ((string?)hubNode)?.Trim();
            if (repo is null || repo.Split('/') is not [{ Length: > 0 } owner, { Length: > 0 } name] || owner is "." or ".." || name is "." or "..")
                throw new InvalidDataException($"{what}: 'hub' must be a repository id 'owner/name', not '{repo}'");
            var layout = (string?)o["layout"] ?? throw new InvalidDataException($"{what}: a hub source needs a 'layout' (open_clip or transformers)");
            if (!LayoutFiles.TryGetValue(layout, out var defaults)) throw new InvalidDataException($"{what}: unknown layout '{layout}' (open_clip or transformers)");
            var revision = ((string?)o["revision"])?.Trim();
            if (revision is "" or "main") revision = null;
            ClipSourceFile[] files;
            if (o["files"] is JsonArray list)
            {
                files = list.Select(f => f is JsonObject fo
                    ? new ClipSourceFile(CheckRelative((string?)fo["path"], what), Sha(fo["sha256"], what))
                    : new ClipSourceFile(CheckRelative((string?)f, what), null)).ToArray();
                if (files.Length == 0) throw new InvalidDataException($"{what}: 'files' is empty");
            }
            else
            {
                files = defaults.Select(f => new ClipSourceFile(f, null)).ToArray();
            }
            return new ClipModelSource(ClipSourceKind.HuggingFaceHub, repo, revision, layout, null, Array.AsReadOnly(files));
        }
        throw new InvalidDataException($"{what}: a source needs 'hub' (a repository) or 'url' (one file)");
    }

    private static string CheckRelative(string? path, string what)
    {
        if (string.IsNullOrWhiteSpace(path) || path.StartsWith('/') || path.Contains('\\') || path.Split('/').Any(p => p is "" or "." or ".."))
            throw new InvalidDataException($"{what}: '{path}' is not a relative file path inside the repository");
        return path;
    }
}

/// <summary>One file of a <see cref="ClipModelSource"/>.</summary>
/// <param name="Path">The file's path in the repository, or its name for a url source.</param>
/// <param name="Sha256">The pinned SHA-256 (lower-case hex), or null where none is known: the hash of the first verified download is then recorded in the cache and checked on later uses.</param>
public sealed record ClipSourceFile(string Path, string? Sha256)
{
    /// <summary>Whether the registry pins the file's content.</summary>
    public bool IsPinned => Sha256 is not null;
}
