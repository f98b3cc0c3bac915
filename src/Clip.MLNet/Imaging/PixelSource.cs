namespace Clip.MLNet.Imaging;

/// <summary>How the bytes of a decoded pixel are laid out.</summary>
internal enum PixelLayout
{
    /// <summary>One byte per pixel, a gray level.</summary>
    Gray8,
    /// <summary>Four bytes per pixel: red, green, blue, alpha.</summary>
    Rgba32,
    /// <summary>Four bytes per pixel: blue, green, red, alpha (ML.NET's usual <c>MLImage</c> format).</summary>
    Bgra32,
}

/// <summary>What the alpha byte of a 4-byte pixel means for the resize.</summary>
internal enum AlphaHandling
{
    /// <summary>No alpha in the source image (Pillow modes L, RGB, P): the fourth byte is ignored.</summary>
    Ignore,
    /// <summary>Straight (unpremultiplied) alpha, Pillow's RGBA/LA: premultiplied before resizing, as Pillow does.</summary>
    Straight,
    /// <summary>Already premultiplied (Skia's bitmaps, hence <c>MLImage</c>): resized as is, unpremultiplied after.</summary>
    Premultiplied,
}

/// <summary>Which filter Pillow's resize applies to the image's mode.</summary>
internal enum ResizeFilter
{
    /// <summary>Bicubic (what CLIP asks for).</summary>
    Bicubic,
    /// <summary>Nearest neighbour: Pillow's rule for palette ("P") and 1-bit images, whatever was asked.</summary>
    Nearest,
}

/// <summary>Decoded pixels ready for <see cref="ClipPixelPipeline"/>, with the Pillow rules that apply to them.</summary>
internal readonly ref struct PixelSource
{
    public PixelSource(ReadOnlySpan<byte> pixels, int width, int height, int rowBytes, PixelLayout layout, AlphaHandling alpha, ResizeFilter filter)
    {
        int bytesPerPixel = layout == PixelLayout.Gray8 ? 1 : 4;
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"image size {width}x{height}");
        if (rowBytes < width * bytesPerPixel || pixels.Length < (long)rowBytes * (height - 1) + (long)width * bytesPerPixel)
            throw new ArgumentException($"{pixels.Length} bytes cannot hold {width}x{height} pixels with rows of {rowBytes} bytes", nameof(pixels));
        if (layout == PixelLayout.Gray8 && alpha != AlphaHandling.Ignore)
            throw new ArgumentException("gray pixels carry no alpha", nameof(alpha));
        Pixels = pixels;
        Width = width;
        Height = height;
        RowBytes = rowBytes;
        Layout = layout;
        Alpha = alpha;
        Filter = filter;
    }

    public ReadOnlySpan<byte> Pixels { get; }
    public int Width { get; }
    public int Height { get; }
    public int RowBytes { get; }
    public PixelLayout Layout { get; }
    public AlphaHandling Alpha { get; }
    public ResizeFilter Filter { get; }
    public int BytesPerPixel => Layout == PixelLayout.Gray8 ? 1 : 4;
}
