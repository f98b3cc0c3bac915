using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// ModifiedResNet's attention pooling: the spatial mean is prepended as a query token, positional
/// embedding added, and one multi-head attention step from that token gives the output.
/// </summary>
internal sealed class AttentionPool2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj;
    private readonly Linear q_proj;
    private readonly Linear v_proj;
    private readonly Linear c_proj;
    private readonly long heads;

    public AttentionPool2d(long spacialDim, long embedDim, long heads, long outputDim, Device? device = null) : base(nameof(AttentionPool2d))
    {
        if (heads <= 0 || embedDim % heads != 0)
            throw new ArgumentException($"Attention-pool width {embedDim} is not divisible into {heads} heads.");
        this.heads = heads;
        positional_embedding = new Parameter(torch.randn(spacialDim * spacialDim + 1, embedDim, device: device) / Math.Sqrt(embedDim));
        k_proj = nn.Linear(embedDim, embedDim, device: device);
        q_proj = nn.Linear(embedDim, embedDim, device: device);
        v_proj = nn.Linear(embedDim, embedDim, device: device);
        c_proj = nn.Linear(embedDim, outputDim, device: device);
        if (device is null || device.type != DeviceType.META)
        {
            // OpenAI's initialisation: normal(std = in_features^-0.5) for the four projections.
            using var _ = torch.no_grad();
            double std = Math.Pow(embedDim, -0.5);
            foreach (var l in new[] { q_proj, k_proj, v_proj, c_proj }) nn.init.normal_(l.weight!, std: std);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1];
        var tokens = x.flatten(2).transpose(1, 2);                                  // [N, HW, C]
        if (tokens.shape[1] + 1 != positional_embedding.shape[0])
            throw new ArgumentException($"The image tower expects a {Math.Sqrt(positional_embedding.shape[0] - 1) * 32}-pixel input.");
        tokens = torch.cat(new[] { tokens.mean(new long[] { 1 }, keepdim: true), tokens }, 1);
        tokens = tokens + positional_embedding.to(tokens.dtype);                    // [N, HW+1, C]
        long hd = c / heads;
        var q = q_proj.forward(tokens[TensorIndex.Colon, TensorIndex.Slice(0, 1)]).view(n, 1, heads, hd).transpose(1, 2);
        var k = k_proj.forward(tokens).view(n, -1, heads, hd).transpose(1, 2);
        var v = v_proj.forward(tokens).view(n, -1, heads, hd).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(q, k, v);                // [N, H, 1, hd]
        o = o.transpose(1, 2).reshape(n, c);
        return scope.MoveToOuter(c_proj.forward(o));
    }
}
