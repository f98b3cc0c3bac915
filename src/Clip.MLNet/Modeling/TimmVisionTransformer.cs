using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// open_clip's <c>TimmModel</c> image tower holding a timm model under <c>trunk</c> (keys <c>visual.trunk.*</c>): a ViT with
/// <c>timm_proj: none</c> (the trunk's pooled features are the image features: SigLIP), or an EVA02 tower whose timm head
/// is the projection (<c>timm_proj: null</c>).
/// </summary>
internal sealed class TimmVisionTower : ImageEncoder
{
    private readonly nn.Module<Tensor, Tensor> trunk;
    private readonly int resolution;

    public TimmVisionTower(ClipConfig config, Device? device = null) : base(nameof(TimmVisionTower))
    {
        resolution = config.ImageResolution;
        trunk = config.VisionTimmFamily == "eva02"
            ? new EvaVisionTransformer(config, device)
            : new TimmVisionTransformer(config, device);
        RegisterComponents();
    }

    public override int InputResolution => resolution;

    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != 3 || x.shape[2] != resolution || x.shape[3] != resolution)
            throw new ArgumentException($"The image tower expects pixels [N, 3, {resolution}, {resolution}], got [{string.Join(", ", x.shape)}].");
        return trunk.forward(x);
    }
}

/// <summary>
/// timm's <c>VisionTransformer</c> as open_clip builds it with <c>num_classes=0</c>: <c>patch_embed.proj</c>
/// (a convolution with bias), an optional <c>cls_token</c>, <c>pos_embed</c>, an optional <c>norm_pre</c>,
/// <c>blocks</c>, <c>norm</c>, then the class token or attention pooling (<c>attn_pool</c>).
/// </summary>
internal sealed class TimmVisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly TimmPatchEmbed patch_embed;
    private readonly Parameter? cls_token;
    private readonly Parameter pos_embed;
    private readonly ClipLayerNorm? norm_pre;
    private readonly ModuleList<TimmBlock> blocks;
    private readonly ClipLayerNorm norm;
    private readonly AttentionPoolLatent? attn_pool;

    public TimmVisionTransformer(ClipConfig c, Device? device = null) : base(nameof(TimmVisionTransformer))
    {
        long width = c.VisionWidth;
        int patch = c.VisionPatchSize!.Value;
        long grid = c.ImageResolution / patch;
        var act = c.EffectiveVisionActivation;
        double eps = c.VisionLayerNormEps;
        patch_embed = new TimmPatchEmbed(width, patch, device);
        if (c.VisionClassToken) cls_token = new Parameter(torch.zeros(1, 1, width, device: device));
        pos_embed = new Parameter(torch.randn(1, grid * grid + (c.VisionClassToken ? 1 : 0), width, device: device) * 0.02);
        if (c.VisionPreNorm) norm_pre = new ClipLayerNorm(width, eps, device: device);
        blocks = new ModuleList<TimmBlock>();
        for (int i = 0; i < c.VisionLayers[0]; i++)
            blocks.Add(new TimmBlock(width, c.VisionHeads, c.VisionMlpWidth, act, eps, device));
        norm = new ClipLayerNorm(width, eps, device: device);
        if (c.VisionPool == "map") attn_pool = new AttentionPoolLatent(width, c.VisionHeads, c.VisionMlpWidth, act, eps, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = patch_embed.forward(x);                                             // [N, g*g, W]
        if (cls_token is not null)
            h = torch.cat(new[] { cls_token.to(h.dtype).expand(h.shape[0], -1, -1), h }, 1);
        h = h + pos_embed.to(h.dtype);
        if (norm_pre is not null) h = norm_pre.forward(h);
        foreach (var block in blocks)
        {
            var next = block.forward(h);
            h.Dispose();
            h = next;
        }
        h = norm.forward(h);
        var pooled = attn_pool is not null ? attn_pool.forward(h) : h[TensorIndex.Colon, 0];
        return scope.MoveToOuter(pooled);
    }
}

/// <summary>timm's <c>PatchEmbed</c>: a strided convolution <c>proj</c> with bias, flattened to tokens.</summary>
internal sealed class TimmPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public TimmPatchEmbed(long width, int patch, Device? device = null) : base(nameof(TimmPatchEmbed))
    {
        proj = nn.Conv2d(3, width, patch, stride: patch, bias: true, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.PatchEmbedding);
        using var scope = NewDisposeScope();
        var h = proj.forward(x.to(proj.weight!.dtype));
        return scope.MoveToOuter(h.flatten(2).transpose(1, 2));
    }
}
