using System.Collections.Concurrent;

namespace Clip.MLNet.Imaging;

/// <summary>
/// The fixed-point bicubic weights that Pillow's <c>Image.resize(..., BICUBIC)</c> uses along one
/// axis, for one (input length, output length) pair and a window of output indices (the crop): for
/// each output index the first input index, the number of taps and the taps' weights in units of 2^-22.
/// </summary>
/// <remarks>
/// Pillow's rules (libImaging/Resample.c), reproduced operation for operation in double precision so
/// that the integer weights come out identical: the cubic convolution kernel with a = -0.5; when
/// shrinking, its support widens by the scale factor (which is what antialiases); the taps of an
/// output index are the input pixels whose centres fall within the support around the output
/// pixel's centre, clipped to the image; their weights are normalized to sum to 1, then rounded
/// half away from zero to 22 fractional bits (8 bits of pixel, 2 of headroom in an int).
/// </remarks>
internal sealed class ResampleKernel(int inSize, int outSize, int outFirst, int maxTaps, int[] first, int[] count, int[] weights)
{
    /// <summary>Fractional bits of the weights.</summary>
    public const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Added before the final shift so that it rounds to nearest.</summary>
    public const int Rounding = 1 << (PrecisionBits - 1);

    private const double BicubicSupport = 2.0;

    // Kernels depend only on the lengths and the window; photos come in a few sizes, so a small
    // shared cache serves nearly every call. It is dropped wholesale when it grows past this many entries.
    private const int CacheLimit = 512;
    private static readonly ConcurrentDictionary<(int In, int Out, int First, int Count, bool Bilinear), ResampleKernel> Cache = new();

    public int InSize { get; } = inSize;
    public int OutSize { get; } = outSize;

    /// <summary>The first output index the kernel covers; the arrays are indexed from it.</summary>
    public int OutFirst { get; } = outFirst;

    /// <summary>How many output indices the kernel covers.</summary>
    public int OutCount => First.Length;

    /// <summary>The stride of <see cref="Weights"/>: room for the widest tap list.</summary>
    public int MaxTaps { get; } = maxTaps;

    /// <summary>The first input index of each output index (from <see cref="OutFirst"/>).</summary>
    public int[] First { get; } = first;

    /// <summary>How many input pixels each output index reads.</summary>
    public int[] Count { get; } = count;

    /// <summary>Weights, <see cref="MaxTaps"/> per output index (unused slots are zero).</summary>
    public int[] Weights { get; } = weights;

    /// <summary>
    /// The kernel for resizing <paramref name="inSize"/> pixels to <paramref name="outSize"/>, for output
    /// indices <paramref name="outFirst"/> .. + <paramref name="outCount"/>; shared and cached. Only the
    /// window is computed: an extreme aspect ratio can resize the long side to millions of pixels.
    /// </summary>
    public static ResampleKernel Bicubic(int inSize, int outSize, int outFirst, int outCount) =>
        Create(inSize, outSize, outFirst, outCount, bilinear: false);

    /// <summary>As <see cref="Bicubic"/>, or with Pillow's bilinear (triangle) filter when <paramref name="bilinear"/> is set.</summary>
    public static ResampleKernel Create(int inSize, int outSize, int outFirst, int outCount, bool bilinear)
    {
        var key = (inSize, outSize, outFirst, outCount, bilinear);
        if (Cache.TryGetValue(key, out var kernel)) return kernel;
        kernel = Compute(inSize, outSize, outFirst, outCount, bilinear);
        if (Cache.Count >= CacheLimit) Cache.Clear();
        Cache.TryAdd(key, kernel);
        return kernel;
    }

    /// <summary>Pillow's bicubic kernel, a = -0.5, in its exact operation order.</summary>
    internal static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    internal static ResampleKernel Compute(int inSize, int outSize) => Compute(inSize, outSize, 0, outSize);

    /// <summary>Pillow's bilinear kernel (a triangle of support 1).</summary>
    internal static double Triangle(double x)
    {
        if (x < 0.0) x = -x;
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    internal static ResampleKernel Compute(int inSize, int outSize, int outFirst, int outCount, bool bilinear = false)
    {
        if (inSize <= 0 || outSize <= 0) throw new ArgumentOutOfRangeException(nameof(inSize), $"cannot resize {inSize} pixels to {outSize}");
        if (outFirst < 0 || outCount <= 0 || outFirst > outSize - outCount) throw new ArgumentOutOfRangeException(nameof(outFirst), $"window {outFirst}+{outCount} outside 0..{outSize}");
        // Pillow passes the box as floats; for whole-image boxes (0, inSize) the difference is exact.
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = (bilinear ? 1.0 : BicubicSupport) * filterScale;
        int maxTaps = (int)Math.Ceiling(support) * 2 + 1;

        var first = new int[outCount];
        var count = new int[outCount];
        var weights = new int[checked(outCount * maxTaps)];
        Span<double> taps = maxTaps <= 256 ? stackalloc double[maxTaps] : new double[maxTaps];
        double inverseFilterScale = 1.0 / filterScale;

        for (int xx = outFirst; xx < outFirst + outCount; xx++)
        {
            double center = (xx + 0.5) * scale;
            // Truncation toward zero, as C's (int) cast.
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;

            double sum = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                double u = ((x + xmin) - center + 0.5) * inverseFilterScale;
                double w = bilinear ? Triangle(u) : Cubic(u);
                taps[x] = w;
                sum += w;
            }
            int row = (xx - outFirst) * maxTaps;
            for (int x = 0; x < xmax; x++)
            {
                double w = sum != 0.0 ? taps[x] / sum : taps[x];
                weights[row + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }
            first[xx - outFirst] = xmin;
            count[xx - outFirst] = xmax;
        }
        return new ResampleKernel(inSize, outSize, outFirst, maxTaps, first, count, weights);
    }

    /// <summary>An accumulated sum back to a byte: the arithmetic shift (floor) Pillow uses, clamped.</summary>
    public static byte Clip8(int accumulator)
    {
        int v = accumulator >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
