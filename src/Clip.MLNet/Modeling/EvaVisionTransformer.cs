using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// timm's EVA02 image tower (<c>timm.models.eva.Eva</c> as the <c>eva02_*_clip_*</c> models build it) under timm's key
/// names: <c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c>, blocks with separate q/k/v projections (no k bias),
/// rotary position embeddings on the patch tokens, an inner LayerNorm before the attention's output projection and a
/// SwiGLU MLP with its own LayerNorm; then <c>norm</c>, the class token, and timm's <c>head</c> as the projection.
/// </summary>
internal sealed class EvaVisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly TimmPatchEmbed patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly ModuleList<EvaBlock> blocks;
    private readonly ClipLayerNorm norm;
    private readonly Linear head;
    private readonly Tensor rope;   // [patches, 2 * head_dim]: sin then cos, not a parameter

    public EvaVisionTransformer(ClipConfig c, Device? device = null) : base(nameof(EvaVisionTransformer))
    {
        long width = c.VisionWidth;
        int patch = c.VisionPatchSize!.Value;
        int grid = c.ImageResolution / patch;
        double eps = c.VisionLayerNormEps;
        patch_embed = new TimmPatchEmbed(width, patch, device);
        cls_token = new Parameter(torch.zeros(1, 1, width, device: device));
        pos_embed = new Parameter(torch.randn(1, grid * grid + 1, width, device: device) * 0.02);
        blocks = new ModuleList<EvaBlock>();
        for (int i = 0; i < c.VisionLayers[0]; i++)
            blocks.Add(new EvaBlock(width, c.VisionHeads, c.VisionMlpWidth, eps, device));
        norm = new ClipLayerNorm(width, eps, device: device);
        head = nn.Linear(width, c.EmbedDim, hasBias: true, device: device);
        RegisterComponents();
        rope = RotaryEmbedding(grid, c.VisionRopeReferenceGrid, width / c.VisionHeads, device);
    }

    /// <summary>
    /// timm's <c>RotaryEmbeddingCat</c> (<c>in_pixels=False</c>, temperature 10000, 'ij' grid): positions
    /// <c>arange(grid) / grid * reference</c> per axis, <c>head_dim / 4</c> frequencies <c>10000^(-i / (head_dim / 4))</c>,
    /// sin and cos of (row, column) × frequencies, each value repeated twice (the interleaved layout).
    /// </summary>
    internal static Tensor RotaryEmbedding(int grid, int reference, long headDim, Device? device)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        long bands = headDim / 4;
        var exponent = torch.arange(0, bands, 1, ScalarType.Int64, device).to(ScalarType.Float32) / bands;
        var frequencies = torch.pow(10000f, exponent).reciprocal();                                    // [bands]
        var t = torch.arange(grid, ScalarType.Int64, device).to(ScalarType.Float32) / grid * reference;  // [grid]
        var rows = t.view(grid, 1).expand(grid, grid);
        var cols = t.view(1, grid).expand(grid, grid);
        var position = torch.stack(new[] { rows, cols }, -1).unsqueeze(-1) * frequencies;             // [g, g, 2, bands]
        var sin = position.sin().reshape(grid * grid, -1).repeat_interleave(2, -1);
        var cos = position.cos().reshape(grid * grid, -1).repeat_interleave(2, -1);
        return scope.MoveToOuter(torch.cat(new[] { sin, cos }, -1)).DetachFromDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = patch_embed.forward(x);
        h = torch.cat(new[] { cls_token.to(h.dtype).expand(h.shape[0], -1, -1), h }, 1) + pos_embed.to(h.dtype);
        var r = rope.to(h.dtype, h.device);
        foreach (var block in blocks)
        {
            var next = block.forward(h, r);
            h.Dispose();
            h = next;
        }
        h = norm.forward(h);
        return scope.MoveToOuter(head.forward(h[TensorIndex.Colon, 0]));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) rope.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>timm's <c>EvaBlock</c> without layer scale: <c>x + attn(norm1(x))</c>, then <c>x + mlp(norm2(x))</c>.</summary>
