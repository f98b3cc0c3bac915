using static TorchSharp.torch;

using Clip.MLNet.Modeling;

namespace Clip.MLNet;

/// <summary>The activation inside the transformer MLPs. It cannot be read from the weights.</summary>
public enum ClipActivation
{
    /// <summary><c>x * sigmoid(1.702 x)</c>, used by all of OpenAI's CLIP models.</summary>
    QuickGelu,
    /// <summary>Exact (erf) GELU, used by most open_clip / LAION models.</summary>
    Gelu,
    /// <summary>
    /// GELU with the tanh approximation (<c>torch.nn.GELU(approximate='tanh')</c>, timm's <c>gelu_tanh</c>),
    /// used by SigLIP2's text towers and its SO400M/16 and g/16 image towers.
    /// </summary>
    GeluTanh,
}

/// <summary>Parsing and naming of <see cref="ClipActivation"/> the way checkpoints and the CLI spell it.</summary>
public static class ClipActivationNames
{
    /// <summary>The spelling of Hugging Face configs and of the CLI: <c>quick_gelu</c> or <c>gelu</c>.</summary>
    public static string ToConfigName(this ClipActivation activation) => activation switch
    {
        ClipActivation.QuickGelu => "quick_gelu",
        ClipActivation.GeluTanh => "gelu_tanh",
        _ => "gelu",
    };

    /// <summary>Parses <c>quick_gelu</c> / <c>gelu</c> / <c>gelu_tanh</c> (also <c>quickgelu</c>, <c>gelu_pytorch_tanh</c>, any case); null when unknown.</summary>
    public static ClipActivation? TryParse(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "quick_gelu" or "quickgelu" or "quick-gelu" => ClipActivation.QuickGelu,
        "gelu" => ClipActivation.Gelu,
        "gelu_tanh" or "gelu_pytorch_tanh" or "gelu-tanh" => ClipActivation.GeluTanh,
        _ => null,
    };

    internal static nn.Module<Tensor, Tensor> CreateModule(this ClipActivation activation) =>
        activation switch
        {
            ClipActivation.QuickGelu => new QuickGelu(),
            ClipActivation.GeluTanh => new TanhGelu(),
            _ => new ExactGelu(),
        };
}
