namespace Clip.MLNet.Imaging;

/// <summary>
/// torchvision's <c>ToTensor</c> then <c>Normalize(mean, std)</c> for every byte value, per channel:
/// <c>(v / 255f - mean) / std</c> in float32, the order and precision torchvision computes in, so a
/// lookup gives the same floats.
/// </summary>
internal sealed class NormalizationTable
{
    private readonly float[] values = new float[3 * 256];

    public NormalizationTable(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                values[c * 256 + v] = ((float)v / 255f - mean[c]) / std[c];
    }

    /// <summary>The normalized value of byte <paramref name="value"/> in channel <paramref name="channel"/>.</summary>
    public float this[int channel, int value] => values[channel * 256 + value];

    /// <summary>Three planes of <paramref name="area"/> bytes (R, G, B) to CHW floats.</summary>
    public void WriteRgb(ReadOnlySpan<byte> planes, int area, Span<float> destination)
    {
        for (int c = 0; c < 3; c++)
        {
            var table = values.AsSpan(c * 256, 256);
            var src = planes.Slice(c * area, area);
            var dst = destination.Slice(c * area, area);
            for (int i = 0; i < src.Length; i++) dst[i] = table[src[i]];
        }
    }

    /// <summary>One gray plane to CHW floats: Pillow's L -> RGB copies the level to all three channels.</summary>
    public void WriteGray(ReadOnlySpan<byte> plane, Span<float> destination)
    {
        int area = plane.Length;
        for (int c = 0; c < 3; c++)
        {
            var table = values.AsSpan(c * 256, 256);
            var dst = destination.Slice(c * area, area);
            for (int i = 0; i < plane.Length; i++) dst[i] = table[plane[i]];
        }
    }
}
