using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Clip.MLNet;

/// <summary>Which image tower a CLIP model has.</summary>
public enum VisionArchitecture
{
    /// <summary>A vision transformer (ViT-B/32, ViT-L/14, ...).</summary>
    VisionTransformer,
    /// <summary>OpenAI's modified ResNet with attention pooling (RN50, RN50x4, ...).</summary>
    ModifiedResNet,
}

/// <summary>
/// The hyper-parameters of a CLIP model. <see cref="InferFromShapes"/> reads them from the shapes of
/// a state dict with the reference's rules (heads = width / 64 for transformers, width * 32 / 64 for
/// ResNet attention pooling), so every published size loads without a separate config file.
/// </summary>
public sealed record ClipConfig
{
    /// <summary>Dimension of the joint embedding space.</summary>
    public int EmbedDim { get; init; }
    /// <summary>Input side length of the image tower, in pixels.</summary>
    public int ImageResolution { get; init; }
    /// <summary>The image tower's kind.</summary>
    public VisionArchitecture VisionArchitecture { get; init; }
    /// <summary>ViT: one entry, the number of blocks. ResNet: blocks of each of the four stages.</summary>
    public IReadOnlyList<int> VisionLayers { get; init; } = Array.Empty<int>();
    /// <summary>ViT: the transformer width. ResNet: the width of the first stage (64 for RN50).</summary>
    public int VisionWidth { get; init; }
    /// <summary>ViT patch size; null for ResNets.</summary>
    public int? VisionPatchSize { get; init; }
    /// <summary>Attention heads of the image tower (ViT blocks or ResNet attention pooling).</summary>
    public int VisionHeads { get; init; }
    /// <summary>Hidden width of the ViT MLPs (4 × width in OpenAI's models); 0 for ResNets.</summary>
    public int VisionMlpWidth { get; init; }
    /// <summary>Maximum number of text tokens, SOT and EOT included (77).</summary>
    public int ContextLength { get; init; } = 77;
    /// <summary>Size of the token embedding table (49408 for CLIP's BPE).</summary>
    public int VocabSize { get; init; } = 49408;
    /// <summary>Width of the text transformer.</summary>
    public int TextWidth { get; init; }
    /// <summary>Attention heads of the text transformer.</summary>
    public int TextHeads { get; init; }
    /// <summary>Blocks of the text transformer.</summary>
    public int TextLayers { get; init; }
    /// <summary>Hidden width of the text MLPs.</summary>
    public int TextMlpWidth { get; init; }
    /// <summary>MLP activation of both towers (unless <see cref="VisionActivation"/> or <see cref="TextActivation"/> says otherwise).</summary>
    public ClipActivation Activation { get; init; } = ClipActivation.QuickGelu;

    /// <summary>
    /// The timm model the image tower is built as (for example <c>vit_base_patch16_siglip_224</c>), with its
    /// weights under <c>visual.trunk.*</c> in timm's names; null for OpenAI's layout (<c>visual.conv1</c>, ...).
    /// Set from open_clip configs (<c>vision_cfg.timm_model_name</c>) with the sizes of the named model and
    /// <c>timm_model_kwargs</c> applied.
    /// </summary>
    public string? TimmModelName { get; init; }

    /// <summary>
    /// The kind of timm tower: <c>vit</c> (timm's <c>VisionTransformer</c>: SigLIP) or <c>eva02</c> (timm's <c>Eva</c> as
    /// the EVA02-CLIP models build it: rotary embeddings, SwiGLU, inner LayerNorms, timm's head as the projection).
    /// </summary>
    public string VisionTimmFamily { get; init; } = "vit";

    /// <summary>EVA02's rotary embedding reference grid (timm's <c>ref_feat_shape</c>: 16 for the published towers).</summary>
    public int VisionRopeReferenceGrid { get; init; } = 16;

    /// <summary>Whether the ViT prepends a class token (true for OpenAI's models; false for SigLIP's timm towers).</summary>
    public bool VisionClassToken { get; init; } = true;