internal sealed class EvaBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly ClipLayerNorm norm1;
    private readonly EvaAttention attn;
    private readonly ClipLayerNorm norm2;
    private readonly EvaSwiGlu mlp;

    public EvaBlock(long width, long heads, long hidden, double eps, Device? device = null) : base(nameof(EvaBlock))
    {
        norm1 = new ClipLayerNorm(width, eps, device: device);
        attn = new EvaAttention(width, heads, eps, device);
        norm2 = new ClipLayerNorm(width, eps, device: device);
        mlp = new EvaSwiGlu(width, hidden, eps, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor rope)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.forward(norm1.forward(x), rope);
        return scope.MoveToOuter(h + mlp.forward(norm2.forward(h)));
    }
}

/// <summary>
/// timm's <c>EvaAttention</c> as EVA02-CLIP uses it: <c>q_proj</c> and <c>v_proj</c> with bias, <c>k_proj</c> without,
/// rotary embeddings on the patch tokens (not the class token), attention, the inner LayerNorm <c>norm</c>, <c>proj</c>.
/// </summary>
internal sealed class EvaAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly ClipLayerNorm norm;
    private readonly Linear proj;
    private readonly long heads;

    public EvaAttention(long width, long heads, double eps, Device? device = null) : base(nameof(EvaAttention))
    {
        if (heads <= 0 || width % heads != 0 || width / heads % 4 != 0)
            throw new ArgumentException($"Attention width {width} is not divisible into {heads} heads of a multiple of 4 (rotary embeddings).");
        this.heads = heads;
        q_proj = nn.Linear(width, width, hasBias: true, device: device);
        k_proj = nn.Linear(width, width, hasBias: false, device: device);
        v_proj = nn.Linear(width, width, hasBias: true, device: device);
        norm = new ClipLayerNorm(width, eps, device: device);
        proj = nn.Linear(width, width, hasBias: true, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor rope)
    {
        using var partTimer = PartTimes.Start(ModelPart.Attention);
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], d = x.shape[2];
        var q = q_proj.forward(x).view(b, n, heads, -1).transpose(1, 2);
        var k = k_proj.forward(x).view(b, n, heads, -1).transpose(1, 2);
        var v = v_proj.forward(x).view(b, n, heads, -1).transpose(1, 2);
        q = WithRotation(q, rope);
        k = WithRotation(k, rope);
        var o = AttentionKernel.Run(q, k, v).transpose(1, 2).reshape(b, n, d);
        return scope.MoveToOuter(proj.forward(norm.forward(o)));
    }

    /// <summary>The class token as it is; the patch tokens times cos plus their pairwise rotation (-x1, x0, -x3, x2, ...) times sin.</summary>
    private static Tensor WithRotation(Tensor x, Tensor rope)
    {
        long hd = x.shape[3];
        var sin = rope[TensorIndex.Colon, TensorIndex.Slice(0, hd)];
        var cos = rope[TensorIndex.Colon, TensorIndex.Slice(hd, null)];
        var patches = x[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(1, null)];
        var pairs = patches.unflatten(3, new long[] { hd / 2, 2 });
        var rotated = torch.stack(new[] { -pairs[TensorIndex.Ellipsis, 1], pairs[TensorIndex.Ellipsis, 0] }, -1).reshape(patches.shape);
        var turned = patches * cos + rotated * sin;
        return torch.cat(new[] { x[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(0, 1)], turned.to(x.dtype) }, 2);
    }
}

/// <summary>timm's <c>SwiGLU</c> with <c>scale_mlp</c>: <c>fc2(norm(silu(fc1_g(x)) * fc1_x(x)))</c>.</summary>
internal sealed class EvaSwiGlu : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1_g;
    private readonly Linear fc1_x;
    private readonly ClipLayerNorm norm;
    private readonly Linear fc2;

    public EvaSwiGlu(long width, long hidden, double eps, Device? device = null) : base(nameof(EvaSwiGlu))
    {
        fc1_g = nn.Linear(width, hidden, hasBias: true, device: device);
        fc1_x = nn.Linear(width, hidden, hasBias: true, device: device);
        norm = new ClipLayerNorm(hidden, eps, device: device);
        fc2 = nn.Linear(hidden, width, hasBias: true, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.Mlp);
        using var scope = NewDisposeScope();
        var h = nn.functional.silu(fc1_g.forward(x)) * fc1_x.forward(x);
        return scope.MoveToOuter(fc2.forward(norm.forward(h)));
    }
}
