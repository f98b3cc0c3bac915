using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Clip.MLNet.Imaging;

/// <summary>
/// The two passes of Pillow's 8-bit resize: horizontal first, each result clipped to a byte, then
/// vertical. Integer arithmetic only, so SIMD and scalar paths give identical bytes.
/// </summary>
/// <remarks>
/// Only the pixels that survive the centre crop are computed: an output pixel depends only on its
/// own taps, so skipping the cropped-away columns and rows changes nothing in the rest. The
/// horizontal pass reads interleaved pixels and writes planes (one per channel), which is the
/// layout the vertical pass and the final normalization want.
/// </remarks>
internal static unsafe class BicubicPasses
{
    /// <summary>
    /// Horizontal pass over 4-byte pixels: for rows <paramref name="rowFirst"/>.. of
    /// <paramref name="source"/>, every output column of <paramref name="kernel"/>'s window, into
    /// <paramref name="planeCount"/> planes of <paramref name="rowCount"/> x window bytes.
    /// Plane p takes byte <c>channelOffsets[p]</c> of each pixel.
    /// </summary>
    public static void Horizontal4(byte* source, int rowBytes, int rowFirst, int rowCount,
        ResampleKernel kernel, byte* planes, int planeCount, ReadOnlySpan<int> channelOffsets)
    {
        int colCount = kernel.OutCount;
        int planeSize = rowCount * colCount;
        int taps = kernel.MaxTaps;
        int o0 = channelOffsets[0], o1 = channelOffsets[1], o2 = channelOffsets[2], o3 = planeCount > 3 ? channelOffsets[3] : 3;
        byte* plane0 = planes, plane1 = planes + planeSize, plane2 = planes + 2 * planeSize, plane3 = planes + 3 * planeSize;
        fixed (int* firstAll = kernel.First, countAll = kernel.Count, weightsAll = kernel.Weights)
        {
            for (int r = 0; r < rowCount; r++)
            {
                byte* row = source + (long)(rowFirst + r) * rowBytes;
                int outRow = r * colCount;
                for (int j = 0; j < colCount; j++)
                {
                    byte* px = row + firstAll[j] * 4;
                    int n = countAll[j];
                    int* w = weightsAll + j * taps;
                    uint packed = Sse41.IsSupported ? Horizontal4Simd(px, w, n) : Horizontal4Scalar(px, w, n);
                    plane0[outRow + j] = (byte)(packed >> (8 * o0));
                    plane1[outRow + j] = (byte)(packed >> (8 * o1));
                    plane2[outRow + j] = (byte)(packed >> (8 * o2));
                    if (planeCount > 3) plane3[outRow + j] = (byte)(packed >> (8 * o3));
                }
            }
        }
    }

    // All four bytes of a pixel at once: zero-extend to four ints, multiply by the broadcast weight.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Horizontal4Simd(byte* px, int* w, int n)
    {
        var acc = Vector128.Create(ResampleKernel.Rounding);
        for (int t = 0; t < n; t++)
            acc = Sse2.Add(acc, Sse41.MultiplyLow(Sse41.ConvertToVector128Int32(px + 4 * t), Vector128.Create(w[t])));
        acc = Sse2.ShiftRightArithmetic(acc, ResampleKernel.PrecisionBits);
        // Saturating packs clamp to 0..255 exactly as the scalar clip does.
        var shorts = Sse2.PackSignedSaturate(acc, acc);
        return Sse2.PackUnsignedSaturate(shorts, shorts).AsUInt32().ToScalar();
    }

    private static uint Horizontal4Scalar(byte* px, int* w, int n)
    {
        int s0 = ResampleKernel.Rounding, s1 = s0, s2 = s0, s3 = s0;
        for (int t = 0; t < n; t++)
        {
            int k = w[t];
            byte* p = px + 4 * t;
            s0 += p[0] * k;
            s1 += p[1] * k;
            s2 += p[2] * k;
            s3 += p[3] * k;
        }
        return ResampleKernel.Clip8(s0) | (uint)ResampleKernel.Clip8(s1) << 8 | (uint)ResampleKernel.Clip8(s2) << 16 | (uint)ResampleKernel.Clip8(s3) << 24;
    }

    /// <summary>Horizontal pass over 1-byte (grayscale) pixels into one plane.</summary>
    public static void Horizontal1(byte* source, int rowBytes, int rowFirst, int rowCount, ResampleKernel kernel, byte* plane)
    {
        int taps = kernel.MaxTaps, colCount = kernel.OutCount;
        fixed (int* firstAll = kernel.First, countAll = kernel.Count, weightsAll = kernel.Weights)
        {
            for (int r = 0; r < rowCount; r++)
            {
                byte* row = source + (long)(rowFirst + r) * rowBytes;
                byte* outRow = plane + r * colCount;
                for (int j = 0; j < colCount; j++)
                {
                    byte* px = row + firstAll[j];
                    int n = countAll[j];
                    int* w = weightsAll + j * taps;
                    int s = ResampleKernel.Rounding;
                    for (int t = 0; t < n; t++) s += px[t] * w[t];
                    outRow[j] = ResampleKernel.Clip8(s);
                }
            }
        }
    }

    /// <summary>
    /// Vertical pass over one plane of <paramref name="width"/>-byte rows whose first row is input row
    /// <paramref name="rowFirst"/>: every output row of <paramref name="kernel"/>'s window into
    /// <paramref name="destination"/>.
    /// </summary>
    public static void Vertical(byte* source, int width, int rowFirst, ResampleKernel kernel, byte* destination)
    {
        int taps = kernel.MaxTaps, outCount = kernel.OutCount;
        fixed (int* firstAll = kernel.First, countAll = kernel.Count, weightsAll = kernel.Weights)
        {
            for (int i = 0; i < outCount; i++)
            {
                byte* top = source + (long)(firstAll[i] - rowFirst) * width;
                int n = countAll[i];
                int* w = weightsAll + i * taps;
                byte* outRow = destination + (long)i * width;
                int j = 0;
                if (Avx2.IsSupported)
                {
                    for (; j + 16 <= width; j += 16)
                    {
                        var acc0 = Vector256.Create(ResampleKernel.Rounding);
                        var acc1 = acc0;
                        byte* p = top + j;
                        for (int t = 0; t < n; t++, p += width)
                        {
                            var k = Vector256.Create(w[t]);
                            acc0 = Avx2.Add(acc0, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p), k));
                            acc1 = Avx2.Add(acc1, Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + 8), k));
                        }
                        acc0 = Vector256.Min(Vector256.Max(Vector256.ShiftRightArithmetic(acc0, ResampleKernel.PrecisionBits), Vector256<int>.Zero), Vector256.Create(255));
                        acc1 = Vector256.Min(Vector256.Max(Vector256.ShiftRightArithmetic(acc1, ResampleKernel.PrecisionBits), Vector256<int>.Zero), Vector256.Create(255));
                        var shorts = Vector256.Narrow(acc0.AsUInt32(), acc1.AsUInt32());
                        Vector256.Narrow(shorts, shorts).GetLower().Store(outRow + j);
                    }
                }
                for (; j < width; j++)
                {
                    int s = ResampleKernel.Rounding;
                    byte* p = top + j;
                    for (int t = 0; t < n; t++, p += width) s += *p * w[t];
                    outRow[j] = ResampleKernel.Clip8(s);
                }
            }
        }
    }
}
