using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// Self-attention with packed q/k/v projections, laid out as <c>torch.nn.MultiheadAttention</c>
/// (<c>in_proj_weight</c>, <c>in_proj_bias</c>, <c>out_proj</c>) so the reference weights load as they are.
/// Batch-first. The attention itself is <see cref="AttentionKernel.Run"/>: on the CPU the explicit form
/// (<see cref="Attention"/>) or libtorch's fused kernel, as measured once per machine (<see cref="CpuAttention"/>);
/// elsewhere the fused kernel. Same scaling as the reference either way.
/// </summary>
internal sealed class MultiheadSelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly long heads;
    private readonly bool causal;

    public MultiheadSelfAttention(long width, long heads, bool causal, Device? device = null) : base(nameof(MultiheadSelfAttention))
    {
        if (heads <= 0 || width % heads != 0)
            throw new ArgumentException($"Attention width {width} is not divisible into {heads} heads.");
        this.heads = heads;
        this.causal = causal;
        in_proj_weight = new Parameter(torch.empty(3 * width, width, device: device));
        in_proj_bias = new Parameter(torch.zeros(3 * width, device: device));
        out_proj = nn.Linear(width, width, device: device);
        if (device is null || device.type != DeviceType.META)
        {
            // torch.nn.MultiheadAttention's initialisation: Xavier for the packed projection, zero biases.
            using var _ = torch.no_grad();
            nn.init.xavier_uniform_(in_proj_weight);
            out_proj.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>OpenAI's text-transformer initialisation: normal with the given standard deviations.</summary>
    internal void Initialize(double attentionStd, double projectionStd)
    {
        using var _ = torch.no_grad();
        nn.init.normal_(in_proj_weight, std: attentionStd);
        nn.init.normal_(out_proj.weight!, std: projectionStd);
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.Attention);
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        var qkv = nn.functional.linear(x, in_proj_weight, in_proj_bias)
            .view(b, l, 3, heads, d / heads)
            .permute(2, 0, 3, 1, 4);
        var o = AttentionKernel.Run(qkv[0], qkv[1], qkv[2], causal);
        o = o.transpose(1, 2).reshape(b, l, d);
        return scope.MoveToOuter(out_proj.forward(o));
    }

    /// <summary>softmax(q·kᵀ / √d + mask) · v for <c>[B, H, L, d]</c> inputs; the causal mask hides later positions.</summary>
    internal static Tensor Attention(Tensor q, Tensor k, Tensor v, bool causal)
    {
        using var scope = NewDisposeScope();
        long l = q.shape[2];
        var scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / Math.Sqrt(q.shape[3]));   // [B, H, L, L]
        if (causal && l > 1)
        {
            var later = torch.ones(l, l, ScalarType.Bool, q.device).triu_(1);
            scores.masked_fill_(later, double.NegativeInfinity);
        }
        var weights = scores.softmax(-1);
        return scope.MoveToOuter(torch.matmul(weights, v));
    }
}
