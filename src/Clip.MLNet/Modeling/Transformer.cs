using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>A stack of <see cref="ResidualAttentionBlock"/>s under the key <c>resblocks</c>.</summary>
internal sealed class Transformer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResidualAttentionBlock> resblocks;

    public Transformer(long width, long layers, long heads, long mlpWidth, ClipActivation activation, bool causal, Device? device = null, double eps = 1e-5)
        : base(nameof(Transformer))
    {
        resblocks = new ModuleList<ResidualAttentionBlock>();
        for (long i = 0; i < layers; i++)
            resblocks.Add(new ResidualAttentionBlock(width, heads, mlpWidth, activation, causal, device, eps));
        RegisterComponents();
    }

    /// <summary>OpenAI's initialisation of the text transformer (CLIP.initialize_parameters).</summary>
    internal void InitializeAsText(long width)
    {
        double projStd = Math.Pow(width, -0.5) * Math.Pow(2 * resblocks.Count, -0.5);
        double attnStd = Math.Pow(width, -0.5);
        double fcStd = Math.Pow(2 * width, -0.5);
        foreach (var block in resblocks) block.Initialize(attnStd, projStd, fcStd);
    }

    public override Tensor forward(Tensor x)
    {
        var h = x;
        foreach (var block in resblocks)
        {
            var next = block.forward(h);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return ReferenceEquals(h, x) ? x.alias() : h;
    }
}
