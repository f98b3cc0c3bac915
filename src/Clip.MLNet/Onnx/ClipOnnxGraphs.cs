using Clip.MLNet.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Onnx;

/// <summary>
/// The ONNX graphs of the project's towers, op for op what the TorchSharp modules compute, with the weights read
/// from the modules' state dict (keys as in PyTorch: <c>visual.*</c>, <c>text.*</c>). Inputs and outputs are
/// float32 (token ids int64); with a float16 compute type a Cast sits at each edge.
/// </summary>
internal static class ClipOnnxGraphs
{
    public const string PixelValues = "pixel_values";
    public const string ImageFeatures = "image_features";
    public const string TextTokens = "text_tokens";
    public const string TextFeatures = "text_features";
    public const string BatchAxis = "batch";
    public const string SequenceAxis = "sequence";

    /// <summary>The image tower's graph: <c>pixel_values</c> [batch, 3, S, S] → <c>image_features</c> [batch, D].</summary>
    /// <exception cref="ClipOnnxExportException">The tower is of a kind with no export yet.</exception>
    public static OnnxGraph ImageEncoder(ImageEncoder visual, ClipConfig config, IReadOnlyDictionary<string, Tensor> weights, OnnxDataType computeType)
    {
        if (visual is not (VisionTransformer or ModifiedResNet))
            throw new ClipOnnxExportException($"the image tower '{visual.GetType().Name}' has no ONNX export yet (exported: VisionTransformer, ModifiedResNet)");
        RefuseUnexported("image tower", [
            (config.TimmModelName is not null, $"timm model {config.TimmModelName}"),
            (!config.VisionLnPre, "no ln_pre (CLIPA)"),
            (config.VisionPool != "token", $"{config.VisionPool} pooling"),
            (config.VisionFinalLnAfterPool, "final LayerNorm after pooling"),
            (config.VisionLayerNormEps != 1e-5, $"LayerNorm eps {config.VisionLayerNormEps}"),
            (config.VisionActivation is { } va && va != config.Activation, $"activation {config.VisionActivation}"),
        ]);
        var g = new OnnxGraphBuilder("clip_image_encoder", computeType);
        int s = visual.InputResolution;
        var x = g.Input(PixelValues, OnnxDataType.Float, BatchAxis, 3L, (long)s, (long)s);
        if (computeType == OnnxDataType.Float16) x = g.Cast(x, OnnxDataType.Float16);
        var features = visual is VisionTransformer
            ? VisionTransformerGraph(g, x, config, weights)
            : ModifiedResNetGraph(g, x, config, weights);
        if (computeType == OnnxDataType.Float16) features = g.Cast(features, OnnxDataType.Float);
        g.Output(features, ImageFeatures, OnnxDataType.Float, BatchAxis, (long)config.EmbedDim);
        return g.Graph;
    }

    /// <summary>The text tower's graph: <c>text_tokens</c> [batch, sequence] (int64, sequence ≤ context length) → <c>text_features</c> [batch, D].</summary>
    public static OnnxGraph TextEncoder(TextTransformer text, ClipConfig config, IReadOnlyDictionary<string, Tensor> weights, OnnxDataType computeType)
    {
        RefuseUnexported("text tower", [
            (!config.TextCausalMask, "no causal mask"),
            (config.TextPool != "argmax", $"{config.TextPool} pooling"),
            (config.TextProjectionBias, "a projection bias"),
            (config.TextLayerNormEps != 1e-5, $"LayerNorm eps {config.TextLayerNormEps}"),
            (config.TextActivation is { } ta && ta != config.Activation, $"activation {config.TextActivation}"),
        ]);
        var g = new OnnxGraphBuilder("clip_text_encoder", computeType);
        var ids = g.Input(TextTokens, OnnxDataType.Int64, BatchAxis, SequenceAxis);
        long width = config.TextWidth;
        int context = text.ContextLength;

        // Token and positional embeddings, the positions cut to the input's length.
        var length = g.Node("Shape", ids, OnnxAttribute.Int("start", 1), OnnxAttribute.Int("end", 2));                 // [1] = L
        var h = g.Node("Gather", [g.Weight("text.token_embedding.weight", weights["text.token_embedding.weight"]), ids], OnnxAttribute.Int("axis", 0));
        var positions = g.Node("Slice", [g.Weight("text.positional_embedding", weights["text.positional_embedding"]), g.Int64s([0]), length, g.Int64s([0])]);
        h = g.Add(h, positions);

        // The causal mask, -inf above the diagonal, cut to [L, L].
        using (var mask = torch.full(context, context, float.NegativeInfinity).triu_(1))
        {
            var maskName = g.Weight("text.causal_mask", mask);
            var lengths = g.Node("Concat", [length, length], OnnxAttribute.Int("axis", 0));
            maskName = g.Node("Slice", [maskName, g.Int64s([0, 0]), lengths, g.Int64s([0, 1])]);
            h = TransformerGraph(g, h, "text.transformer", config.TextLayers, config.TextHeads, width, config.Activation, weights, maskName);
        }

        // Pooling at the end-of-text token, the largest id of each row (ArgMax has no int64 kernel everywhere: int32).
        var eot = g.Node("ArgMax", g.Cast(ids, OnnxDataType.Int32), OnnxAttribute.Int("axis", 1), OnnxAttribute.Int("keepdims", 0));   // [batch]
        var index = g.Node("Unsqueeze", [eot, g.Int64s([1])]);                                                                        // [batch, 1]
        var pooled = g.Node("GatherND", [h, index], OnnxAttribute.Int("batch_dims", 1));                                              // [batch, W]
        // ln_final normalises each position on its own, so it commutes with the pooling.
        pooled = g.LayerNorm(pooled, "text.ln_final", weights);
        var features = g.MatMul(pooled, g.Weight("text.text_projection", weights["text.text_projection"]));
        if (computeType == OnnxDataType.Float16) features = g.Cast(features, OnnxDataType.Float);
        g.Output(features, TextFeatures, OnnxDataType.Float, BatchAxis, (long)config.EmbedDim);
        return g.Graph;
    }

