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
