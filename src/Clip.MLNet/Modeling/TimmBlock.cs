using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// timm's ViT block (<c>timm.models.vision_transformer.Block</c>) under timm's key names: pre-LayerNorm
/// <c>x + attn(norm1(x))</c>, then <c>x + mlp(norm2(x))</c>, without layer scale.
/// </summary>
internal sealed class TimmBlock : nn.Module<Tensor, Tensor>
{
    private readonly ClipLayerNorm norm1;
    private readonly TimmAttention attn;
    private readonly ClipLayerNorm norm2;
    private readonly TimmMlp mlp;

    public TimmBlock(long width, long heads, long mlpWidth, ClipActivation activation, double eps, Device? device = null)
        : base(nameof(TimmBlock))
    {
        norm1 = new ClipLayerNorm(width, eps, device: device);
        attn = new TimmAttention(width, heads, device);
        norm2 = new ClipLayerNorm(width, eps, device: device);
        mlp = new TimmMlp(width, mlpWidth, activation, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.forward(norm1.forward(x));
        return scope.MoveToOuter(h + mlp.forward(norm2.forward(h)));
    }
}

/// <summary>timm's self-attention: one packed <c>qkv</c> linear layer (with bias) and <c>proj</c>; no causal mask.</summary>
internal sealed class TimmAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly long heads;

    public TimmAttention(long width, long heads, Device? device = null) : base(nameof(TimmAttention))
    {
        if (heads <= 0 || width % heads != 0)
            throw new ArgumentException($"Attention width {width} is not divisible into {heads} heads.");
        this.heads = heads;
        qkv = nn.Linear(width, 3 * width, hasBias: true, device: device);
        proj = nn.Linear(width, width, hasBias: true, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.Attention);
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        var parts = qkv.forward(x).view(b, l, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
        var o = AttentionKernel.Run(parts[0], parts[1], parts[2]);
        return scope.MoveToOuter(proj.forward(o.transpose(1, 2).reshape(b, l, d)));
    }
}

/// <summary>timm's MLP: <c>fc1</c>, activation, <c>fc2</c>.</summary>
internal sealed class TimmMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly nn.Module<Tensor, Tensor> act;
    private readonly Linear fc2;

    public TimmMlp(long width, long hidden, ClipActivation activation, Device? device = null) : base(nameof(TimmMlp))
    {
        fc1 = nn.Linear(width, hidden, hasBias: true, device: device);
        act = activation.CreateModule();
        fc2 = nn.Linear(hidden, width, hasBias: true, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.Mlp);
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(fc2.forward(act.forward(fc1.forward(x))));
    }
}