    /// <summary>
    /// How the image tower pools its tokens: <c>token</c> (the class token), <c>avg</c> (the mean of the patch tokens,
    /// open_clip's <c>pool_type: avg</c>: CLIPA), <c>map</c> (attention pooling with a learned latent query,
    /// <c>attn_pool.*</c>, timm towers only: SigLIP).
    /// </summary>
    public string VisionPool { get; init; } = "token";

    /// <summary>Whether OpenAI's layout normalizes the embedded tokens before the blocks (<c>ln_pre</c>; open_clip's <c>no_ln_pre</c> turns it off: CLIPA).</summary>
    public bool VisionLnPre { get; init; } = true;

    /// <summary>Whether <c>ln_post</c> is applied after pooling rather than to every token before it (open_clip's <c>final_ln_after_pool</c>: CLIPA).</summary>
    public bool VisionFinalLnAfterPool { get; init; }

    /// <summary>Whether a timm image tower normalizes before its blocks (<c>norm_pre</c>, timm's <c>pre_norm</c>).</summary>
    public bool VisionPreNorm { get; init; }

    /// <summary>LayerNorm epsilon of the image tower (1e-5 in OpenAI's layout, 1e-6 in timm's ViTs).</summary>
    public double VisionLayerNormEps { get; init; } = 1e-5;

    /// <summary>The image tower's activation when it differs from <see cref="Activation"/>; null: <see cref="Activation"/>.</summary>
    public ClipActivation? VisionActivation { get; init; }

    /// <summary>Whether the text tower's attention is causal (true for OpenAI's models; false for SigLIP's).</summary>
    public bool TextCausalMask { get; init; } = true;

    /// <summary>
    /// Where the text tower reads its features: <c>argmax</c> (the position of the largest id, the end-of-text
    /// token: OpenAI), <c>last</c> (the last position of the padded sequence: SigLIP), <c>first</c>.
    /// </summary>
    public string TextPool { get; init; } = "argmax";

    /// <summary>Whether the text projection is a linear layer with bias (<c>text.text_projection.weight/bias</c>) rather than a plain matrix.</summary>
    public bool TextProjectionBias { get; init; }

    /// <summary>LayerNorm epsilon of the text tower (1e-5; SigLIP: 1e-6).</summary>
    public double TextLayerNormEps { get; init; } = 1e-5;

    /// <summary>The text tower's activation when it differs from <see cref="Activation"/>; null: <see cref="Activation"/>.</summary>
    public ClipActivation? TextActivation { get; init; }

    /// <summary>
    /// Whether the model has a learned <c>logit_bias</c> (SigLIP families): its logits are
    /// <c>exp(logit_scale) * cos + logit_bias</c> and each class is scored by a sigmoid, not a softmax.
    /// </summary>
    public bool HasLogitBias { get; init; }

    /// <summary>The image tower's effective activation.</summary>
    internal ClipActivation EffectiveVisionActivation => VisionActivation ?? Activation;

    /// <summary>The text tower's effective activation.</summary>
    internal ClipActivation EffectiveTextActivation => TextActivation ?? Activation;

    /// <summary>Whether the text tower may stop at the batch's last end-of-text token without changing the result (causal mask and argmax pooling).</summary>
    internal bool TextTrimmable => TextCausalMask && TextPool == "argmax";

    /// <summary>A ViT configuration with the reference's derived values (heads = width/64, MLP = 4 × width).</summary>
    public static ClipConfig VisionTransformerConfig(int embedDim, int imageResolution, int patchSize, int visionWidth, int visionLayers,
        int textWidth, int textLayers, int contextLength = 77, int vocabSize = 49408, ClipActivation activation = ClipActivation.QuickGelu) =>
        ReferenceTextTower(embedDim, imageResolution, textWidth, textLayers, contextLength, vocabSize, activation) with
        {
            VisionArchitecture = VisionArchitecture.VisionTransformer,
            VisionLayers = new[] { visionLayers },
            VisionWidth = visionWidth,
            VisionPatchSize = patchSize,
            VisionHeads = Math.Max(1, visionWidth / 64),
            VisionMlpWidth = visionWidth * 4,
        };

