using TorchSharp;
using static TorchSharp.torch;

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

/// <summary>OpenAI's activation: <c>x * sigmoid(1.702 x)</c>.</summary>
internal sealed class QuickGelu : nn.Module<Tensor, Tensor>
{
    /// <summary>The slope inside the sigmoid.</summary>
    public const double Factor = 1.702;

    public QuickGelu() : base(nameof(QuickGelu)) { }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(x * torch.sigmoid(x * Factor));
    }
}

/// <summary>Exact GELU (erf form), as <c>torch.nn.GELU()</c> with its default.</summary>
internal sealed class ExactGelu : nn.Module<Tensor, Tensor>
{
    public ExactGelu() : base(nameof(ExactGelu)) { }

    public override Tensor forward(Tensor x) => nn.functional.gelu(x);
}
