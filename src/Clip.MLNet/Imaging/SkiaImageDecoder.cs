using System.Buffers;
using SkiaSharp;

namespace Clip.MLNet.Imaging;

/// <summary>Decoded pixels in a pooled buffer, with the Pillow rules that apply to them. Dispose returns the buffer.</summary>
internal sealed class DecodedImage(byte[] buffer, int width, int height, PixelLayout layout, AlphaHandling alpha, ResizeFilter filter, ImageFormat format)
    : IDisposable
{
    private byte[]? buffer = buffer;

    public int Width { get; } = width;
    public int Height { get; } = height;
    public PixelLayout Layout { get; } = layout;
    public AlphaHandling Alpha { get; } = alpha;
    public ResizeFilter Filter { get; } = filter;
    public ImageFormat Format { get; } = format;
    public int RowBytes => Width * (Layout == PixelLayout.Gray8 ? 1 : 4);

    public PixelSource Source => new(
        (buffer ?? throw new ObjectDisposedException(nameof(DecodedImage))).AsSpan(0, RowBytes * Height),
        Width, Height, RowBytes, Layout, Alpha, Filter);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}

/// <summary>
/// Decodes encoded images with Skia's codecs into 8-bit pixels: gray images to one byte per pixel,
/// everything else to unpremultiplied RGBA, without colour management (Pillow applies no ICC
/// profile or gamma either) and without EXIF orientation (Pillow's <c>Image.open</c> does not
/// rotate, so neither does the reference; callers who want upright photos transpose first).
/// </summary>
internal static unsafe class SkiaImageDecoder
{
    /// <summary>Decodes <paramref name="encoded"/>; refuses, before decoding, images above <paramref name="maxPixels"/> or that cannot be resized to <paramref name="outputSize"/>.</summary>
    public static DecodedImage Decode(ReadOnlySpan<byte> encoded, string name, long maxPixels, int outputSize)
    {
        if (encoded.IsEmpty) throw new ClipImageException(name, "the image is empty (0 bytes)");
        var facts = ImageHeader.Read(encoded, out var problem) ?? throw new ClipImageException(name, problem!);
        string format = facts.Format.ToString().ToUpperInvariant();

        fixed (byte* data = encoded)
        {
            // Skia reads the caller's bytes in place; the codec dies before the span can move.
            using var skData = SKData.Create((IntPtr)data, encoded.Length);
            using var codec = SKCodec.Create(skData)
                ?? throw new ClipImageException(name, $"damaged or truncated {format}: the decoder cannot read its header");
            var info = codec.Info;
            long pixels = (long)info.Width * info.Height;
            if (info.Width <= 0 || info.Height <= 0)
                throw new ClipImageException(name, $"damaged {format}: it declares {info.Width}x{info.Height} pixels");
            // Refused before a byte of pixel data is decoded: a few KB can declare gigapixels.
            if (pixels > maxPixels)
                throw new ClipImageException(name, $"{info.Width}x{info.Height} = {pixels:N0} pixels is more than the limit of {maxPixels:N0} (ClipImagePreprocessor.MaxPixels)");
            try
            {
                CropGeometry.For(info.Width, info.Height, outputSize);
            }
            catch (ImageGeometryException e)
            {
                throw new ClipImageException(name, e.Message, e);
            }

            bool gray = info.ColorType == SKColorType.Gray8 && facts.Mode != PillowModeClass.RgbAlpha;
            int bytesPerPixel = gray ? 1 : 4;
            if (pixels * bytesPerPixel > Array.MaxLength)
                throw new ClipImageException(name, $"{info.Width}x{info.Height} pixels do not fit in one buffer");

            var mode = facts.Mode == PillowModeClass.FromDecoder
                ? info.AlphaType == SKAlphaType.Opaque || !facts.AlphaPossible ? PillowModeClass.Rgb : PillowModeClass.RgbAlpha
                : facts.Mode;
            var target = new SKImageInfo(info.Width, info.Height,
                gray ? SKColorType.Gray8 : SKColorType.Rgba8888,
                gray ? SKAlphaType.Opaque : SKAlphaType.Unpremul);

            int length = (int)(pixels * bytesPerPixel);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                SKCodecResult result;
                fixed (byte* pixelsPtr = buffer)
                    result = codec.GetPixels(target, (IntPtr)pixelsPtr, info.Width * bytesPerPixel, SKCodecOptions.Default);
                switch (result)
                {
                    case SKCodecResult.Success:
                        break;
                    // Skia fills what is missing and reports it; a partial photo is not the photo.
                    case SKCodecResult.IncompleteInput:
                        throw new ClipImageException(name, $"truncated {format}: the image data ends before the last row");
                    case SKCodecResult.ErrorInInput:
                        throw new ClipImageException(name, $"damaged {format}: the image data has errors");
                    default:
                        throw new ClipImageException(name, $"cannot decode this {format} ({result})");
                }
                if (facts.GifFillRgb is uint fill && !gray)
                    FillTransparent(buffer.AsSpan(0, length), fill);
                var decoded = new DecodedImage(buffer, info.Width, info.Height,
                    gray ? PixelLayout.Gray8 : PixelLayout.Rgba32,
                    mode == PillowModeClass.RgbAlpha ? AlphaHandling.Straight : AlphaHandling.Ignore,
                    mode == PillowModeClass.Palette ? ResizeFilter.Nearest : ResizeFilter.Bicubic,
                    facts.Format);
                buffer = null!;
                return decoded;
            }
            finally
            {
                if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// Pillow keeps a GIF's transparent pixels as their palette index, and <c>convert("RGB")</c>
    /// shows that index's colour; Skia makes them transparent. Every fully transparent pixel of a GIF's
    /// first frame is the transparency index (or the fill of an area the frame does not cover), so it
    /// gets that colour back.
    /// </summary>
    private static void FillTransparent(Span<byte> rgba, uint rgb)
    {
        byte r = (byte)rgb, g = (byte)(rgb >> 8), b = (byte)(rgb >> 16);
        for (int p = 3; p < rgba.Length; p += 4)
        {
            if (rgba[p] != 0) continue;
            rgba[p - 3] = r;
            rgba[p - 2] = g;
            rgba[p - 1] = b;
        }
    }
}
