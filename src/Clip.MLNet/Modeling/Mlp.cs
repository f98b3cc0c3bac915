using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>The transformer MLP: <c>c_fc</c>, activation, <c>c_proj</c> (the reference's key names).</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear c_fc;
    private readonly nn.Module<Tensor, Tensor> gelu;
    private readonly Linear c_proj;

    public Mlp(long width, long hidden, ClipActivation activation, Device? device = null) : base(nameof(Mlp))
    {
        c_fc = nn.Linear(width, hidden, device: device);
        gelu = activation.CreateModule();
        c_proj = nn.Linear(hidden, width, device: device);
        RegisterComponents();
    }

    internal void Initialize(double fcStd, double projectionStd)
    {
        using var _ = torch.no_grad();
        nn.init.normal_(c_fc.weight!, std: fcStd);
        nn.init.normal_(c_proj.weight!, std: projectionStd);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var h = c_fc.forward(x);
        using var a = gelu.forward(h);
        return scope.MoveToOuter(c_proj.forward(a));
    }
}
