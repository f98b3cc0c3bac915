using TorchSharp;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>Pre-LayerNorm residual block: <c>x + attn(ln_1(x))</c>, then <c>x + mlp(ln_2(x))</c>.</summary>
internal sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly MultiheadSelfAttention attn;
    private readonly ClipLayerNorm ln_1;
    private readonly Mlp mlp;
    private readonly ClipLayerNorm ln_2;

    public ResidualAttentionBlock(long width, long heads, long mlpWidth, ClipActivation activation, bool causal, Device? device = null, double eps = 1e-5)
        : base(nameof(ResidualAttentionBlock))
    {
        attn = new MultiheadSelfAttention(width, heads, causal, device);
        ln_1 = new ClipLayerNorm(width, eps, device: device);
        mlp = new Mlp(width, mlpWidth, activation, device);
        ln_2 = new ClipLayerNorm(width, eps, device: device);
        RegisterComponents();
    }

    internal void Initialize(double attentionStd, double projectionStd, double fcStd)
    {
        attn.Initialize(attentionStd, projectionStd);
        mlp.Initialize(fcStd, projectionStd);
    }

    public override Tensor forward(Tensor x)
    {
        // One scope per block: intermediates die here, not at the end of the whole tower.
        using var scope = NewDisposeScope();
        if (torch.is_grad_enabled())
        {
            var h = x + attn.forward(ln_1.forward(x));
            return scope.MoveToOuter(h + mlp.forward(ln_2.forward(h)));
        }
        // Inference: the residual sums go into the branch outputs, which are fresh tensors of this block.
        var h1 = attn.forward(ln_1.forward(x)).add_(x);
        return scope.MoveToOuter(mlp.forward(ln_2.forward(h1)).add_(h1));
    }
}
