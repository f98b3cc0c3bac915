using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TorchSharp;

namespace Clip.MLNet.Weights;

/// <summary>
/// The Hugging Face transformers layout of CLIP (<c>CLIPModel</c>): separate q/k/v projections,
/// projections stored transposed, other names. Maps it onto this library's layout.
/// </summary>
internal static partial class HuggingFaceLayout
{
    public static bool Matches(IEnumerable<string> keys) =>
        keys.Any(k => k.StartsWith("text_model.", StringComparison.Ordinal) || k.StartsWith("vision_model.", StringComparison.Ordinal));

    public static void ReadConfig(string path, WeightSource source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (Exception e) { throw new ClipCheckpointException(path, $"not valid JSON: {e.Message}", e); }
        var text = root?["text_config"];
        var vision = root?["vision_config"];
        ClipActivation? Act(JsonNode? cfg, string tower)
        {
            // transformers' CLIP configs default to quick_gelu when hidden_act is absent.
            var name = (string?)cfg?["hidden_act"] ?? "quick_gelu";
            return ClipActivationNames.TryParse(name)
                ?? throw new ClipCheckpointException(path, $"unknown hidden_act '{name}' in {tower}_config (supported: quick_gelu, gelu)");
        }
        var textAct = Act(text, "text");
        var visionAct = Act(vision, "vision");
        if (textAct != visionAct)
            throw new ClipCheckpointException(path, $"the text tower uses {textAct?.ToConfigName()} and the vision tower {visionAct?.ToConfigName()}; both towers must use the same activation");
        source.Activation = textAct;
        if (text?["num_attention_heads"] is JsonNode th) source.TextHeads = th.GetValue<int>();
        if (vision?["num_attention_heads"] is JsonNode vh) source.VisionHeads = vh.GetValue<int>();
    }

    [GeneratedRegex(@"^(text_model|vision_model)\.encoder\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerKey();

    /// <summary>Returns a new tensor dictionary in this library's layout; unknown keys keep their names.</summary>
    public static Dictionary<string, WeightTensor> ToClipLayout(Dictionary<string, WeightTensor> hf)
    {
        var result = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
        var qkv = new Dictionary<string, WeightTensor?[]>(StringComparer.Ordinal);
        foreach (var (key, tensor) in hf)
        {
            var m = LayerKey().Match(key);
            if (m.Success)
            {
                var tower = m.Groups[1].Value == "text_model" ? "text" : "visual";
                var prefix = $"{tower}.transformer.resblocks.{m.Groups[2].Value}.";
                var rest = m.Groups[3].Value;
                var proj = Regex.Match(rest, @"^self_attn\.([qkv])_proj\.(weight|bias)$");
                if (proj.Success)
                {
                    var target = $"{prefix}attn.in_proj_{proj.Groups[2].Value}";
                    if (!qkv.TryGetValue(target, out var parts)) qkv[target] = parts = new WeightTensor?[3];
                    parts["qkv".IndexOf(proj.Groups[1].Value[0])] = tensor;
                    continue;
                }
                string? mapped = rest switch
                {
                    _ when rest.StartsWith("self_attn.out_proj.", StringComparison.Ordinal) => "attn.out_proj." + rest["self_attn.out_proj.".Length..],
                    _ when rest.StartsWith("layer_norm1.", StringComparison.Ordinal) => "ln_1." + rest["layer_norm1.".Length..],
                    _ when rest.StartsWith("layer_norm2.", StringComparison.Ordinal) => "ln_2." + rest["layer_norm2.".Length..],
                    _ when rest.StartsWith("mlp.fc1.", StringComparison.Ordinal) => "mlp.c_fc." + rest["mlp.fc1.".Length..],
                    _ when rest.StartsWith("mlp.fc2.", StringComparison.Ordinal) => "mlp.c_proj." + rest["mlp.fc2.".Length..],
                    _ => null,
                };
                result[mapped is null ? key : prefix + mapped] = tensor;
                continue;
            }
            switch (key)
            {
                case "text_model.embeddings.token_embedding.weight": result["text.token_embedding.weight"] = tensor; break;
                case "text_model.embeddings.position_embedding.weight": result["text.positional_embedding"] = tensor; break;
                case "text_model.final_layer_norm.weight": result["text.ln_final.weight"] = tensor; break;
                case "text_model.final_layer_norm.bias": result["text.ln_final.bias"] = tensor; break;
                case "vision_model.embeddings.class_embedding": result["visual.class_embedding"] = tensor; break;
                case "vision_model.embeddings.patch_embedding.weight": result["visual.conv1.weight"] = tensor; break;
                case "vision_model.embeddings.position_embedding.weight": result["visual.positional_embedding"] = tensor; break;
                case "vision_model.pre_layrnorm.weight": result["visual.ln_pre.weight"] = tensor; break;
                case "vision_model.pre_layrnorm.bias": result["visual.ln_pre.bias"] = tensor; break;
                case "vision_model.post_layernorm.weight": result["visual.ln_post.weight"] = tensor; break;
                case "vision_model.post_layernorm.bias": result["visual.ln_post.bias"] = tensor; break;
                case "visual_projection.weight": result["visual.proj"] = Transposed(tensor); break;
                case "text_projection.weight": result["text.text_projection"] = Transposed(tensor); break;
                default: result[key] = tensor; break;
            }
        }
        foreach (var (target, parts) in qkv)
        {
            if (parts.Any(p => p is null))
            {
                // Incomplete q/k/v: keep what exists under its own name so the error lists it.
                for (int i = 0; i < 3; i++)
                    if (parts[i] is { } p) result[$"{target}.{"qkv"[i]}"] = p;
                continue;
            }
            var ps = parts!;
            var shape = (long[])ps[0]!.Shape.Clone();
            shape[0] = ps.Sum(p => p!.Shape[0]);
            result[target] = new WeightTensor(shape, ps[0]!.DType, () =>
            {
                var read = ps.Select(p => p!.Read()).ToArray();
                try { return torch.cat(read, 0); }
                finally { foreach (var t in read) t.Dispose(); }
            });
        }
        return result;
    }

    private static WeightTensor Transposed(WeightTensor t) =>
        t.Shape.Length != 2 ? t : new WeightTensor(new[] { t.Shape[1], t.Shape[0] }, t.DType, () =>
        {
            using var x = t.Read();
            return x.t().contiguous();
        });
}
