using TorchSharp;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// softmax(q·kᵀ / √d [+ causal mask]) · v over <c>[B, H, L, d]</c> inputs with the kernel chosen for the device:
/// on the CPU, fp32 and bf16 take the form <see cref="CpuAttention"/> fixed for the machine, fp16 the fused kernel
/// (libtorch has no fast CPU fp16 batched matrix product, about 1 GFLOP/s; its fused kernel does not need one), other
/// dtypes the explicit form; elsewhere libtorch's fused kernel.
/// </summary>
internal static class AttentionKernel
{
    public static Tensor Run(Tensor q, Tensor k, Tensor v, bool causal = false) =>
        FormFor(q, causal) == AttentionForm.Explicit
            ? MultiheadSelfAttention.Attention(q, k, v, causal)
            : nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal);

    private static AttentionForm FormFor(Tensor q, bool causal)
    {
        if (DeviceKernels.PathOf(q) != DeviceType.CPU) return AttentionForm.Fused;
        return q.dtype switch
        {
            ScalarType.Float32 or ScalarType.BFloat16 => CpuAttention.Choice(q.dtype, causal).Form,
            ScalarType.Float16 => AttentionForm.Fused,
            _ => AttentionForm.Explicit,
        };
    }
}
