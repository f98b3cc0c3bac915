using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet;

public sealed partial class ClipModel
{
    /// <summary>
    /// Loads a CLIP model from any supported weight file or folder: OpenAI's TorchScript archives
    /// (<c>ViT-B-32.pt</c>), pickled PyTorch state dicts (<c>.pt</c>, <c>.pth</c>, <c>.bin</c>, also open_clip
    /// training checkpoints), safetensors in the OpenAI/open_clip layout or this library's own
    /// (<see cref="Save(string)"/>), and Hugging Face folders (<c>config.json</c> + <c>model.safetensors</c> or
    /// <c>pytorch_model.bin</c>). The configuration is inferred from the weights' shapes.
    /// </summary>
    /// <param name="path">A weight file or a model folder.</param>
    /// <param name="options">Activation, device and precision; defaults when null.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="ClipNativeLibraryException">TorchSharp's native library cannot be loaded on this system; the message says why.</exception>
    /// <exception cref="ClipCheckpointException">The file is damaged, not a checkpoint, refers to code, or its keys or shapes are not a CLIP model's.</exception>
    public static ClipModel Load(string path, ClipLoadOptions? options = null)
    {
        ClipNative.Initialize();
        options ??= new ClipLoadOptions();
        using var source = CheckpointReader.Open(path);
        var tensors = ToClipLayout(source);

        ClipConfig config;
        if ((source.StoredConfig ?? source.FamilyConfig) is { } stored)
        {
            config = options.Activation is { } a ? stored with { Activation = a } : stored;
        }
        else
        {
            var shapes = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Shape, StringComparer.Ordinal);
            try
            {
                config = ClipConfig.InferFromShapes(shapes, options.Activation ?? source.Activation ?? ClipActivation.QuickGelu);
            }
            catch (InvalidDataException e)
            {
                throw new ClipCheckpointException(path, $"{e.Message} It holds: {Summarize(shapes.Keys)}.", e);
            }
            if (source.VisionHeads is { } vh) config = config with { VisionHeads = vh };
            if (source.TextHeads is { } th) config = config with { TextHeads = th };
            if (source.ConfigOverride is { } change) config = change(config);
        }
        try { config.Validate(); }
        catch (ArgumentException e) { throw new ClipCheckpointException(path, e.Message, e); }

        var model = Create(config);
        try
        {
            model.LoadWeights(tensors, path);
            model.StorageType = StorageTypeOf(tensors.Values);
            if (options.Device is { } device && device.type != DeviceType.CPU) model.ToDevice(device);
            if (options.Precision != ScalarType.Float32) model.ToPrecision(options.Precision);
            model.Metadata = new Dictionary<string, string>(source.Metadata, StringComparer.Ordinal);
            model.ImagePreprocessing = source.Preprocessing
                ?? (source.Metadata.TryGetValue(PreprocessingMetadataKey, out var pre) ? ReadSavedPreprocessing(path, pre, model.ImageResolution) : null)
                ?? ClipPreprocessing.OpenAI(model.ImageResolution);
            if (source.TextTokenizer is { HfTokenizerName: not null } tokenizerInfo && options.VocabularyPath is null)
                (model.Tokenizer, model.MissingTokenizer) = OpenClipTokenizers.Load(path, tokenizerInfo, model.ContextLength);
            else if (source.TextTokenizer is { HfTokenizerName: { } hfName } bertInfo && OpenClipTokenizers.IsBert(hfName) && options.VocabularyPath is { } bertVocab)
                // A BERT config (CLIPA) given its vocab.txt, as the registry's bert-base-uncased vocabulary is: the config's rule applies.
                model.Tokenizer = ClipTokenizer.FromWordPiece(bertVocab, model.ContextLength, bertInfo.StripSepToken, bertInfo.Clean);
            else
                model.Tokenizer = LoadTokenizer(path, options, source, model.ContextLength);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static ClipTokenizer? LoadTokenizer(string path, ClipLoadOptions options, WeightSource source, int contextLength)
    {
        if (options.VocabularyPath is { } vocab) return ClipTokenizer.Load(vocab, contextLength);
        if (source.Metadata.Keys.Any(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)))
            return ClipTokenizer.FromMetadata(source.Metadata);
        if (Directory.Exists(path) && File.Exists(System.IO.Path.Combine(path, "vocab.json")) && File.Exists(System.IO.Path.Combine(path, "merges.txt")))
            return ClipTokenizer.FromHuggingFaceFolder(path, contextLength);
        return null;
    }

