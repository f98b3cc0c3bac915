using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// CLIP's text tower: token and positional embeddings, a causal transformer, <c>ln_final</c>,
/// the features at the end-of-text token (the largest id of each row) and <c>text_projection</c>.
/// open_clip's variants are options: no causal mask, pooling at the last (or first) position, a projection
/// with bias (<c>text_projection.weight/bias</c>, an <c>nn.Linear</c>) and another LayerNorm epsilon (SigLIP).
/// </summary>
internal sealed class TextTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly Transformer transformer;
    private readonly ClipLayerNorm ln_final;
    private readonly Parameter? text_projection;
    private readonly Linear? projectionLinear;
    private readonly bool causal;
    private readonly string pool;

    public TextTransformer(int contextLength, int vocabSize, long width, long layers, long heads, long mlpWidth,
        long embedDim, ClipActivation activation, Device? device = null,
        bool causal = true, string pool = "argmax", bool projectionBias = false, double eps = 1e-5) : base(nameof(TextTransformer))
    {
        if (pool is not ("argmax" or "last" or "first"))
            throw new ArgumentException($"Unsupported text pool_type '{pool}' (argmax, last or first).", nameof(pool));
        ContextLength = contextLength;
        this.causal = causal;
        this.pool = pool;
        token_embedding = nn.Embedding(vocabSize, width, device: device);
        positional_embedding = new Parameter(torch.empty(contextLength, width, device: device));
        transformer = new Transformer(width, layers, heads, mlpWidth, activation, causal, device, eps);
        ln_final = new ClipLayerNorm(width, eps, device: device);
        if (!projectionBias) text_projection = new Parameter(torch.empty(width, embedDim, device: device));
        if (device is null || device.type != DeviceType.META)
        {
            using var _ = torch.no_grad();
            nn.init.normal_(token_embedding.weight!, std: 0.02);
            nn.init.normal_(positional_embedding, std: 0.01);
            if (text_projection is not null) nn.init.normal_(text_projection, std: Math.Pow(width, -0.5));
            transformer.InitializeAsText(width);
        }
        RegisterComponents();
        if (projectionBias)
        {
            // open_clip's proj_bias towers: text_projection is an nn.Linear (keys text_projection.weight / .bias).
            projectionLinear = nn.Linear(width, embedDim, hasBias: true, device: device);
            register_module("text_projection", projectionLinear);
        }
    }

    public int ContextLength { get; }

    /// <summary>
    /// When true (the default), each batch runs only up to its last end-of-text position. The mask
    /// is causal and pooling reads the end-of-text position, so the positions after it never
    /// influence the result: the features are the same, for less work. Always false for towers
    /// without a causal mask or that pool another position (SigLIP): there it would change the result.
    /// </summary>
    public bool TrimToLongest
    {
        get => trim && CanTrim;
        set => trim = value;
    }

    private bool trim = true;

    /// <summary>Whether trimming leaves the result unchanged: a causal mask and pooling at the end-of-text token.</summary>
    public bool CanTrim => causal && pool == "argmax";

    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        if (tokens.dim() != 2)
            throw new ArgumentException($"Text tokens must be [N, L], got [{string.Join(", ", tokens.shape)}].");
        if (tokens.shape[1] > ContextLength)
            throw new ArgumentException($"Text tokens have {tokens.shape[1]} positions; the model's context length is {ContextLength}.");
        var ids = tokens.to(ScalarType.Int64);
        var eot = pool switch
        {
            "argmax" => ids.argmax(-1),                                             // [N]
            "last" => torch.full(ids.shape[0], ids.shape[1] - 1, ScalarType.Int64, ids.device),
            _ => torch.zeros(ids.shape[0], ScalarType.Int64, ids.device),
        };
        if (TrimToLongest && ids.shape[0] > 0)
        {
            long length = eot.max().item<long>() + 1;
            if (length < ids.shape[1]) ids = ids[TensorIndex.Colon, TensorIndex.Slice(0, length)];
        }
        long l = ids.shape[1];
        var x = token_embedding.forward(ids);
        x = x + positional_embedding[TensorIndex.Slice(0, l)].to(x.dtype);
        x = transformer.forward(x);
        x = ln_final.forward(x);
        var pooled = x[torch.arange(x.shape[0], device: x.device), eot];           // [N, W]
        if (projectionLinear is not null) return scope.MoveToOuter(projectionLinear.forward(pooled));
        // As linear (x·Wᵀ with W = projectionᵀ): the same product, and the form libtorch has fast CPU fp16 kernels for.
        return scope.MoveToOuter(nn.functional.linear(pooled, text_projection!.to(pooled.dtype).t()));
    }
}
