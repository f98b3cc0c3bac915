using System.Text.Json.Nodes;

namespace Clip.MLNet.Weights;

/// <summary>What an open_clip <c>text_cfg</c> says about its tokenizer (read by <see cref="ClipModel.Load"/> to find the tokenizer file).</summary>
/// <param name="ConfigPath">The <c>open_clip_config.json</c> it came from (for messages).</param>
/// <param name="HfTokenizerName">The <c>hf_tokenizer_name</c> (a hub repository), or null for CLIP's BPE.</param>
/// <param name="Clean">The <c>tokenizer_kwargs.clean</c> rule (<c>canonicalize</c>, <c>whitespace</c>, <c>lower</c>); null when absent.</param>
/// <param name="ContextLength">The <c>text_cfg.context_length</c>.</param>
/// <param name="StripSepToken">The <c>tokenizer_kwargs.strip_sep_token</c> (CLIPA: true): BERT's [SEP] becomes padding.</param>
internal sealed record OpenClipTextTokenizer(string ConfigPath, string? HfTokenizerName, string? Clean, int ContextLength, bool StripSepToken = false);

/// <summary>
/// Reads open_clip's model configs (<c>open_clip_config.json</c>'s <c>model_cfg</c>, the files of open_clip's
/// <c>model_configs/</c>) for the towers that cannot be read off the weights: timm image towers (named timm models,
/// whose sizes, head counts and activation come from timm's definitions, with <c>timm_model_kwargs</c> over them)
/// and custom text towers (causal mask, pooling, projection bias, LayerNorm epsilon and activation from the config).
/// </summary>
internal static class OpenClipConfig
{
    /// <summary>A timm ViT definition: what <c>timm.create_model(name)</c> builds before any keyword overrides.</summary>
    internal sealed record TimmVit(int ImageSize, int PatchSize, int Width, int Depth, int Heads, double MlpRatio,
        bool ClassToken, string GlobalPool, string Activation, bool PreNorm = false, string Family = "vit", int RopeReference = 16);

    /// <summary>
    /// The timm towers open_clip's published SigLIP/SigLIP2 configs name (timm's <c>vision_transformer.py</c>).
    /// Sizes and activation are timm's: the SigLIP2-era SO400M/16 and giant towers use tanh-approximated GELU.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, TimmVit> TimmModels = new Dictionary<string, TimmVit>(StringComparer.Ordinal)
    {
        ["vit_base_patch16_siglip_224"] = new(224, 16, 768, 12, 12, 4.0, false, "map", "gelu"),
        ["vit_base_patch16_siglip_256"] = new(256, 16, 768, 12, 12, 4.0, false, "map", "gelu"),
        ["vit_base_patch16_siglip_384"] = new(384, 16, 768, 12, 12, 4.0, false, "map", "gelu"),
        ["vit_base_patch16_siglip_512"] = new(512, 16, 768, 12, 12, 4.0, false, "map", "gelu"),
        ["vit_base_patch32_siglip_256"] = new(256, 32, 768, 12, 12, 4.0, false, "map", "gelu"),
        ["vit_large_patch16_siglip_256"] = new(256, 16, 1024, 24, 16, 4.0, false, "map", "gelu"),
        ["vit_large_patch16_siglip_384"] = new(384, 16, 1024, 24, 16, 4.0, false, "map", "gelu"),
        ["vit_large_patch16_siglip_512"] = new(512, 16, 1024, 24, 16, 4.0, false, "map", "gelu"),
        ["vit_so400m_patch14_siglip_224"] = new(224, 14, 1152, 27, 16, 3.7362, false, "map", "gelu"),
        ["vit_so400m_patch14_siglip_378"] = new(378, 14, 1152, 27, 16, 3.7362, false, "map", "gelu"),
        ["vit_so400m_patch14_siglip_384"] = new(384, 14, 1152, 27, 16, 3.7362, false, "map", "gelu"),
        ["vit_so400m_patch16_siglip_256"] = new(256, 16, 1152, 27, 16, 3.7362, false, "map", "gelu_tanh"),
        ["vit_so400m_patch16_siglip_384"] = new(384, 16, 1152, 27, 16, 3.7362, false, "map", "gelu_tanh"),
        ["vit_so400m_patch16_siglip_512"] = new(512, 16, 1152, 27, 16, 3.7362, false, "map", "gelu_tanh"),
        ["vit_giant_opt_patch16_siglip_256"] = new(256, 16, 1536, 40, 16, 8192.0 / 1536, false, "map", "gelu_tanh"),
        ["vit_giant_opt_patch16_siglip_384"] = new(384, 16, 1536, 40, 16, 8192.0 / 1536, false, "map", "gelu_tanh"),
        // timm's eva.py: separate q/k/v, SwiGLU with scale_mlp, scale_attn_inner, rotary embeddings with ref_feat_shape (16, 16).
        ["eva02_base_patch16_clip_224"] = new(224, 16, 768, 12, 12, 4 * 2 / 3.0, true, "token", "silu", Family: "eva02"),
        ["eva02_large_patch14_clip_224"] = new(224, 14, 1024, 24, 16, 4 * 2 / 3.0, true, "token", "silu", Family: "eva02"),
        ["eva02_large_patch14_clip_336"] = new(336, 14, 1024, 24, 16, 4 * 2 / 3.0, true, "token", "silu", Family: "eva02"),
    };

