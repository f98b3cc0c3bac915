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

/// <summary>
/// GELU with the tanh approximation, as <c>torch.nn.GELU(approximate='tanh')</c>:
/// <c>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))</c>.
/// </summary>
internal sealed class TanhGelu : nn.Module<Tensor, Tensor>
{
    private static readonly double Beta = Math.Sqrt(2.0 / Math.PI);

    public TanhGelu() : base(nameof(TanhGelu)) { }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = (x * x).mul_(0.044715).add_(1.0).mul_(x).mul_(Beta);
        return scope.MoveToOuter(inner.tanh_().add_(1.0).mul_(x).mul_(0.5));
    }
}
