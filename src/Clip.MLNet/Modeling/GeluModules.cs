using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Modeling;

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
