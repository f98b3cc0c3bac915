using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>Options of <see cref="ClipModel.Load(string, ClipLoadOptions?)"/>.</summary>
public sealed class ClipLoadOptions
{
    /// <summary>
    /// The MLP activation, which weights do not record. When null: a Hugging Face <c>config.json</c>'s
    /// <c>hidden_act</c>, an open_clip config's <c>quick_gelu</c>, this library's own saved config, and
    /// otherwise QuickGELU (OpenAI's models). Set <see cref="ClipActivation.Gelu"/> for most LAION models.
    /// </summary>
    public ClipActivation? Activation { get; set; }

    /// <summary>The device to place the weights on (CPU when null).</summary>
    public Device? Device { get; set; }

    /// <summary>The dtype the model computes in: Float32 (default), BFloat16 or Float16. Stored weights of any float dtype convert to it.</summary>
    public ScalarType Precision { get; set; } = ScalarType.Float32;
}
