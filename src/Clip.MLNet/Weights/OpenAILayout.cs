namespace Clip.MLNet.Weights;

/// <summary>
/// The key layout of OpenAI's checkpoints and open_clip's <c>CLIP</c> class: the image tower under
/// <c>visual.</c>, the text tower's parts at the top level. This library keeps the text tower under
/// <c>text.</c> (as open_clip's <c>CustomTextCLIP</c> does), so only those keys are renamed.
/// </summary>
internal static class OpenAILayout
{
    /// <summary>Scalars that published checkpoints carry beside the weights; the model infers them.</summary>
    public static readonly IReadOnlySet<string> CheckpointScalars = new HashSet<string>(StringComparer.Ordinal) { "input_resolution", "context_length", "vocab_size" };

    public static string ToClipKey(string key) =>
        CheckpointScalars.Contains(key) || key == "logit_scale" || key == "logit_bias"
        || key.StartsWith("visual.", StringComparison.Ordinal) || key.StartsWith("text.", StringComparison.Ordinal)
            ? key
            : "text." + key;

    public static string FromClipKey(string key) =>
        key.StartsWith("text.", StringComparison.Ordinal) ? key["text.".Length..] : key;

    /// <summary>Keys that real checkpoints carry and the model does not need: ignored on load.</summary>
    public static bool IsHarmlessExtra(string key)
    {
        var last = key[(key.LastIndexOf('.') + 1)..];
        return CheckpointScalars.Contains(key) || last == "position_ids" || last == "attn_mask";
    }
}
