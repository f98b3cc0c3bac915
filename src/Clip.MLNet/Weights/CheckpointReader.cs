using System.Text.Json.Nodes;

namespace Clip.MLNet.Weights;

/// <summary>
/// Opens any supported weight file or folder as a <see cref="WeightSource"/> in the file's own key
/// layout: PyTorch zip archives (<c>torch.save</c> and TorchScript), safetensors, and folders
/// (Hugging Face transformers layout, or open_clip's hub layout).
/// </summary>
internal static class CheckpointReader
{
    public const string OwnFormatName = "clip.mlnet";

    public static WeightSource Open(string path)
    {
        if (Directory.Exists(path)) return OpenFolder(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such weight file or folder.", path);
        return OpenFile(path, new WeightSource(path));
    }

    private static WeightSource OpenFile(string path, WeightSource source)
    {
        var head = new byte[16];
        long length;
        using (var f = File.OpenRead(path))
        {
            length = f.Length;
            if (length == 0) throw new ClipCheckpointException(path, "the file is empty (0 bytes), not a checkpoint");
            f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        try
        {
            if (head[0] == (byte)'P' && head[1] == (byte)'K') AddArchive(path, source);
            else if (SafetensorsFile.LooksLikeSafetensors(head, length)) AddSafetensors(path, source);
            else if (head[0] == 0x80) RefuseLegacyPickle(path);
            else throw new ClipCheckpointException(path, "not a checkpoint: expected a PyTorch archive (.pt, .pth, .bin), a safetensors file, or a Hugging Face model folder");
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private static void AddArchive(string path, WeightSource source)
    {
        var archive = source.Own(TorchArchive.Open(path));
        var root = archive.LoadData();
        if (root is PickleDict dict)
        {
            // open_clip's training checkpoints: {"epoch", "name", "state_dict", "optimizer", ...}
            foreach (var wrapper in new[] { "state_dict", "model", "module" })
                if (dict.Items.TryGetValue(wrapper, out var inner) && inner is PickleDict innerDict)
                {
                    root = innerDict;
                    break;
                }
        }
        var refs = new Dictionary<string, TensorRef>(StringComparer.Ordinal);
        TorchArchive.Collect(root, "", refs);
        if (refs.Count == 0) throw new ClipCheckpointException(path, "the archive holds no tensors (not a state dict or model)");
        foreach (var (name, t) in refs)
        {
            var tensorRef = t;
            source.Tensors[name] = new WeightTensor(tensorRef.Shape, tensorRef.Storage.DType, () => archive.Read(tensorRef, name));
        }
    }

    private static void AddSafetensors(string path, WeightSource source)
    {
        var file = source.Own(SafetensorsFile.Open(path));
        foreach (var entry in file.Entries)
        {
            var e = entry;
            source.Tensors[e.Name] = new WeightTensor(e.Shape, e.DType, () => file.Read(e));
        }
        if (file.Metadata.TryGetValue("format", out var format) && format == OwnFormatName)
        {
            foreach (var (k, v) in file.Metadata) source.Metadata[k] = v;
            if (file.Metadata.TryGetValue("clip_config", out var json))
            {
                try { source.StoredConfig = ClipConfig.FromJson(json); }
                catch (InvalidDataException e) { throw new ClipCheckpointException(path, e.Message, e); }
            }
        }
    }

    private static void RefuseLegacyPickle(string path)
    {
        // A bare pickle: the pre-1.6 torch.save format (or something else entirely). Read its first
        // object under the allow-list so a hostile file is refused by name, then say what is supported.
        using (var f = File.OpenRead(path))
            PickleReader.Load(f, path, allowTorchScriptClasses: false);
        throw new ClipCheckpointException(path, "a bare pickle (PyTorch's pre-1.6 format), which is not supported: re-save it with torch.save(...) from PyTorch 1.6 or later, or as safetensors");
    }

    private static WeightSource OpenFolder(string folder)
    {
        var source = new WeightSource(folder);
        try
        {
            var hfConfig = Path.Combine(folder, "config.json");
            var openClipConfig = Path.Combine(folder, "open_clip_config.json");
            string[] weightNames = File.Exists(hfConfig) && !File.Exists(openClipConfig)
                ? new[] { "model.safetensors", "pytorch_model.bin" }
                : new[] { "open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin" };
            var weights = weightNames.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
            var shardIndex = new[] { "model.safetensors.index.json", "pytorch_model.bin.index.json" }
                .Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
            // The config first: a config that names something unsupported is the error to report, weights or not.
            if (File.Exists(openClipConfig)) ReadOpenClipConfig(openClipConfig, source);
            if (weights is not null) OpenFile(weights, source);
            else if (shardIndex is not null) AddShards(shardIndex, source);
            else if (File.Exists(openClipConfig))
                throw new ClipCheckpointException(folder, $"the folder has open_clip_config.json but no weights (open_clip_model.safetensors or open_clip_pytorch_model.bin)");
            else throw new ClipCheckpointException(folder, $"the folder holds no weights ({string.Join(", ", weightNames)} or a shard index)");

            if (!File.Exists(openClipConfig) && File.Exists(hfConfig)) HuggingFaceLayout.ReadConfig(hfConfig, source);
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private static void AddShards(string indexPath, WeightSource source)
    {
        var folder = Path.GetDirectoryName(indexPath)!;
        JsonObject map;
        try { map = JsonNode.Parse(File.ReadAllText(indexPath))!["weight_map"]!.AsObject(); }
        catch (Exception e) { throw new ClipCheckpointException(indexPath, $"not a valid shard index: {e.Message}", e); }
        foreach (var shard in map.Select(kv => (string)kv.Value!).Distinct())
        {
            var file = Path.GetFullPath(Path.Combine(folder, shard));
            if (!file.StartsWith(Path.GetFullPath(folder), StringComparison.Ordinal))
                throw new ClipCheckpointException(indexPath, $"the shard '{shard}' lies outside the model folder");
            if (!File.Exists(file)) throw new ClipCheckpointException(indexPath, $"the shard '{shard}' is missing");
            OpenFile(file, source);
        }
    }

    private static void ReadOpenClipConfig(string path, WeightSource source)
    {
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path));
            var model = root?["model_cfg"];
            if (model is JsonObject modelObject && OpenClipConfig.BuildFamilyConfig(path, modelObject) is { } family)
                source.FamilyConfig = family;
            else if (model is JsonObject openAILayout)
                source.ConfigOverride = OpenClipConfig.OpenAILayoutOverrides(path, openAILayout);
            source.Preprocessing = OpenClipConfig.ReadPreprocessing(path, root, model?["vision_cfg"]?["image_size"] is JsonValue v ? v.GetValue<int>() : null);
            if (model?["text_cfg"] is JsonObject textCfg)
                source.TextTokenizer = new OpenClipTextTokenizer(path, (string?)textCfg["hf_tokenizer_name"],
                    (string?)textCfg["tokenizer_kwargs"]?["clean"], textCfg["context_length"]?.GetValue<int>() ?? 77,
                    textCfg["tokenizer_kwargs"]?["strip_sep_token"]?.GetValue<bool>() ?? false);
            if (model?["quick_gelu"] is JsonNode q)
                source.Activation = q.GetValue<bool>() ? ClipActivation.QuickGelu : ClipActivation.Gelu;
            else if (model is not null)
                source.Activation = ClipActivation.Gelu; // open_clip's default when the config does not ask for QuickGELU
            if (model?["vision_cfg"] is JsonObject vision)
            {
                // open_clip gives the vision tower's head width, not its head count (ViT-H/14: width 1280,
                // head_width 80, so 16 heads, where width / 64 would give 20). Its ResNets pool with width * 32 / head_width heads.
                int headWidth = vision["head_width"]?.GetValue<int>() ?? 64;
                if (vision["heads"] is JsonNode vh) source.VisionHeads = vh.GetValue<int>();
                else if (vision["width"] is JsonNode w)
                    source.VisionHeads = vision["layers"] is JsonArray ? w.GetValue<int>() * 32 / headWidth : w.GetValue<int>() / headWidth;
            }
            // open_clip's text towers default to 8 heads when the config does not say.
            if (model?["text_cfg"] is JsonObject text) source.TextHeads = text["heads"]?.GetValue<int>() ?? 8;
        }
        catch (Exception e) when (e is not ClipCheckpointException)
        {
            throw new ClipCheckpointException(path, $"not a valid open_clip config: {e.Message}", e);
        }
    }
}