    /// <summary>
    /// Builds the configuration of a model whose <c>model_cfg</c> names a timm image tower or a custom text tower;
    /// null for OpenAI-layout configs (those are inferred from the weights).
    /// </summary>
    /// <exception cref="ClipCheckpointException">A field names something unsupported; the message names the file and the field.</exception>
    public static ClipConfig? BuildFamilyConfig(string path, JsonObject model)
    {
        var vision = model["vision_cfg"] as JsonObject;
        bool timm = vision?["timm_model_name"] is not null;
        bool customText = model["custom_text"]?.GetValue<bool>() ?? false;
        if (!timm && !customText) return null;
        if (!timm)
            throw Refuse(path, "model_cfg.custom_text", "a custom text tower beside OpenAI's image layout (CLIPA-style towers) is not supported yet");
        if (model["text_cfg"] is not JsonObject text)
            throw Refuse(path, "model_cfg.text_cfg", "missing");

        bool quickGelu = model["quick_gelu"]?.GetValue<bool>() ?? false;
        var defaultAct = quickGelu ? ClipActivation.QuickGelu : ClipActivation.Gelu;
        int embedDim = Int(path, model, "embed_dim", "model_cfg.embed_dim") ?? throw Refuse(path, "model_cfg.embed_dim", "missing");

        // --- image tower: the named timm model, then timm_model_kwargs over it ---
        var name = (string)vision!["timm_model_name"]!;
        if (!TimmModels.TryGetValue(name, out var t))
            throw Refuse(path, "model_cfg.vision_cfg.timm_model_name",
                $"unknown timm model '{name}' (supported: {string.Join(", ", TimmModels.Keys)})");
        // open_clip does not pass image_size to timm: the tower's input size is the named model's unless the kwargs set img_size.
        int imageSize = t.ImageSize;
        int patch = t.PatchSize, width = t.Width, depth = t.Depth, heads = t.Heads;
        double mlpRatio = t.MlpRatio;
        bool classToken = t.ClassToken, preNorm = t.PreNorm;
        string act = t.Activation;
        if (vision["timm_model_kwargs"] is JsonObject kwargs)
        {
            foreach (var (key, value) in kwargs)
            {
                string field = $"model_cfg.vision_cfg.timm_model_kwargs.{key}";
                switch (key)
                {
                    case "embed_dim": width = value!.GetValue<int>(); break;
                    case "depth": depth = value!.GetValue<int>(); break;
                    case "num_heads": heads = value!.GetValue<int>(); break;
                    case "patch_size": patch = value!.GetValue<int>(); break;
                    case "mlp_ratio": mlpRatio = value!.GetValue<double>(); break;
                    case "class_token": classToken = value!.GetValue<bool>(); break;
                    case "pre_norm": preNorm = value!.GetValue<bool>(); break;
                    case "act_layer": act = (string?)value ?? act; break;
                    case "img_size":
                        imageSize = value is JsonArray a ? a[0]!.GetValue<int>() : value!.GetValue<int>();
                        if (value is JsonArray a2 && a2.Count == 2 && a2[1]!.GetValue<int>() != imageSize)
                            throw Refuse(path, field, "non-square inputs are not supported");
                        break;
                    case "drop_path_rate" or "drop_rate" or "pos_drop_rate" or "patch_drop_rate" or "attn_drop_rate" or "proj_drop_rate" or "weight_init":
                        break;   // training-time options: no effect on inference
                    default:
                        throw Refuse(path, field, "this timm keyword is not supported");
                }
            }
        }
        if (Int(path, vision, "image_size", "model_cfg.vision_cfg.image_size") is { } configured && configured != imageSize)
            throw Refuse(path, "model_cfg.vision_cfg.image_size", $"{configured} differs from the input size {imageSize} of the timm tower '{name}' (set timm_model_kwargs.img_size)");
        var pool = (string?)vision["timm_pool"] ?? "avg";
        if (pool is not ("map" or "token"))
            throw Refuse(path, "model_cfg.vision_cfg.timm_pool", $"pool '{pool}' is not supported (map or token)");
        // An explicit null keeps timm's own head as the projection (EVA02); absent means open_clip's default 'linear'.
        var proj = vision.ContainsKey("timm_proj") ? (string?)vision["timm_proj"] ?? "head" : "linear";
        bool eva = t.Family == "eva02";
        if (eva ? proj != "head" : proj != "none")
            throw Refuse(path, "model_cfg.vision_cfg.timm_proj", $"'{proj}' is not supported for '{name}' ({(eva ? "null: timm's head" : "none")})");
        if (!eva && width != embedDim)
            throw Refuse(path, "model_cfg.embed_dim", $"{embedDim} differs from the timm tower's width {width}, which timm_proj 'none' passes through");
        if (eva && (pool != "token" || !classToken))
            throw Refuse(path, "model_cfg.vision_cfg.timm_pool", $"EVA02 towers pool their class token ('token'), not '{pool}'");
        var visionAct = eva ? ClipActivation.Gelu : ClipActivationNames.TryParse(act)
            ?? throw Refuse(path, "model_cfg.vision_cfg.timm_model_kwargs.act_layer", $"activation '{act}' is not supported (gelu, gelu_tanh, quick_gelu)");

        // --- text tower ---
        if (text["hf_model_name"] is JsonNode hf && (string?)hf is { Length: > 0 } hfName)
            throw Refuse(path, "model_cfg.text_cfg.hf_model_name", $"Hugging Face text towers ('{hfName}') are not supported");
        if (text["embed_cls"]?.GetValue<bool>() == true)
            throw Refuse(path, "model_cfg.text_cfg.embed_cls", "text towers with a class embedding are not supported");
        int textWidth = Int(path, text, "width", "model_cfg.text_cfg.width") ?? 512;
        double textMlpRatio = text["mlp_ratio"]?.GetValue<double>() ?? 4.0;
        var textPool = (string?)text["pool_type"] ?? "argmax";
        if (textPool is not ("argmax" or "last" or "first"))
            throw Refuse(path, "model_cfg.text_cfg.pool_type", $"unknown pool_type '{textPool}' (argmax, last or first)");
        var projType = (string?)text["proj_type"] ?? "linear";
        if (projType != "linear")
            throw Refuse(path, "model_cfg.text_cfg.proj_type", $"'{projType}' is not supported (linear)");
        var textAct = defaultAct;
        if (text["act_kwargs"] is JsonObject actKwargs && (string?)actKwargs["approximate"] is { } approx)
        {
            if (approx == "tanh") textAct = ClipActivation.GeluTanh;
            else if (approx != "none") throw Refuse(path, "model_cfg.text_cfg.act_kwargs.approximate", $"unknown value '{approx}' (tanh or none)");
        }
        double textEps = text["norm_kwargs"]?["eps"]?.GetValue<double>() ?? 1e-5;

        var reference = ClipConfig.VisionTransformerConfig(embedDim, imageSize, patch, width, depth, textWidth,
            Int(path, text, "layers", "model_cfg.text_cfg.layers") ?? 12,
            Int(path, text, "context_length", "model_cfg.text_cfg.context_length") ?? 77,
            Int(path, text, "vocab_size", "model_cfg.text_cfg.vocab_size") ?? 49408, defaultAct);
        return reference with
        {
            VisionHeads = heads,
            VisionMlpWidth = (int)(width * mlpRatio),
            TextHeads = Int(path, text, "heads", "model_cfg.text_cfg.heads") ?? 8,
            TextMlpWidth = (int)(textWidth * textMlpRatio),
            TimmModelName = name,
            VisionTimmFamily = t.Family,
            VisionRopeReferenceGrid = t.RopeReference,
            VisionClassToken = classToken,
            VisionPool = pool,
            VisionPreNorm = preNorm,
            VisionLayerNormEps = 1e-6,
            VisionActivation = visionAct == defaultAct ? null : visionAct,
            TextCausalMask = !(text["no_causal_mask"]?.GetValue<bool>() ?? false),
            TextPool = textPool,
            TextProjectionBias = text["proj_bias"]?.GetValue<bool>() ?? false,
            TextLayerNormEps = textEps,
            TextActivation = textAct == defaultAct ? null : textAct,
            HasLogitBias = model["init_logit_bias"] is JsonNode bias && bias.GetValueKind() != System.Text.Json.JsonValueKind.Null,
        };
    }

    /// <summary>
    /// The published open_clip SigLIP/SigLIP2 configurations (open_clip's <c>model_configs/</c>), for building random
    /// weights of their sizes (<c>clip bench --arch</c>).
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, Func<ClipConfig>> PublishedSigLip =
        new Dictionary<string, Func<ClipConfig>>(StringComparer.OrdinalIgnoreCase)
        {
            ["ViT-B-16-SigLIP"] = () => SigLip("vit_base_patch16_siglip_224", 768, 768, 12, 12, 4.0, 32000, 64, false),
            ["ViT-B-16-SigLIP-256"] = () => SigLip("vit_base_patch16_siglip_256", 768, 768, 12, 12, 4.0, 32000, 64, false),
            ["ViT-B-16-SigLIP-384"] = () => SigLip("vit_base_patch16_siglip_384", 768, 768, 12, 12, 4.0, 32000, 64, false),
            ["ViT-B-16-SigLIP-512"] = () => SigLip("vit_base_patch16_siglip_512", 768, 768, 12, 12, 4.0, 32000, 64, false),
            ["ViT-L-16-SigLIP-256"] = () => SigLip("vit_large_patch16_siglip_256", 1024, 1024, 16, 24, 4.0, 32000, 64, false),
            ["ViT-L-16-SigLIP-384"] = () => SigLip("vit_large_patch16_siglip_384", 1024, 1024, 16, 24, 4.0, 32000, 64, false),
            ["ViT-SO400M-14-SigLIP"] = () => SigLip("vit_so400m_patch14_siglip_224", 1152, 1152, 16, 27, 3.7362, 32000, 16, false),
            ["ViT-SO400M-14-SigLIP-384"] = () => SigLip("vit_so400m_patch14_siglip_384", 1152, 1152, 16, 27, 3.7362, 32000, 64, false),
            ["ViT-B-16-SigLIP2"] = () => SigLip("vit_base_patch16_siglip_224", 768, 768, 12, 12, 4.0, 256000, 64, true),
            ["ViT-B-16-SigLIP2-256"] = () => SigLip("vit_base_patch16_siglip_256", 768, 768, 12, 12, 4.0, 256000, 64, true),
            ["ViT-SO400M-16-SigLIP2-384"] = () => SigLip("vit_so400m_patch16_siglip_384", 1152, 1152, 16, 27, 3.7362, 256000, 64, true),
        };

    private static ClipConfig SigLip(string timm, int embedDim, int textWidth, int textHeads, int textLayers, double textMlpRatio,
        int vocab, int context, bool siglip2)
    {
        var t = TimmModels[timm];
        var visionAct = ClipActivationNames.TryParse(t.Activation)!.Value;
        return ClipConfig.VisionTransformerConfig(embedDim, t.ImageSize, t.PatchSize, t.Width, t.Depth, textWidth, textLayers, context, vocab, ClipActivation.Gelu) with
        {
            VisionHeads = t.Heads,
            VisionMlpWidth = (int)(t.Width * t.MlpRatio),
            TextHeads = textHeads,
            TextMlpWidth = (int)(textWidth * textMlpRatio),
            TimmModelName = timm,
            VisionClassToken = t.ClassToken,
            VisionPool = t.GlobalPool,
            VisionLayerNormEps = 1e-6,
            VisionActivation = visionAct == ClipActivation.Gelu ? null : visionAct,
            TextCausalMask = false,
            TextPool = "last",
            TextProjectionBias = true,
            TextLayerNormEps = 1e-6,
            TextActivation = siglip2 ? ClipActivation.GeluTanh : null,
            HasLogitBias = true,
        };
    }

    /// <summary>
    /// For configs of OpenAI's layout (the shapes give the sizes): the flags the shapes cannot show, as a change to the
    /// inferred configuration. Flags of towers this library does not build are refused, naming the field.
    /// </summary>
    public static Func<ClipConfig, ClipConfig>? OpenAILayoutOverrides(string path, JsonObject model)
    {
        var vision = model["vision_cfg"] as JsonObject;
        var text = model["text_cfg"] as JsonObject;
        void RefuseIfSet(JsonObject? cfg, string section, string key, string what)
        {
            if (cfg?[key] is JsonNode node && node.GetValueKind() is not (System.Text.Json.JsonValueKind.Null or System.Text.Json.JsonValueKind.False))
                throw Refuse(path, $"model_cfg.{section}.{key}", $"{what} is not supported");
        }
        foreach (var key in new[] { "attentional_pool", "ls_init_value", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn", "scale_fc", "scale_attn_inner" })
            RefuseIfSet(vision, "vision_cfg", key, $"'{key}'");
        foreach (var key in new[] { "embed_cls", "ls_init_value", "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn", "scale_fc", "scale_attn_inner" })
            RefuseIfSet(text, "text_cfg", key, $"'{key}'");
        if ((string?)vision?["pos_embed_type"] is { } pe && pe != "learnable")
            throw Refuse(path, "model_cfg.vision_cfg.pos_embed_type", $"'{pe}' is not supported (learnable)");
        if ((string?)vision?["block_type"] is { } bt && bt != "default")
            throw Refuse(path, "model_cfg.vision_cfg.block_type", $"'{bt}' is not supported (default)");
        if ((string?)text?["hf_model_name"] is { Length: > 0 } hf)
            throw Refuse(path, "model_cfg.text_cfg.hf_model_name", $"Hugging Face text towers ('{hf}') are not supported");

        bool lnPre = !(vision?["no_ln_pre"]?.GetValue<bool>() ?? false);
        var visionPool = (string?)vision?["pool_type"] ?? "tok";
        if (visionPool is not ("tok" or "avg"))
            throw Refuse(path, "model_cfg.vision_cfg.pool_type", $"unknown pool_type '{visionPool}' (tok or avg)");
        bool lnAfterPool = vision?["final_ln_after_pool"]?.GetValue<bool>() ?? false;
        bool causal = !(text?["no_causal_mask"]?.GetValue<bool>() ?? false);
        var textPool = (string?)text?["pool_type"] ?? "argmax";
        if (textPool is not ("argmax" or "last" or "first"))
            throw Refuse(path, "model_cfg.text_cfg.pool_type", $"unknown pool_type '{textPool}' (argmax, last or first)");
        bool projBias = text?["proj_bias"]?.GetValue<bool>() ?? false;
        double? textEps = text?["norm_kwargs"]?["eps"]?.GetValue<double>();
        ClipActivation? textAct = null;
        if ((string?)text?["act_kwargs"]?["approximate"] is { } approx)
        {
            if (approx == "tanh") textAct = ClipActivation.GeluTanh;
            else if (approx != "none") throw Refuse(path, "model_cfg.text_cfg.act_kwargs.approximate", $"unknown value '{approx}' (tanh or none)");
        }
        if (lnPre && visionPool == "tok" && !lnAfterPool && causal && textPool == "argmax" && !projBias && textEps is null && textAct is null)
            return null;
        return c => c with
        {
            VisionLnPre = lnPre,
            VisionPool = visionPool == "avg" ? "avg" : "token",
            VisionFinalLnAfterPool = lnAfterPool,
            TextCausalMask = causal,
            TextPool = textPool,
            TextProjectionBias = projBias,
            TextLayerNormEps = textEps ?? c.TextLayerNormEps,
            TextActivation = textAct ?? c.TextActivation,
        };
    }

    /// <summary>
    /// The preprocessing of an open_clip folder from its <c>open_clip_config.json</c> alone: <c>preprocess_cfg</c>, or
    /// OpenAI's at <c>vision_cfg.image_size</c> when the config has none.
    /// </summary>
    public static ClipPreprocessing ReadFolderPreprocessing(string folder)
    {
        var path = Path.Combine(folder, "open_clip_config.json");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException)
        {
            throw new ClipCheckpointException(path, $"not a valid open_clip config: {e.Message}", e);
        }
        int? size = root?["model_cfg"]?["vision_cfg"]?["image_size"] is JsonValue v ? v.GetValue<int>() : null;
        return ReadPreprocessing(path, root, size) ?? ClipPreprocessing.OpenAI(size ?? 224);
    }

    /// <summary>Reads <c>preprocess_cfg</c>; null when the config has none.</summary>
    public static ClipPreprocessing? ReadPreprocessing(string path, JsonNode? root, int? fallbackSize)
    {
        if (root?["preprocess_cfg"] is not JsonObject p) return null;
        int size = p["size"] switch
        {
            JsonArray a => a[0]!.GetValue<int>(),
            JsonNode n => n.GetValue<int>(),
            null => fallbackSize ?? 224,
        };
        float[] Triple(string key, IReadOnlyList<float> fallback)
        {
            var node = p[key];
            if (node is null) return fallback.ToArray();
            var values = node is JsonArray arr ? arr.Select(v => v!.GetValue<float>()).ToArray() : new[] { node.GetValue<float>() };
            if (values.Length == 1) values = new[] { values[0], values[0], values[0] };
            if (values.Length != 3) throw Refuse(path, $"preprocess_cfg.{key}", $"needs 3 values, got {values.Length}");
            return values;
        }
        var interpolation = ((string?)p["interpolation"] ?? "bicubic") switch
        {
            "bicubic" => ClipInterpolation.Bicubic,
            "bilinear" => ClipInterpolation.Bilinear,
            var other => throw Refuse(path, "preprocess_cfg.interpolation", $"'{other}' is not supported (bicubic or bilinear)"),
        };
        var mode = ((string?)p["resize_mode"] ?? "shortest") switch
        {
            "shortest" => ClipResizeMode.Shortest,
            "squash" => ClipResizeMode.Squash,
            "longest" => ClipResizeMode.Longest,
            var other => throw Refuse(path, "preprocess_cfg.resize_mode", $"'{other}' is not supported (shortest, squash or longest)"),
        };
        int fill = p["fill_color"] is JsonNode f ? (int)Math.Round(f.GetValue<double>()) : 0;
        if (fill is < 0 or > 255) throw Refuse(path, "preprocess_cfg.fill_color", $"{fill} is not a byte value");
        var mean = Triple("mean", ClipImagePreprocessor.OpenAIMean);
        var std = Triple("std", ClipImagePreprocessor.OpenAIStd);
        return new ClipPreprocessing(size, mean, std, interpolation, mode, (byte)fill);
    }

    private static int? Int(string path, JsonNode node, string key, string field)
    {
        var v = node[key];
        if (v is null) return null;
        try { return v.GetValue<int>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Refuse(path, field, $"'{v.ToJsonString()}' is not an integer");
        }
    }

    private static ClipCheckpointException Refuse(string path, string field, string problem) =>
        new(path, $"{field}: {problem}");
}
