namespace Clip.MLNet.Imaging;

/// <summary>
/// Where CLIP's <c>Resize(n)</c> + <c>CenterCrop(n)</c> put an image, with torchvision's arithmetic:
/// the shorter side becomes n and the longer side <c>int(n * long / short)</c> (Python's true division,
/// then truncation); the crop offsets are <c>int(round((resized - n) / 2.0))</c> with Python's
/// round-half-to-even.
/// </summary>
internal readonly record struct CropGeometry(int ResizedWidth, int ResizedHeight, int Left, int Top, int Size)
{
    public static CropGeometry For(int width, int height, int size)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"image size {width}x{height}");
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        int resizedWidth, resizedHeight;
        if (width <= height)
        {
            resizedWidth = size;
            resizedHeight = LongSide(size, height, width);
        }
        else
        {
            resizedHeight = size;
            resizedWidth = LongSide(size, width, height);
        }
        return new CropGeometry(resizedWidth, resizedHeight, CropOffset(resizedWidth, size), CropOffset(resizedHeight, size), size);
    }

    /// <summary>True when the image is already at the resized size: Pillow then returns a copy, untouched.</summary>
    public bool NoResize(int width, int height) => width == ResizedWidth && height == ResizedHeight;

    // size * long is exact in a double (both far below 2^53), so the division rounds once, as Python's does.
    private static int LongSide(int size, int longSide, int shortSide)
    {
        double value = (double)((long)size * longSide) / shortSide;
        if (value >= int.MaxValue) throw new ImageGeometryException($"an aspect ratio of {longSide}:{shortSide} cannot be resized: the long side would be {value:N0} pixels");
        return (int)value;
    }

    // Math.Round's default is MidpointRounding.ToEven, Python 3's round().
    private static int CropOffset(int resized, int size) => (int)Math.Round((resized - size) / 2.0);
}

/// <summary>An image whose shape the resize cannot handle (an extreme aspect ratio); the preprocessor names the input.</summary>
internal sealed class ImageGeometryException(string problem) : Exception(problem);