    /// <summary>A ModifiedResNet configuration with the reference's derived values.</summary>
    public static ClipConfig ResNetConfig(int embedDim, int imageResolution, IReadOnlyList<int> stageBlocks, int visionWidth,
        int textWidth, int textLayers, int contextLength = 77, int vocabSize = 49408, ClipActivation activation = ClipActivation.QuickGelu) =>
        ReferenceTextTower(embedDim, imageResolution, textWidth, textLayers, contextLength, vocabSize, activation) with
        {
            VisionArchitecture = VisionArchitecture.ModifiedResNet,
            VisionLayers = stageBlocks.ToArray(),
            VisionWidth = visionWidth,
            VisionHeads = Math.Max(1, visionWidth * 32 / 64),
        };

    /// <summary>What both reference layouts share: the embedding size, the resolution and OpenAI's text tower (heads = width/64, MLP = 4 × width).</summary>
    private static ClipConfig ReferenceTextTower(int embedDim, int imageResolution, int textWidth, int textLayers, int contextLength, int vocabSize, ClipActivation activation) => new()
    {
        EmbedDim = embedDim,
        ImageResolution = imageResolution,
        ContextLength = contextLength,
        VocabSize = vocabSize,
        TextWidth = textWidth,
        TextHeads = Math.Max(1, textWidth / 64),
        TextLayers = textLayers,
        TextMlpWidth = textWidth * 4,
        Activation = activation,
    };

    /// <summary>
    /// Infers the configuration from the shapes of a state dict in this library's layout
    /// (<c>visual.*</c>, <c>text.*</c>, <c>logit_scale</c>), following the reference's rules.
    /// </summary>
    /// <exception cref="InvalidDataException">The shapes are not those of a CLIP model.</exception>
    public static ClipConfig InferFromShapes(IReadOnlyDictionary<string, long[]> shapes, ClipActivation activation = ClipActivation.QuickGelu)
    {
        long[] Shape(string key) => shapes.TryGetValue(key, out var s)
            ? s : throw new InvalidDataException($"The weights have no '{key}', which every CLIP model has.");
        int CountBlocks(string prefix) => shapes.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k.Substring(prefix.Length).Split('.')[0])
            .Where(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Distinct().Count();

        var textWidth = (int)Shape("text.ln_final.weight")[0];
        var textLayers = CountBlocks("text.transformer.resblocks.");
        var textMlp = (int)Shape("text.transformer.resblocks.0.mlp.c_fc.weight")[0];
        var contextLength = (int)Shape("text.positional_embedding")[0];
        var vocab = (int)Shape("text.token_embedding.weight")[0];
        // A plain matrix [width, embed], or (open_clip's proj_bias) a linear layer whose weight is [embed, width].
        var embedDim = shapes.TryGetValue("text.text_projection.weight", out var linear) && !shapes.ContainsKey("text.text_projection")
            ? (int)linear[0]
            : (int)Shape("text.text_projection")[1];

        if (shapes.ContainsKey("visual.proj"))
        {
            var conv = Shape("visual.conv1.weight");
            var width = (int)conv[0];
            var patch = (int)conv[^1];
            var grid = (int)Math.Round(Math.Sqrt(Shape("visual.positional_embedding")[0] - 1));
            return VisionTransformerConfig(embedDim, patch * grid, patch, width, CountBlocks("visual.transformer.resblocks."),
                textWidth, textLayers, contextLength, vocab, activation) with
            {
                VisionMlpWidth = (int)Shape("visual.transformer.resblocks.0.mlp.c_fc.weight")[0],
                TextMlpWidth = textMlp,
            };
        }
        if (shapes.ContainsKey("visual.layer1.0.conv1.weight"))
        {
            var width = (int)Shape("visual.layer1.0.conv1.weight")[0];
            var outputWidth = (int)Math.Round(Math.Sqrt(Shape("visual.attnpool.positional_embedding")[0] - 1));
            return ResNetConfig(embedDim, outputWidth * 32, Enumerable.Range(1, 4).Select(b => CountBlocks($"visual.layer{b}.")).ToArray(), width,
                textWidth, textLayers, contextLength, vocab, activation) with { TextMlpWidth = textMlp };
        }
        throw new InvalidDataException("The weights hold neither a ViT image tower ('visual.proj') nor a ResNet one ('visual.layer1.*').");
    }

