using TorchSharp;
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
}

/// <summary>Parsing and naming of <see cref="ClipActivation"/> the way checkpoints and the CLI spell it.</summary>
public static class ClipActivationNames
{
    /// <summary>The spelling of Hugging Face configs and of the CLI: <c>quick_gelu</c> or <c>gelu</c>.</summary>
    public static string ToConfigName(this ClipActivation activation) =>
        activation == ClipActivation.QuickGelu ? "quick_gelu" : "gelu";

    /// <summary>Parses <c>quick_gelu</c> / <c>gelu</c> (also <c>quickgelu</c>, any case); null when unknown.</summary>
    public static ClipActivation? TryParse(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "quick_gelu" or "quickgelu" or "quick-gelu" => ClipActivation.QuickGelu,
        "gelu" => ClipActivation.Gelu,
        _ => null,
    };

    internal static nn.Module<Tensor, Tensor> CreateModule(this ClipActivation activation) =>
        activation == ClipActivation.QuickGelu ? new QuickGelu() : new ExactGelu();
}
