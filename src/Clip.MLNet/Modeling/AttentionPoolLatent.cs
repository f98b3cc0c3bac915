using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// timm's multi-head attention pooling (<c>timm.layers.AttentionPoolLatent</c>, <c>global_pool='map'</c>):
/// a learned <c>latent</c> query attends over the tokens (<c>q</c> from the latent, <c>kv</c> from the tokens),
/// <c>proj</c>, then <c>x + mlp(norm(x))</c>; the first latent is the pooled feature.
/// </summary>
internal sealed class AttentionPoolLatent : nn.Module<Tensor, Tensor>
{
    private readonly Parameter latent;
    private readonly Linear q;
    private readonly Linear kv;
    private readonly Linear proj;
    private readonly ClipLayerNorm norm;
    private readonly TimmMlp mlp;
    private readonly long heads;

    public AttentionPoolLatent(long width, long heads, long mlpWidth, ClipActivation activation, double eps, Device? device = null)
        : base(nameof(AttentionPoolLatent))
    {
        if (heads <= 0 || width % heads != 0)
            throw new ArgumentException($"Attention-pool width {width} is not divisible into {heads} heads.");
        this.heads = heads;
        latent = new Parameter(torch.randn(1, 1, width, device: device) * Math.Pow(width, -0.5));
        q = nn.Linear(width, width, hasBias: true, device: device);
        kv = nn.Linear(width, 2 * width, hasBias: true, device: device);
        proj = nn.Linear(width, width, hasBias: true, device: device);
        norm = new ClipLayerNorm(width, eps, device: device);
        mlp = new TimmMlp(width, mlpWidth, activation, device);
        RegisterComponents();
    }

    /// <summary>Tokens <c>[B, N, C]</c> to pooled features <c>[B, C]</c>.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2], hd = c / heads;
        long latents = latent.shape[1];
        var query = q.forward(latent.to(x.dtype).expand(b, -1, -1)).view(b, latents, heads, hd).transpose(1, 2);
        var keysValues = kv.forward(x).view(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4);
        var o = AttentionKernel.Run(query, keysValues[0], keysValues[1]);
        var h = proj.forward(o.transpose(1, 2).reshape(b, latents, c));
        h = h + mlp.forward(norm.forward(h));
        return scope.MoveToOuter(h[TensorIndex.Colon, 0]);
    }
}