    /// <summary>The tower variants of the model families that the graphs above do not compute yet: refused, naming the part and the variant.</summary>
    private static void RefuseUnexported(string part, (bool Present, string What)[] variants)
    {
        var present = variants.Where(v => v.Present).Select(v => v.What).ToList();
        if (present.Count > 0)
            throw new ClipOnnxExportException($"the {part} with {string.Join(", ", present)} has no ONNX export yet (exported: OpenAI's ViT, ModifiedResNet and text towers)");
    }

    private static string VisionTransformerGraph(OnnxGraphBuilder g, string x, ClipConfig config, IReadOnlyDictionary<string, Tensor> weights)
    {
        long width = config.VisionWidth;
        long patch = config.VisionPatchSize!.Value;
        var h = g.Node("Conv", [x, g.Weight("visual.conv1.weight", weights["visual.conv1.weight"])],
            OnnxAttribute.Ints("kernel_shape", patch, patch), OnnxAttribute.Ints("strides", patch, patch));                // [N, W, g, g]
        h = g.Transpose(g.Reshape(h, 0, width, -1), 0, 2, 1);                                                                // [N, g², W]

        // The class token, one per image: [1, 1, W] expanded to [N, 1, W].
        var batch = g.Node("Shape", x, OnnxAttribute.Int("start", 0), OnnxAttribute.Int("end", 1));
        var cls = g.Reshape(g.Weight("visual.class_embedding", weights["visual.class_embedding"]), 1, 1, width);
        cls = g.Node("Expand", [cls, g.Node("Concat", [batch, g.Int64s([1, 1])], OnnxAttribute.Int("axis", 0))]);
        h = g.Node("Concat", [cls, h], OnnxAttribute.Int("axis", 1));
        h = g.Add(h, g.Weight("visual.positional_embedding", weights["visual.positional_embedding"]));
        h = g.LayerNorm(h, "visual.ln_pre", weights);
        h = TransformerGraph(g, h, "visual.transformer", config.VisionLayers[0], config.VisionHeads, width, config.Activation, weights, mask: null);

        var pooled = g.Node("Gather", [h, g.Int64s([0], scalar: true)], OnnxAttribute.Int("axis", 1));                    // [N, W]
        pooled = g.LayerNorm(pooled, "visual.ln_post", weights);
        return g.MatMul(pooled, g.Weight("visual.proj", weights["visual.proj"]));
    }

    private static string TransformerGraph(OnnxGraphBuilder g, string x, string prefix, int layers, int heads, long width, ClipActivation activation,
        IReadOnlyDictionary<string, Tensor> weights, string? mask)
    {
        for (int i = 0; i < layers; i++)
        {
            var p = $"{prefix}.resblocks.{i}";
            x = g.Add(x, SelfAttention(g, g.LayerNorm(x, p + ".ln_1", weights), p + ".attn", heads, width, weights, mask));
            x = g.Add(x, MlpGraph(g, g.LayerNorm(x, p + ".ln_2", weights), p + ".mlp", activation, weights));
        }
        return x;
    }

