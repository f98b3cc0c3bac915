using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// CLIP's ViT image tower: patch convolution without bias, class token, positional embedding,
/// <c>ln_pre</c>, transformer, <c>ln_post</c> on the class token, projection <c>proj</c>. open_clip's variants are
/// options: no <c>ln_pre</c>, the mean of the patch tokens as the pooled feature, <c>ln_post</c> after pooling (CLIPA).
/// </summary>
internal sealed class VisionTransformer : ImageEncoder
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly ClipLayerNorm? ln_pre;
    private readonly Transformer transformer;
    private readonly ClipLayerNorm ln_post;
    private readonly Parameter proj;
    private readonly int resolution;
    private readonly bool averagePool;
    private readonly bool lnAfterPool;

    public VisionTransformer(int resolution, int patchSize, long width, long layers, long heads, long mlpWidth,
        long outputDim, ClipActivation activation, Device? device = null,
        bool lnPre = true, string pool = "token", bool finalLnAfterPool = false) : base(nameof(VisionTransformer))
    {
        if (pool is not ("token" or "avg")) throw new ArgumentException($"Unsupported pool '{pool}' (token or avg).", nameof(pool));
        averagePool = pool == "avg";
        lnAfterPool = finalLnAfterPool;
        if (resolution % patchSize != 0)
            throw new ArgumentException($"Image resolution {resolution} is not a multiple of the patch size {patchSize}.");
        this.resolution = resolution;
        long grid = resolution / patchSize;
        double scale = Math.Pow(width, -0.5);
        conv1 = nn.Conv2d(3, width, patchSize, stride: patchSize, bias: false, device: device);
        class_embedding = new Parameter(torch.randn(width, device: device) * scale);
        positional_embedding = new Parameter(torch.randn(grid * grid + 1, width, device: device) * scale);
        if (lnPre) ln_pre = new ClipLayerNorm(width, device: device);
        transformer = new Transformer(width, layers, heads, mlpWidth, activation, causal: false, device);
        ln_post = new ClipLayerNorm(width, device: device);
        proj = new Parameter(torch.randn(width, outputDim, device: device) * scale);
        RegisterComponents();
    }

    public override int InputResolution => resolution;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (x.dim() != 4 || x.shape[1] != 3 || x.shape[2] != resolution || x.shape[3] != resolution)
            throw new ArgumentException($"The image tower expects pixels [N, 3, {resolution}, {resolution}], got [{string.Join(", ", x.shape)}].");
        Tensor h;
        using (PartTimes.Start(ModelPart.PatchEmbedding))
            h = conv1.forward(x.to(conv1.weight!.dtype));           // [N, W, g, g]
        h = h.flatten(2).transpose(1, 2);                            // [N, g*g, W]
        var cls = class_embedding.to(h.dtype).expand(h.shape[0], 1, h.shape[2]);
        h = torch.cat(new[] { cls, h }, 1) + positional_embedding.to(h.dtype);
        if (ln_pre is not null) h = ln_pre.forward(h);
        h = transformer.forward(h);
        // ln_post is per token, so normalizing the class token alone is normalizing all tokens, then taking it.
        var pooled = averagePool
            ? h[TensorIndex.Colon, TensorIndex.Slice(1, null)].mean(new long[] { 1 })
            : h[TensorIndex.Colon, 0, TensorIndex.Colon];
        if (averagePool && !lnAfterPool)
            pooled = ln_post.forward(h)[TensorIndex.Colon, TensorIndex.Slice(1, null)].mean(new long[] { 1 });
        else
            pooled = ln_post.forward(pooled);
        // As linear (x·Wᵀ with W = projᵀ): the same product, and the form libtorch has fast CPU fp16 kernels for.
        return scope.MoveToOuter(nn.functional.linear(pooled, proj.to(pooled.dtype).t()));
    }
}
