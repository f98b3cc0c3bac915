using TorchSharp;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// Where the model picks kernels by device (explicit attention and mixed-dtype LayerNorm on the CPU,
/// fused attention and upcast LayerNorm elsewhere). Tests can make a thread take another device's
/// path on CPU tensors, so the CUDA paths are checked against the reference without a GPU.
/// </summary>
internal static class DeviceKernels
{
    [ThreadStatic] private static DeviceType? assumed;

    /// <summary>The device type whose code path <paramref name="tensor"/> takes.</summary>
    public static DeviceType PathOf(Tensor tensor) => assumed ?? tensor.device_type;

    /// <summary>Until disposed, forward passes on this thread take <paramref name="type"/>'s code paths.</summary>
    public static IDisposable Assume(DeviceType type)
    {
        var previous = assumed;
        assumed = type;
        return new Restore(previous);
    }

    private sealed class Restore(DeviceType? previous) : IDisposable
    {
        public void Dispose() => assumed = previous;
    }
}