    /// <summary>
    /// Multi-head self-attention with the packed projection of <c>torch.nn.MultiheadAttention</c>: one product for
    /// q, k and v, the 1/√d scaling folded into the query's weights, softmax(q·kᵀ + mask)·v, then <c>out_proj</c>.
    /// </summary>
    private static string SelfAttention(OnnxGraphBuilder g, string x, string prefix, int heads, long width, IReadOnlyDictionary<string, Tensor> weights, string? mask)
    {
        long hd = width / heads;
        string w, b;
        using (var scope = NewDisposeScope())
        {
            var scale = torch.ones(3 * width, dtype: ScalarType.Float64);
            scale[TensorIndex.Slice(0, width)] = torch.tensor(1.0 / Math.Sqrt(hd), ScalarType.Float64);
            var weight = weights[prefix + ".in_proj_weight"].to(ScalarType.Float64) * scale.unsqueeze(1);   // [3W, W]
            var bias = weights[prefix + ".in_proj_bias"].to(ScalarType.Float64) * scale;
            w = g.Weight(prefix + ".in_proj_weight", weight.t());
            b = g.Weight(prefix + ".in_proj_bias", bias);
        }
        var qkv = g.Transpose(g.Reshape(g.Linear(x, w, b), 0, 0, 3, heads, hd), 2, 0, 3, 1, 4);                       // [3, N, H, L, hd]
        var q = g.Node("Gather", [qkv, g.Int64s([0], scalar: true)], OnnxAttribute.Int("axis", 0));
        var k = g.Node("Gather", [qkv, g.Int64s([1], scalar: true)], OnnxAttribute.Int("axis", 0));
        var v = g.Node("Gather", [qkv, g.Int64s([2], scalar: true)], OnnxAttribute.Int("axis", 0));
        var scores = g.MatMul(q, g.Transpose(k, 0, 1, 3, 2));                                                           // [N, H, L, L]
        if (mask is not null) scores = g.Add(scores, mask);
        var attention = g.Node("Softmax", scores, OnnxAttribute.Int("axis", -1));
        var o = g.Reshape(g.Transpose(g.MatMul(attention, v), 0, 2, 1, 3), 0, 0, width);                                 // [N, L, W]
        return g.Linear(o, g.Weight(prefix + ".out_proj.weight", weights[prefix + ".out_proj.weight"].t()),
            g.Weight(prefix + ".out_proj.bias", weights[prefix + ".out_proj.bias"]));
    }

    private static string MlpGraph(OnnxGraphBuilder g, string x, string prefix, ClipActivation activation, IReadOnlyDictionary<string, Tensor> weights)
    {
        var h = g.Linear(x, g.Weight(prefix + ".c_fc.weight", weights[prefix + ".c_fc.weight"].t()), g.Weight(prefix + ".c_fc.bias", weights[prefix + ".c_fc.bias"]));
        h = Activation(g, h, activation);
        return g.Linear(h, g.Weight(prefix + ".c_proj.weight", weights[prefix + ".c_proj.weight"].t()), g.Weight(prefix + ".c_proj.bias", weights[prefix + ".c_proj.bias"]));
    }

    /// <summary>QuickGELU as x·sigmoid(1.702x); GELU as x·(1 + erf(x/√2))/2 (the shapes ONNX Runtime fuses).</summary>
    private static string Activation(OnnxGraphBuilder g, string x, ClipActivation activation) => activation switch
    {
        ClipActivation.QuickGelu => g.Mul(x, g.Node("Sigmoid", g.Mul(x, g.Scalar((float)QuickGelu.Factor)))),
        ClipActivation.Gelu => g.Mul(g.Mul(x, g.Add(g.Node("Erf", g.Node("Div", [x, g.Scalar(MathF.Sqrt(2))])), g.Scalar(1))), g.Scalar(0.5f)),
        _ => throw new ClipOnnxExportException($"the activation '{activation}' has no ONNX export yet"),
    };

    private static string ModifiedResNetGraph(OnnxGraphBuilder g, string x, ClipConfig config, IReadOnlyDictionary<string, Tensor> weights)
    {
        var h = g.Node("Relu", ConvBn(g, x, "visual.conv1", "visual.bn1", 3, 2, 1, weights));
        h = g.Node("Relu", ConvBn(g, h, "visual.conv2", "visual.bn2", 3, 1, 1, weights));
        h = g.Node("Relu", ConvBn(g, h, "visual.conv3", "visual.bn3", 3, 1, 1, weights));
        h = AveragePool(g, h, 2);
        for (int stage = 1; stage <= 4; stage++)
        {
            for (int block = 0; block < config.VisionLayers[stage - 1]; block++)
            {
                long stride = stage > 1 && block == 0 ? 2 : 1;
                h = BottleneckGraph(g, h, $"visual.layer{stage}.{block}", stride, weights);
            }
        }
        return AttentionPoolGraph(g, h, config.VisionHeads, weights);
    }

