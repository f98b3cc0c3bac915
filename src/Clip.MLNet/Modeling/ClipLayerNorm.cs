using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// LayerNorm that normalizes in the dtype of its own parameters. As in the reference, whose
/// LayerNorm upcasts fp16 activations to fp32: reduced-precision models keep these parameters
/// in fp32 (see <see cref="ClipModel.ToPrecision"/>), so statistics are computed in fp32.
/// </summary>
internal sealed class ClipLayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long[] shape;
    private readonly double eps;

    public ClipLayerNorm(long width, double eps = 1e-5, Device? device = null) : base(nameof(ClipLayerNorm))
    {
        shape = new[] { width };
        this.eps = eps;
        weight = new Parameter(torch.ones(width, device: device));
        bias = new Parameter(torch.zeros(width, device: device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var partTimer = PartTimes.Start(ModelPart.Norm);
        if (x.dtype == weight.dtype)
            return nn.functional.layer_norm(x, shape, weight, bias, eps);
        // libtorch's CPU kernel takes bf16/fp16 input with fp32 parameters and computes in fp32: the
        // reference's upcast-normalize-downcast without the two conversion passes.
        if (DeviceKernels.PathOf(x) == DeviceType.CPU && weight.dtype == ScalarType.Float32 && x.dtype is ScalarType.BFloat16 or ScalarType.Float16)
            return nn.functional.layer_norm(x, shape, weight, bias, eps);
        using var scope = NewDisposeScope();
        var y = nn.functional.layer_norm(x.to(weight.dtype), shape, weight, bias, eps);
        return scope.MoveToOuter(y.to(x.dtype));
    }
}
