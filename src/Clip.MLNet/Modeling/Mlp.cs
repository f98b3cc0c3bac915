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
    private readonly bool quickGelu;

    public Mlp(long width, long hidden, ClipActivation activation, Device? device = null) : base(nameof(Mlp))
    {
        c_fc = nn.Linear(width, hidden, device: device);
        gelu = activation.CreateModule();
        c_proj = nn.Linear(hidden, width, device: device);
        quickGelu = activation == ClipActivation.QuickGelu;
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
        using var partTimer = PartTimes.Start(ModelPart.Mlp);
        using var scope = NewDisposeScope();
        if (quickGelu && !torch.is_grad_enabled())
            return scope.MoveToOuter(FusedQuickGelu(x));
        var h = c_fc.forward(x);
        var a = gelu.forward(h);
        return scope.MoveToOuter(c_proj.forward(a));
    }

    /// <summary>
    /// Inference form of <c>c_proj(quick_gelu(c_fc(x)))</c> with one elementwise pass instead of three:
    /// <c>x·sigmoid(1.702x) = silu(1.702x) / 1.702</c>, and both factors ride on the matrix products
    /// (<c>addmm</c>'s alpha and beta), so the hidden activations are written once and changed in place.
    /// </summary>
    private Tensor FusedQuickGelu(Tensor x)
    {
        const double k = QuickGelu.Factor;
        if (x.dtype == ScalarType.Float16 && DeviceKernels.PathOf(x) == DeviceType.CPU)
        {
            // libtorch's CPU addmm has no fast fp16 kernel (about 1 GFLOP/s here); linear has one.
            var hidden = c_fc.forward(x).mul_(k);                                                   // 1.702 · c_fc(x)
            nn.functional.silu(hidden, inplace: true);                                              // 1.702 · quick_gelu(c_fc(x))
            using var bias = c_proj.bias! * k;
            return nn.functional.linear(hidden, c_proj.weight!, bias).div_(k);
        }
        var shape = x.shape;
        var x2 = x.reshape(-1, shape[^1]);
        var h = torch.addmm(c_fc.bias!, x2, c_fc.weight!.t(), beta: (float)k, alpha: (float)k);   // 1.702 · c_fc(x)
        nn.functional.silu(h, inplace: true);                                                     // 1.702 · quick_gelu(c_fc(x))
        var y = torch.addmm(c_proj.bias!, h, c_proj.weight!.t(), beta: 1, alpha: (float)(1 / k));
        shape[^1] = y.shape[1];
        return y.view(shape);
    }
}