    /// <summary>
    /// The tokenizer that goes with this model: from <see cref="ClipLoadOptions.VocabularyPath"/>, a Hugging
    /// Face folder, or this library's saved file; null when none was given. Saved with the model.
    /// </summary>
    public ClipTokenizer? Tokenizer { get; set; }

    /// <summary>
    /// The image preprocessing this model expects: its open_clip config's <c>preprocess_cfg</c> (SigLIP: squash,
    /// mean and std 0.5), what this library saved with it, or OpenAI's at <see cref="ImageResolution"/>.
    /// Saved with the model. <see cref="CreateImagePreprocessor"/> builds a preprocessor for it.
    /// </summary>
    public ClipPreprocessing ImagePreprocessing
    {
        get => imagePreprocessing ?? ClipPreprocessing.OpenAI(ImageResolution);
        set => imagePreprocessing = value ?? throw new ArgumentNullException(nameof(value));
    }

    private ClipPreprocessing? imagePreprocessing;

    /// <summary>A preprocessor with this model's <see cref="ImagePreprocessing"/>.</summary>
    /// <param name="maxPixels">The largest image accepted; <see cref="ClipImagePreprocessor.DefaultMaxPixels"/> when null.</param>
    public ClipImagePreprocessor CreateImagePreprocessor(long? maxPixels = null) => ImagePreprocessing.CreatePreprocessor(maxPixels);

    /// <summary>
    /// Why <see cref="Tokenizer"/> is null for a model whose config names a tokenizer that was not found (for
    /// example a SigLIP2 folder without its <c>tokenizer.model</c>); null otherwise. Text commands report it.
    /// </summary>
    public string? MissingTokenizer { get; internal set; }

    /// <summary>The tokenizer, or an error naming what is missing when the model has none.</summary>
    /// <exception cref="InvalidOperationException">The model has no tokenizer; the message says which file or option is missing.</exception>
    public ClipTokenizer RequireTokenizer() => Tokenizer ?? throw new InvalidOperationException(
        MissingTokenizer ?? "The model has no tokenizer: load it with ClipLoadOptions.VocabularyPath (CLIP's bpe_simple_vocab_16e6.txt.gz) or pass one.");

    internal const string PreprocessingMetadataKey = "preprocess_cfg";

    private static ClipPreprocessing? ReadSavedPreprocessing(string path, string json, int size) =>
        OpenClipConfig.ReadPreprocessing(path, new System.Text.Json.Nodes.JsonObject { ["preprocess_cfg"] = System.Text.Json.Nodes.JsonNode.Parse(json) }, size);

    /// <summary>Entries stored with the weights in this library's format (for example the tokenizer); empty for other formats.</summary>
    internal IReadOnlyDictionary<string, string> Metadata { get; set; } = new Dictionary<string, string>();

    /// <summary>
    /// Saves the weights and configuration as one safetensors file (configuration in its metadata),
    /// which <see cref="Load"/> reads back exactly. Written to a temporary file first, then moved into place.
    /// </summary>
    /// <param name="path">The file to write, conventionally <c>*.safetensors</c>.</param>
    public void Save(string path) => Save(path, null);