    private static string BottleneckGraph(OnnxGraphBuilder g, string x, string p, long stride, IReadOnlyDictionary<string, Tensor> weights)
    {
        var h = g.Node("Relu", ConvBn(g, x, p + ".conv1", p + ".bn1", 1, 1, 0, weights));
        h = g.Node("Relu", ConvBn(g, h, p + ".conv2", p + ".bn2", 3, 1, 1, weights));
        if (stride > 1) h = AveragePool(g, h, stride);
        h = ConvBn(g, h, p + ".conv3", p + ".bn3", 1, 1, 0, weights);
        var identity = x;
        if (weights.ContainsKey(p + ".downsample.0.weight"))
        {
            if (stride > 1) identity = AveragePool(g, identity, stride);
            identity = ConvBn(g, identity, p + ".downsample.0", p + ".downsample.1", 1, 1, 0, weights);
        }
        return g.Node("Relu", g.Add(h, identity));
    }

    private static string AveragePool(OnnxGraphBuilder g, string x, long k) =>
        g.Node("AveragePool", x, OnnxAttribute.Ints("kernel_shape", k, k), OnnxAttribute.Ints("strides", k, k));

    /// <summary>A bias-free convolution followed by an inference-mode BatchNorm, folded into one convolution with a bias (in float64).</summary>
    private static string ConvBn(OnnxGraphBuilder g, string x, string conv, string bn, long kernel, long stride, long pad, IReadOnlyDictionary<string, Tensor> weights,
        double eps = 1e-5)
    {
        string w, b;
        using (var scope = NewDisposeScope())
        {
            var gamma = weights[bn + ".weight"].to(ScalarType.Float64);
            var beta = weights[bn + ".bias"].to(ScalarType.Float64);
            var mean = weights[bn + ".running_mean"].to(ScalarType.Float64);
            var variance = weights[bn + ".running_var"].to(ScalarType.Float64);
            var factor = gamma / (variance + eps).sqrt();
            var folded = weights[conv + ".weight"].to(ScalarType.Float64) * factor.view(-1, 1, 1, 1);
            w = g.Weight(conv + ".weight", folded);
            b = g.Weight(conv + ".bias", beta - mean * factor);
        }
        return g.Node("Conv", [x, w, b], OnnxAttribute.Ints("kernel_shape", kernel, kernel), OnnxAttribute.Ints("strides", stride, stride),
            OnnxAttribute.Ints("pads", pad, pad, pad, pad));
    }

    /// <summary>
    /// <see cref="AttentionPool2d"/>: the spatial mean prepended as a query token, the positional embedding added,
    /// one multi-head attention step from that token, <c>c_proj</c>.
    /// </summary>
    private static string AttentionPoolGraph(OnnxGraphBuilder g, string x, int heads, IReadOnlyDictionary<string, Tensor> weights)
    {
        const string p = "visual.attnpool";
        long c = weights[p + ".k_proj.weight"].shape[1];
        long hd = c / heads;
        var tokens = g.Transpose(g.Reshape(x, 0, c, -1), 0, 2, 1);                                                      // [N, HW, C]
        var mean = g.Reshape(g.Node("GlobalAveragePool", x), 0, 1, c);                                                   // [N, 1, C]
        tokens = g.Node("Concat", [mean, tokens], OnnxAttribute.Int("axis", 1));
        tokens = g.Add(tokens, g.Weight(p + ".positional_embedding", weights[p + ".positional_embedding"]));             // [N, HW+1, C]
        var first = g.Node("Slice", [tokens, g.Int64s([0]), g.Int64s([1]), g.Int64s([1])]);                             // [N, 1, C]

        string Projection(string input, string name, double scale)
        {
            using var scope = NewDisposeScope();
            var w = g.Weight($"{p}.{name}.weight", (weights[$"{p}.{name}.weight"].to(ScalarType.Float64) * scale).t());
            var b = g.Weight($"{p}.{name}.bias", weights[$"{p}.{name}.bias"].to(ScalarType.Float64) * scale);
            return g.Linear(input, w, b);
        }

        var q = g.Transpose(g.Reshape(Projection(first, "q_proj", 1.0 / Math.Sqrt(hd)), 0, 1, heads, hd), 0, 2, 1, 3); // [N, H, 1, hd]
        var k = g.Transpose(g.Reshape(Projection(tokens, "k_proj", 1), 0, -1, heads, hd), 0, 2, 3, 1);                 // [N, H, hd, T]
        var v = g.Transpose(g.Reshape(Projection(tokens, "v_proj", 1), 0, -1, heads, hd), 0, 2, 1, 3);                 // [N, H, T, hd]
        var attention = g.Node("Softmax", g.MatMul(q, k), OnnxAttribute.Int("axis", -1));
        var o = g.Reshape(g.Transpose(g.MatMul(attention, v), 0, 2, 1, 3), 0, c);                                        // [N, C]
        return Projection(o, "c_proj", 1);
    }
}