    /// <summary>Checks that the values can build a model; throws <see cref="ArgumentException"/> naming the first that cannot.</summary>
    public void Validate()
    {
        void Positive(int value, string name)
        {
            if (value <= 0) throw new ArgumentException($"CLIP config: {name} must be positive, got {value}.");
        }
        Positive(EmbedDim, "embed_dim");
        Positive(ImageResolution, "image_resolution");
        Positive(VisionWidth, "vision_width");
        Positive(VisionHeads, "vision_heads");
        Positive(ContextLength, "context_length");
        Positive(VocabSize, "vocab_size");
        Positive(TextWidth, "transformer_width");
        Positive(TextHeads, "transformer_heads");
        Positive(TextMlpWidth, "transformer_mlp_width");
        if (TextLayers < 0) throw new ArgumentException("CLIP config: transformer_layers must not be negative.");
        if (TextWidth % TextHeads != 0) throw new ArgumentException($"CLIP config: transformer_width {TextWidth} is not divisible by {TextHeads} heads.");
        if (TextPool is not ("argmax" or "last" or "first"))
            throw new ArgumentException($"CLIP config: text pool_type '{TextPool}' is not supported (argmax, last or first).");
        if (VisionTimmFamily is not ("vit" or "eva02"))
            throw new ArgumentException($"CLIP config: timm tower family '{VisionTimmFamily}' is not supported (vit or eva02).");
        if (VisionTimmFamily == "eva02" && (VisionPool != "token" || !VisionClassToken))
            throw new ArgumentException("CLIP config: EVA02 towers pool their class token.");
        if (VisionPool is not ("token" or "map" or "avg"))
            throw new ArgumentException($"CLIP config: vision pool '{VisionPool}' is not supported (token, avg or map).");
        if (TimmModelName is null && (!VisionClassToken || VisionPool == "map"))
            throw new ArgumentException("CLIP config: OpenAI's image tower layout has a class token and pools it or the patch tokens' mean; attention pooling needs a timm tower.");
        if (TimmModelName is not null && VisionPool == "avg")
            throw new ArgumentException("CLIP config: average pooling of timm towers (with timm's fc_norm) is not supported.");
        if (VisionPool == "token" && !VisionClassToken)
            throw new ArgumentException("CLIP config: the image tower pools its class token but has none.");
        if (VisionArchitecture == VisionArchitecture.VisionTransformer)
        {
            if (VisionLayers.Count != 1) throw new ArgumentException("CLIP config: a ViT has one vision_layers value.");
            Positive(VisionPatchSize ?? 0, "vision_patch_size");
            Positive(VisionMlpWidth, "vision_mlp_width");
            // timm's patch embedding floors (SO400M/14 at 384 px sees 27 x 27 patches, the last 6 pixels unused); OpenAI's layout does not allow it.
            if (TimmModelName is null && ImageResolution % VisionPatchSize!.Value != 0)
                throw new ArgumentException($"CLIP config: image_resolution {ImageResolution} is not a multiple of the patch size {VisionPatchSize}.");
            if (VisionWidth % VisionHeads != 0) throw new ArgumentException($"CLIP config: vision_width {VisionWidth} is not divisible by {VisionHeads} heads.");
        }
        else
        {
            if (VisionLayers.Count != 4 || VisionLayers.Any(l => l <= 0)) throw new ArgumentException("CLIP config: a ModifiedResNet has four positive vision_layers values.");
            if (ImageResolution % 32 != 0) throw new ArgumentException($"CLIP config: ResNet image_resolution {ImageResolution} is not a multiple of 32.");
            if (VisionWidth % 2 != 0) throw new ArgumentException("CLIP config: ResNet vision_width must be even.");
            if (VisionWidth * 32 % VisionHeads != 0) throw new ArgumentException($"CLIP config: attention-pool width {VisionWidth * 32} is not divisible by {VisionHeads} heads.");
        }
    }