    internal void Save(string path, IReadOnlyDictionary<string, string>? extraMetadata)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = CheckpointReader.OwnFormatName,
            ["format_version"] = "1",
            ["clip_config"] = Config.ToJson(),
        };
        if (Tokenizer is not null)
            foreach (var (k, v) in Tokenizer.ToMetadata()) metadata[k] = v;
        if (imagePreprocessing is { } pre && !pre.Equals(ClipPreprocessing.OpenAI(ImageResolution)))
            metadata[PreprocessingMetadataKey] = pre.ToJson();
        if (extraMetadata is not null)
            foreach (var (k, v) in extraMetadata) metadata[k] = v;
        // Weights in the precision of the file they came from (an fp16 checkpoint stays half the size), where that is
        // lossless: a tensor changed since loading (fine-tuned) that the narrower type cannot hold keeps its own dtype.
        using var scope = torch.NewDisposeScope();
        var state = state_dict().ToDictionary(kv => kv.Key, kv => StorageType != ScalarType.Float32 && kv.Value.dtype == ScalarType.Float32
            ? Narrowed(kv.Value, StorageType) : kv.Value, StringComparer.Ordinal);
        SafetensorsFile.Write(path, state.OrderBy(kv => kv.Key, StringComparer.Ordinal), metadata);
    }

    /// <summary>The floating-point type the loaded file stored its weights in; <see cref="Save(string)"/> writes them so again.</summary>
    internal ScalarType StorageType { get; set; } = ScalarType.Float32;

    private static Tensor Narrowed(Tensor value, ScalarType storage)
    {
        var narrow = value.to(storage);
        using var back = narrow.to(value.dtype);
        return back.allclose(value, rtol: 0, atol: 0, equal_nan: true) ? narrow : value;
    }

    /// <summary>The one floating-point dtype all of a file's floating tensors share, if it is a half type; else float32.</summary>
    private static ScalarType StorageTypeOf(IEnumerable<WeightTensor> tensors)
    {
        var floating = tensors.Select(t => t.DType).Where(d => d is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64)
            .Distinct().ToList();
        return floating is [var only and (ScalarType.Float16 or ScalarType.BFloat16)] ? only : ScalarType.Float32;
    }

    private static Dictionary<string, WeightTensor> ToClipLayout(WeightSource source)
    {
        var tensors = source.Tensors;
        if (source.StoredConfig is not null) return tensors;
        if (HuggingFaceLayout.Matches(tensors.Keys)) return HuggingFaceLayout.ToClipLayout(tensors);

        // OpenAI / open_clip layout: the text tower's keys sit at the top level; here they live under "text.".
        bool wrapped = tensors.Count > 0 && tensors.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal));
        var result = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
        foreach (var (rawKey, tensor) in tensors)
        {
            result[OpenAILayout.ToClipKey(wrapped ? rawKey["module.".Length..] : rawKey)] = tensor;
        }
        return result;
    }

    private void LoadWeights(Dictionary<string, WeightTensor> tensors, string path)
    {
        var target = state_dict();
        var missing = target.Keys.Where(k => !tensors.ContainsKey(k) && !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).ToList();
        var unexpected = tensors.Keys.Where(k => !target.ContainsKey(k) && !OpenAILayout.IsHarmlessExtra(k)).ToList();
        var misshaped = target.Where(kv => tensors.TryGetValue(kv.Key, out var t) && !t.Shape.SequenceEqual(kv.Value.shape))
            .Select(kv => $"{kv.Key} (file [{string.Join(", ", tensors[kv.Key].Shape)}], model [{string.Join(", ", kv.Value.shape)}])")
            .ToList();
        if (missing.Count + unexpected.Count + misshaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing keys: {Summarize(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected keys: {Summarize(unexpected)}");
            if (misshaped.Count > 0) parts.Add($"keys with the wrong shape: {Summarize(misshaped)}");
            var model = Config.TimmModelName is not null ? "the model the open_clip config describes" : "the inferred CLIP model";
            throw new ClipCheckpointException(path, $"the weights do not fit {model} ({Config.Describe()}); " + string.Join("; ", parts));
        }

        using var _ = torch.no_grad();
        foreach (var (name, dest) in target)
        {
            if (!tensors.TryGetValue(name, out var source)) continue;
            using var value = source.Read();
            dest.copy_(value);
        }
    }

    private static string Summarize(IEnumerable<string> items)
    {
        var list = items.ToList();
        const int shown = 12;
        return list.Count <= shown ? string.Join(", ", list) : string.Join(", ", list.Take(shown)) + $", and {list.Count - shown} more";
    }
}
