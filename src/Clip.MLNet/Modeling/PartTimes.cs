using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>The parts of a tower that <see cref="PartTimes"/> tells apart.</summary>
internal enum ModelPart
{
    /// <summary>The patch convolution of a ViT image tower.</summary>
    PatchEmbedding,
    /// <summary>Self-attention: projections, scores, softmax, output projection.</summary>
    Attention,
    /// <summary>The transformer MLP: both matrix products and the activation.</summary>
    Mlp,
    /// <summary>LayerNorms outside attention and MLP.</summary>
    Norm,
}

/// <summary>
/// Opt-in timing of a forward pass by part, for <c>clip bench</c>. Off by default: then a module pays one
/// thread-static read per call. While on (<see cref="Record"/>), the outermost timed part on this thread
/// owns the time, so a LayerNorm inside an MLP counts as MLP.
/// </summary>
internal static class PartTimes
{
    [ThreadStatic] private static double[]? seconds;
    [ThreadStatic] private static int depth;
    [ThreadStatic] private static Device? device;

    /// <summary>Number of parts.</summary>
    public const int Count = 4;

    /// <summary>Starts timing <paramref name="part"/> when recording is on; dispose the result at the end of the part.</summary>
    public static Timer Start(ModelPart part)
    {
        if (seconds is null || depth++ > 0) return default;
        Synchronize();
        return new Timer(part, Stopwatch.GetTimestamp());
    }

    /// <summary>Runs <paramref name="run"/> with recording on for this thread; seconds per part, indexed by <see cref="ModelPart"/>.</summary>
    public static double[] Record(Action run, Device on)
    {
        var previous = (seconds, depth, device);
        seconds = new double[Count];
        depth = 0;
        device = on;
        try
        {
            run();
            return seconds;
        }
        finally
        {
            (seconds, depth, device) = previous;
        }
    }

    private static void Synchronize()
    {
        if (device is { type: DeviceType.CUDA }) torch.cuda.synchronize(device);
    }

    /// <summary>A running part; a default value does nothing.</summary>
    public readonly struct Timer : IDisposable
    {
        private readonly ModelPart part;
        private readonly long start;

        internal Timer(ModelPart part, long start)
        {
            this.part = part;
            this.start = start;
        }

        public void Dispose()
        {
            if (seconds is null) return;
            if (start == 0)
            {
                if (depth > 0) depth--;
                return;
            }
            Synchronize();
            seconds[(int)part] += Stopwatch.GetElapsedTime(start).TotalSeconds;
            depth--;
        }
    }
}