    /// <summary>
    /// One line for messages and reports: the image tower's kind and size, the text tower's size and the embedding,
    /// e.g. <c>ViT (width 768, 12 layers, patch 32, 224px); text (width 512, 12 layers); embed 512</c>.
    /// </summary>
    public string Describe()
    {
        var image = TimmModelName is not null
            ? $"timm {TimmModelName} (width {VisionWidth}, {VisionLayers[0]} layers, patch {VisionPatchSize}, {ImageResolution}px, {VisionPool} pooling)"
            : VisionArchitecture == VisionArchitecture.VisionTransformer
            ? $"ViT (width {VisionWidth}, {VisionLayers[0]} layers, patch {VisionPatchSize}, {ImageResolution}px)"
            : $"ModifiedResNet (width {VisionWidth}, stages [{string.Join(", ", VisionLayers)}], {ImageResolution}px)";
        return $"{image}; text (width {TextWidth}, {TextLayers} layers); embed {EmbedDim}";
    }

    /// <summary>Serializes to JSON with the reference's key names (plus the derived values made explicit).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["embed_dim"] = EmbedDim,
            ["image_resolution"] = ImageResolution,
            ["vision_architecture"] = VisionArchitecture == VisionArchitecture.VisionTransformer ? "vit" : "resnet",
            ["vision_layers"] = VisionArchitecture == VisionArchitecture.VisionTransformer
                ? JsonValue.Create(VisionLayers[0]) : new JsonArray(VisionLayers.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
            ["vision_width"] = VisionWidth,
            ["vision_patch_size"] = VisionPatchSize,
            ["vision_heads"] = VisionHeads,
            ["vision_mlp_width"] = VisionMlpWidth,
            ["context_length"] = ContextLength,
            ["vocab_size"] = VocabSize,
            ["transformer_width"] = TextWidth,
            ["transformer_heads"] = TextHeads,
            ["transformer_layers"] = TextLayers,
            ["transformer_mlp_width"] = TextMlpWidth,
            ["activation"] = Activation.ToConfigName(),
        };
        // Keys of the other families only where they differ from OpenAI's layout, so OpenAI configs keep their JSON.
        if (TimmModelName is not null) o["timm_model_name"] = TimmModelName;
        if (VisionTimmFamily != "vit") { o["vision_timm_family"] = VisionTimmFamily; o["vision_rope_reference_grid"] = VisionRopeReferenceGrid; }
        if (!VisionClassToken) o["vision_class_token"] = false;
        if (VisionPool != "token") o["vision_pool"] = VisionPool;
        if (VisionPreNorm) o["vision_pre_norm"] = true;
        if (!VisionLnPre) o["vision_ln_pre"] = false;
        if (VisionFinalLnAfterPool) o["vision_final_ln_after_pool"] = true;
        if (VisionLayerNormEps != 1e-5) o["vision_ln_eps"] = VisionLayerNormEps;
        if (VisionActivation is { } va) o["vision_activation"] = va.ToConfigName();
        if (!TextCausalMask) o["text_causal_mask"] = false;
        if (TextPool != "argmax") o["text_pool"] = TextPool;
        if (TextProjectionBias) o["text_proj_bias"] = true;
        if (TextLayerNormEps != 1e-5) o["text_ln_eps"] = TextLayerNormEps;
        if (TextActivation is { } ta) o["text_activation"] = ta.ToConfigName();
        if (HasLogitBias) o["logit_bias"] = true;
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads what <see cref="ToJson"/> writes.</summary>
    /// <exception cref="InvalidDataException">The JSON lacks a key or has a bad value.</exception>
    public static ClipConfig FromJson(string json)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException("CLIP config JSON is empty."); }
        catch (JsonException e) { throw new InvalidDataException($"CLIP config is not valid JSON: {e.Message}", e); }
        int Int(string key) => o[key]?.GetValue<int>() ?? throw new InvalidDataException($"CLIP config lacks '{key}'.");
        var arch = (string?)o["vision_architecture"] == "resnet" ? VisionArchitecture.ModifiedResNet : VisionArchitecture.VisionTransformer;
        var layersNode = o["vision_layers"] ?? throw new InvalidDataException("CLIP config lacks 'vision_layers'.");
        var layers = layersNode is JsonArray a ? a.Select(n => n!.GetValue<int>()).ToArray() : new[] { layersNode.GetValue<int>() };
        var actName = (string?)o["activation"] ?? "quick_gelu";
        var config = new ClipConfig
        {
            EmbedDim = Int("embed_dim"),
            ImageResolution = Int("image_resolution"),
            VisionArchitecture = arch,
            VisionLayers = layers,
            VisionWidth = Int("vision_width"),
            VisionPatchSize = o["vision_patch_size"]?.GetValue<int>(),
            VisionHeads = Int("vision_heads"),
            VisionMlpWidth = o["vision_mlp_width"]?.GetValue<int>() ?? 0,
            ContextLength = Int("context_length"),
            VocabSize = Int("vocab_size"),
            TextWidth = Int("transformer_width"),
            TextHeads = Int("transformer_heads"),
            TextLayers = Int("transformer_layers"),
            TextMlpWidth = Int("transformer_mlp_width"),
            Activation = ClipActivationNames.TryParse(actName) ?? throw new InvalidDataException($"CLIP config: unknown activation '{actName}' (expected quick_gelu, gelu or gelu_tanh)."),
            TimmModelName = (string?)o["timm_model_name"],
            VisionTimmFamily = (string?)o["vision_timm_family"] ?? "vit",
            VisionRopeReferenceGrid = o["vision_rope_reference_grid"]?.GetValue<int>() ?? 16,
            VisionClassToken = o["vision_class_token"]?.GetValue<bool>() ?? true,
            VisionPool = (string?)o["vision_pool"] ?? "token",
            VisionPreNorm = o["vision_pre_norm"]?.GetValue<bool>() ?? false,
            VisionLnPre = o["vision_ln_pre"]?.GetValue<bool>() ?? true,
            VisionFinalLnAfterPool = o["vision_final_ln_after_pool"]?.GetValue<bool>() ?? false,
            VisionLayerNormEps = o["vision_ln_eps"]?.GetValue<double>() ?? 1e-5,
            VisionActivation = Act("vision_activation"),
            TextCausalMask = o["text_causal_mask"]?.GetValue<bool>() ?? true,
            TextPool = (string?)o["text_pool"] ?? "argmax",
            TextProjectionBias = o["text_proj_bias"]?.GetValue<bool>() ?? false,
            TextLayerNormEps = o["text_ln_eps"]?.GetValue<double>() ?? 1e-5,
            TextActivation = Act("text_activation"),
            HasLogitBias = o["logit_bias"]?.GetValue<bool>() ?? false,
        };
        return config;

        ClipActivation? Act(string key) => (string?)o[key] is { } name
            ? ClipActivationNames.TryParse(name) ?? throw new InvalidDataException($"CLIP config: unknown {key} '{name}'.")
            : null;
    }

    /// <inheritdoc />
    public bool Equals(ClipConfig? other) => other is not null && ToJson() == other.ToJson();

    /// <inheritdoc />
    public override int GetHashCode() => ToJson().GetHashCode(StringComparison.Ordinal);
}
