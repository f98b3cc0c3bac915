using System.Buffers;

namespace Clip.MLNet.Imaging;

/// <summary>
/// Decoded pixels to CLIP's input tensor: Pillow's resize (shorter side to the crop size) and
/// torchvision's centre crop, then RGB, /255 and normalization, written as CHW floats.
/// </summary>
/// <remarks>
/// Only the crop is ever materialized. Working buffers come from the shared array pool, so a call
/// allocates nothing per pixel and nothing that outlives it; the kernels are shared and immutable,
/// so any number of threads can run the pipeline at once.
/// </remarks>
internal static unsafe class ClipPixelPipeline
{
    public static void Run(in PixelSource source, int size, NormalizationTable normalization, Span<float> destination,
        ClipResizeMode mode = ClipResizeMode.Shortest, bool bilinear = false, byte fill = 0)
    {
        if (mode == ClipResizeMode.Longest)
        {
            if (destination.Length != 3 * size * size)
                throw new ArgumentException($"the destination holds {destination.Length} floats; 3 x {size} x {size} = {3 * size * size} are needed", nameof(destination));
            RunLongest(source, size, normalization, destination, bilinear, fill);
            return;
        }
        if (destination.Length != 3 * size * size)
            throw new ArgumentException($"the destination holds {destination.Length} floats; 3 x {size} x {size} = {3 * size * size} are needed", nameof(destination));
        var geometry = mode switch
        {
            ClipResizeMode.Shortest => CropGeometry.For(source.Width, source.Height, size),
            // open_clip's squash: Resize((size, size)), no crop.
            ClipResizeMode.Squash => new CropGeometry(size, size, 0, 0, size),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown resize mode"),
        };

        Window(source, geometry, size, size, normalization, destination, bilinear);
    }

    /// <summary>The window <paramref name="width"/> x <paramref name="height"/> at (Left, Top) of the image resized to the geometry's size.</summary>
    private static void Window(in PixelSource source, CropGeometry geometry, int width, int height, NormalizationTable normalization, Span<float> destination, bool bilinear)
    {
        if (geometry.NoResize(source.Width, source.Height))
            CropOnly(source, geometry, width, height, normalization, destination);
        else if (source.Filter == ResizeFilter.Nearest)
            Nearest(source, geometry, width, height, normalization, destination);
        else
            Bicubic(source, geometry, width, height, normalization, destination, bilinear);
    }

    /// <summary>
    /// open_clip's <c>resize_mode='longest'</c>: <c>ResizeKeepRatio(size, longest=1)</c> (each side divided by the larger
    /// of side / size, rounded half to even as Python does) and <c>CenterCropOrPad(size, fill)</c> (pad left/top by half the
    /// shortfall, rounded down, the rest right/bottom; crop a side that came out longer than the size as the centre crop does).
    /// </summary>
    private static void RunLongest(in PixelSource source, int size, NormalizationTable normalization, Span<float> destination, bool bilinear, byte fill)
    {
        var (resizedWidth, resizedHeight) = LongestSize(source.Width, source.Height, size);
        var (left, padLeft, width) = Axis(resizedWidth, size);
        var (top, padTop, height) = Axis(resizedHeight, size);
        var geometry = new CropGeometry(resizedWidth, resizedHeight, left, top, size);
        int area = width * height, full = size * size;
        float[] window = ArrayPool<float>.Shared.Rent(3 * area);
        try
        {
            Window(source, geometry, width, height, normalization, window.AsSpan(0, 3 * area), bilinear);
            for (int c = 0; c < 3; c++)
            {
                var plane = destination.Slice(c * full, full);
                plane.Fill(normalization[c, fill]);
                for (int y = 0; y < height; y++)
                    window.AsSpan(c * area + y * width, width).CopyTo(plane.Slice((padTop + y) * size + padLeft, width));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(window);
        }

        static (int Start, int Pad, int Count) Axis(int resized, int size) => resized <= size
            ? (0, (size - resized) / 2, resized)
            : ((int)Math.Round((resized - size) / 2.0), 0, size);
    }

    /// <summary>open_clip's <c>ResizeKeepRatio</c> with <c>longest=1</c>: both sides divided by max(h / size, w / size), rounded half to even.</summary>
    internal static (int Width, int Height) LongestSize(int width, int height, int size)
    {
        double ratio = Math.Max((double)height / size, (double)width / size);
        int w = (int)Math.Round(width / ratio, MidpointRounding.ToEven);
        int h = (int)Math.Round(height / ratio, MidpointRounding.ToEven);
        return (Math.Max(1, w), Math.Max(1, h));
    }

    private static (int R, int G, int B) ColorOffsets(PixelLayout layout) => layout == PixelLayout.Bgra32 ? (2, 1, 0) : (0, 1, 2);

    // Pillow returns an image of the requested size untouched (no premultiplied round trip), so the
    // crop reads the pixels as they are.
    private static void CropOnly(in PixelSource source, CropGeometry g, int width, int height, NormalizationTable normalization, Span<float> destination)
    {
        int area = width * height;
        byte[] planes = ArrayPool<byte>.Shared.Rent(3 * area);
        try
        {
            var pixels = source.Pixels;
            var (ro, go, bo) = ColorOffsets(source.Layout);
            int bpp = source.BytesPerPixel;
            for (int i = 0; i < height; i++)
            {
                int rowStart = (g.Top + i) * source.RowBytes + g.Left * bpp;
                for (int j = 0; j < width; j++)
                {
                    int p = rowStart + j * bpp, o = i * width + j;
                    if (bpp == 1)
                    {
                        planes[o] = planes[area + o] = planes[2 * area + o] = pixels[p];
                    }
                    else if (source.Alpha == AlphaHandling.Premultiplied)
                    {
                        byte a = pixels[p + 3];
                        planes[o] = Unpremultiply(pixels[p + ro], a);
                        planes[area + o] = Unpremultiply(pixels[p + go], a);
                        planes[2 * area + o] = Unpremultiply(pixels[p + bo], a);
                    }
                    else
                    {
                        planes[o] = pixels[p + ro];
                        planes[area + o] = pixels[p + go];
                        planes[2 * area + o] = pixels[p + bo];
                    }
                }
            }
            normalization.WriteRgb(planes.AsSpan(0, 3 * area), area, destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(planes);
        }
    }

    /// <summary>
    /// Pillow's nearest-neighbour resize (libImaging/Geometry.c, the affine scale path): the source
    /// coordinate of output column x is <c>scale * 0.5 + x * scale</c>, accumulated by repeated
    /// addition in double precision and truncated.
    /// </summary>
    internal static int[] NearestIndices(int inSize, int outSize, int first, int count)
    {
        double scale = (double)inSize / outSize;
        double position = scale * 0.5;
        var indices = new int[count];
        for (int x = 0; x < first + count; x++)
        {
            if (x >= first)
            {
                // Pillow leaves pixels that map outside the source unfilled; with whole-image boxes the
                // accumulated position cannot get there, and clamping keeps the lookup in bounds.
                int index = position < 0 ? 0 : (int)position;
                indices[x - first] = Math.Min(index, inSize - 1);
            }
            position += scale;
        }
        return indices;
    }

    private static void Nearest(in PixelSource source, CropGeometry g, int width, int height, NormalizationTable normalization, Span<float> destination)
    {
        int area = width * height;
        var columns = NearestIndices(source.Width, g.ResizedWidth, g.Left, width);
        var rows = NearestIndices(source.Height, g.ResizedHeight, g.Top, height);
        byte[] planes = ArrayPool<byte>.Shared.Rent(3 * area);
        try
        {
            var pixels = source.Pixels;
            var (ro, go, bo) = ColorOffsets(source.Layout);
            int bpp = source.BytesPerPixel;
            bool premultiplied = source.Alpha == AlphaHandling.Premultiplied;
            for (int i = 0; i < height; i++)
            {
                int rowStart = rows[i] * source.RowBytes;
                for (int j = 0; j < width; j++)
                {
                    int p = rowStart + columns[j] * bpp, o = i * width + j;
                    if (bpp == 1)
                    {
                        planes[o] = planes[area + o] = planes[2 * area + o] = pixels[p];
                    }
                    else
                    {
                        // A palette image has no alpha in Pillow's sense: convert("RGB") keeps the palette colour.
                        byte a = premultiplied ? pixels[p + 3] : (byte)255;
                        planes[o] = Unpremultiply(pixels[p + ro], a);
                        planes[area + o] = Unpremultiply(pixels[p + go], a);
                        planes[2 * area + o] = Unpremultiply(pixels[p + bo], a);
                    }
                }
            }
            normalization.WriteRgb(planes.AsSpan(0, 3 * area), area, destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(planes);
        }
    }

    private static void Bicubic(in PixelSource source, CropGeometry g, int width, int height, NormalizationTable normalization, Span<float> destination, bool bilinear = false)
    {
        int area = width * height;
        var horizontal = ResampleKernel.Create(source.Width, g.ResizedWidth, g.Left, width, bilinear);
        var vertical = ResampleKernel.Create(source.Height, g.ResizedHeight, g.Top, height, bilinear);

        // The source rows the cropped output rows read.
        int rowFirst = vertical.First[0];
        int rowEnd = 0;
        for (int i = 0; i < height; i++) rowEnd = Math.Max(rowEnd, vertical.First[i] + vertical.Count[i]);
        int rowCount = rowEnd - rowFirst;

        bool gray = source.Layout == PixelLayout.Gray8;
        bool withAlpha = source.Alpha != AlphaHandling.Ignore;
        int planeCount = gray ? 1 : withAlpha ? 4 : 3;
        var (ro, go, bo) = ColorOffsets(source.Layout);
        ReadOnlySpan<int> offsets = [ro, go, bo, 3];

        byte[]? premultiplied = null;
        byte[] temp = ArrayPool<byte>.Shared.Rent(planeCount * rowCount * width);
        byte[] output = ArrayPool<byte>.Shared.Rent(Math.Max(planeCount, 3) * area);
        try
        {
            fixed (byte* pixels = source.Pixels)
            fixed (byte* tempPtr = temp)
            fixed (byte* outputPtr = output)
            {
                byte* rows = pixels;
                int rowBytes = source.RowBytes, rowOffset = rowFirst;
                if (source.Alpha == AlphaHandling.Straight)
                {
                    // Pillow resizes RGBA as RGBa: premultiply the rows the resize reads.
                    rowBytes = source.Width * 4;
                    premultiplied = ArrayPool<byte>.Shared.Rent(rowCount * rowBytes);
                    Premultiply(source.Pixels, source.RowBytes, rowFirst, rowCount, source.Width, premultiplied);
                    rowOffset = 0;
                }
                fixed (byte* premultipliedPtr = premultiplied)
                {
                    if (premultipliedPtr != null) rows = premultipliedPtr;
                    if (gray)
                        BicubicPasses.Horizontal1(rows, rowBytes, rowOffset, rowCount, horizontal, tempPtr);
                    else
                        BicubicPasses.Horizontal4(rows, rowBytes, rowOffset, rowCount, horizontal, tempPtr, planeCount, offsets);
                }
                for (int p = 0; p < planeCount; p++)
                    BicubicPasses.Vertical(tempPtr + p * rowCount * width, width, rowFirst, vertical, outputPtr + p * area);
            }

            if (withAlpha)
            {
                // Pillow's RGBa -> RGBA, then convert("RGB") drops the alpha.
                for (int o = 0; o < area; o++)
                {
                    byte a = output[3 * area + o];
                    output[o] = Unpremultiply(output[o], a);
                    output[area + o] = Unpremultiply(output[area + o], a);
                    output[2 * area + o] = Unpremultiply(output[2 * area + o], a);
                }
            }
            if (gray)
                normalization.WriteGray(output.AsSpan(0, area), destination);
            else
                normalization.WriteRgb(output.AsSpan(0, 3 * area), area, destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(temp);
            ArrayPool<byte>.Shared.Return(output);
            if (premultiplied is not null) ArrayPool<byte>.Shared.Return(premultiplied);
        }
    }

    /// <summary>Pillow's RGBA -> RGBa: each colour times alpha / 255, rounded with its MULDIV255.</summary>
    internal static byte Premultiply(byte color, byte alpha)
    {
        int t = color * alpha + 128;
        return (byte)(((t >> 8) + t) >> 8);
    }

    /// <summary>Pillow's RGBa -> RGBA: 255 * colour / alpha, truncated and clipped; alpha 0 and 255 leave the colour alone.</summary>
    internal static byte Unpremultiply(byte color, byte alpha)
    {
        if (alpha == 255 || alpha == 0) return color;
        int v = 255 * color / alpha;
        return (byte)(v > 255 ? 255 : v);
    }

    private static void Premultiply(ReadOnlySpan<byte> pixels, int rowBytes, int rowFirst, int rowCount, int width, Span<byte> destination)
    {
        for (int r = 0; r < rowCount; r++)
        {
            var src = pixels.Slice((rowFirst + r) * rowBytes, width * 4);
            var dst = destination.Slice(r * width * 4, width * 4);
            for (int p = 0; p < dst.Length; p += 4)
            {
                byte a = src[p + 3];
                if (a == 255)
                {
                    dst[p] = src[p];
                    dst[p + 1] = src[p + 1];
                    dst[p + 2] = src[p + 2];
                }
                else
                {
                    dst[p] = Premultiply(src[p], a);
                    dst[p + 1] = Premultiply(src[p + 1], a);
                    dst[p + 2] = Premultiply(src[p + 2], a);
                }
                dst[p + 3] = a;
            }
        }
    }
}
