using System.Buffers;
using Clip.MLNet.Imaging;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>
/// CLIP's image preprocessing, exactly as the reference computes it: OpenAI CLIP's
/// <c>Resize(size, BICUBIC)</c> (torchvision on a PIL image: the shorter side becomes
/// <see cref="Size"/>), <c>CenterCrop(size)</c>, conversion to RGB, <c>ToTensor</c> and
/// <c>Normalize(mean, std)</c>. The result is a CHW float32 array of 3 x Size x Size.
/// </summary>
/// <remarks>
/// <para>
/// The resize is Pillow's, reimplemented: a separable bicubic convolution (a = -0.5) whose support
/// widens with the reduction factor, on 8-bit pixels with Pillow's 22-bit fixed-point weights and
/// a clip to bytes between the horizontal and the vertical pass. Pillow's per-mode rules inside
/// <c>resize</c> apply: palette and 1-bit images (GIF, PNG colour type 3 or 1-bit gray, palette
/// BMP) are resized with nearest neighbour; images with an alpha channel (PNG RGBA/LA, WebP with
/// alpha, 32-bit BMP with an alpha mask) through premultiplied alpha with Pillow's integer
/// rounding, the alpha then dropped; grayscale as one channel, copied to R, G and B. The result
/// matches the reference to within the JPEG decoders' differences (libjpeg-turbo in both).
/// </para>
/// <para>
/// Files are decoded with Skia (JPEG, PNG, GIF's first frame, BMP, WebP), without colour
/// management and without applying EXIF orientation, as <c>PIL.Image.open</c> does. Images above
/// <see cref="MaxPixels"/> are refused from their header, before any pixel is decoded.
/// </para>
/// <para>Instances are immutable and thread-safe: any number of threads may preprocess with one instance.</para>
/// <para>
/// Known differences from Pillow, all outside what CLIP datasets usually hold: CMYK JPEGs are
/// converted to RGB before resizing (Pillow resizes CMYK, then converts); 16-bit PNGs are reduced
/// to 8 bits by the decoder (Pillow opens 16-bit gray as mode I;16).
/// </para>
/// </remarks>
public sealed class ClipImagePreprocessor
{
    /// <summary>The per-channel mean OpenAI's CLIP normalizes with (R, G, B).</summary>
    public static readonly float[] OpenAIMean = [0.48145466f, 0.4578275f, 0.40821073f];

    /// <summary>The per-channel standard deviation OpenAI's CLIP normalizes with (R, G, B).</summary>
    public static readonly float[] OpenAIStd = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>
    /// The default <see cref="MaxPixels"/>: 178,956,970, the size at which Pillow refuses an image as a
    /// decompression bomb (twice its warning threshold), so every image the reference opens is accepted.
    /// </summary>
    public const long DefaultMaxPixels = 178_956_970;

    private readonly NormalizationTable normalization;
    private readonly long maxPixels = DefaultMaxPixels;

    /// <summary>Creates a preprocessor for <paramref name="size"/> x <paramref name="size"/> inputs.</summary>
    /// <param name="size">The model's input resolution (224 for most CLIP models, 336 or 448 for some).</param>
    /// <param name="mean">Per-channel mean (R, G, B); defaults to <see cref="OpenAIMean"/>.</param>
    /// <param name="std">Per-channel standard deviation (R, G, B); defaults to <see cref="OpenAIStd"/>.</param>
    public ClipImagePreprocessor(int size = 224, IReadOnlyList<float>? mean = null, IReadOnlyList<float>? std = null)
    {
        if (size <= 0 || size > 16384) throw new ArgumentOutOfRangeException(nameof(size), size, "the input size must be between 1 and 16384");
        mean ??= OpenAIMean;
        std ??= OpenAIStd;
        if (mean.Count != 3) throw new ArgumentException($"mean needs 3 values (R, G, B), got {mean.Count}", nameof(mean));
        if (std.Count != 3) throw new ArgumentException($"std needs 3 values (R, G, B), got {std.Count}", nameof(std));
        if (std.Any(s => !(s > 0) || float.IsInfinity(s))) throw new ArgumentException("std values must be positive and finite", nameof(std));
        if (mean.Any(m => !float.IsFinite(m))) throw new ArgumentException("mean values must be finite", nameof(mean));
        Size = size;
        Mean = Array.AsReadOnly(mean.ToArray());
        Std = Array.AsReadOnly(std.ToArray());
        normalization = new NormalizationTable(Mean, Std);
    }

    /// <summary>The resize filter (default <see cref="ClipInterpolation.Bicubic"/>, OpenAI's); palette and 1-bit images use nearest neighbour either way, as Pillow does.</summary>
    public ClipInterpolation Interpolation { get; init; } = ClipInterpolation.Bicubic;

    /// <summary>
    /// How the image is fitted to the square (default <see cref="ClipResizeMode.Shortest"/>: shorter side, then centre
    /// crop, OpenAI's). <see cref="ClipResizeMode.Squash"/> resizes to the square directly (SigLIP).
    /// <see cref="ClipResizeMode.Longest"/> fits the longer side and pads with <see cref="FillColor"/>, centred (open_clip's
    /// <c>ResizeKeepRatio</c> + <c>CenterCropOrPad</c>; a palette image is padded with the fill as a colour, where Pillow pads its palette index).
    /// </summary>
    public ClipResizeMode ResizeMode { get; init; } = ClipResizeMode.Shortest;

    /// <summary>The padding value (0-255) of <see cref="ClipResizeMode.Longest"/>.</summary>
    public byte FillColor { get; init; }

    /// <summary>The side of the square output (and of the crop).</summary>
    public int Size { get; }

    /// <summary>The per-channel mean subtracted after scaling to [0, 1] (R, G, B).</summary>
    public IReadOnlyList<float> Mean { get; }

    /// <summary>The per-channel standard deviation divided by (R, G, B).</summary>
    public IReadOnlyList<float> Std { get; }

    /// <summary>
    /// The largest image, in pixels (width x height), that is decoded; larger ones are refused with a
    /// <see cref="ClipImageException"/> from their header alone. Defaults to <see cref="DefaultMaxPixels"/>.
    /// </summary>
    public long MaxPixels
    {
        get => maxPixels;
        init => maxPixels = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxPixels), value, "the pixel limit must be positive");
    }

    /// <summary>The number of floats one image takes: 3 x <see cref="Size"/> x <see cref="Size"/>.</summary>
    public int OutputLength => 3 * Size * Size;

    /// <summary>Preprocesses the image file at <paramref name="path"/> into <paramref name="destination"/> (CHW, normalized).</summary>
    /// <exception cref="ClipImageException">The file is missing, empty, damaged, too large or not a supported image.</exception>
    public void PreprocessInto(string path, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(path);
        CheckDestination(destination);
        byte[] encoded = ReadFile(path, out int length);
        try
        {
            PreprocessEncoded(encoded.AsSpan(0, length), destination, path);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(encoded);
        }
    }

    /// <summary>
    /// Preprocesses an encoded image (the bytes of a JPEG, PNG, GIF, BMP or WebP file) into
    /// <paramref name="destination"/>. Pass a <c>byte[]</c> directly or a <c>ReadOnlyMemory&lt;byte&gt;</c>'s <c>Span</c>.
    /// </summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <param name="destination">3 x <see cref="Size"/> x <see cref="Size"/> floats, written CHW.</param>
    /// <param name="name">What to call the input in errors (default "&lt;bytes&gt;").</param>
    /// <exception cref="ClipImageException">The bytes are empty, damaged, too large or not a supported image.</exception>
    public void PreprocessInto(ReadOnlySpan<byte> encoded, Span<float> destination, string? name = null)
    {
        CheckDestination(destination);
        PreprocessEncoded(encoded, destination, name ?? "<bytes>");
    }

    /// <summary>Preprocesses the encoded image read from <paramref name="stream"/> (from its current position to its end).</summary>
    /// <param name="stream">A readable stream holding one encoded image.</param>
    /// <param name="destination">3 x <see cref="Size"/> x <see cref="Size"/> floats, written CHW.</param>
    /// <param name="name">What to call the input in errors (default: a <c>FileStream</c>'s path, else "&lt;stream&gt;").</param>
    /// <exception cref="ClipImageException">The content is empty, damaged, too large or not a supported image.</exception>
    public void PreprocessInto(Stream stream, Span<float> destination, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckDestination(destination);
        name ??= (stream as FileStream)?.Name ?? "<stream>";
        if (stream is MemoryStream memory && memory.TryGetBuffer(out var segment))
        {
            int start = (int)memory.Position;
            memory.Position = memory.Length;
            PreprocessEncoded(segment.AsSpan(start, Math.Max(0, (int)memory.Length - start)), destination, name);
            return;
        }
        byte[] encoded = ReadStream(stream, name, out int length);
        try
        {
            PreprocessEncoded(encoded.AsSpan(0, length), destination, name);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(encoded);
        }
    }

    /// <summary>
    /// Preprocesses an ML.NET <see cref="MLImage"/> (32-bit pixels, <see cref="MLPixelFormat.Bgra32"/> or
    /// <see cref="MLPixelFormat.Rgba32"/>) into <paramref name="destination"/>.
    /// </summary>
    /// <remarks>
    /// An <c>MLImage</c> is already decoded, so what its file was is lost: a palette image (GIF, palette
    /// PNG) is resized bicubically here, where the reference, reading the file, uses nearest neighbour;
    /// pass the file itself for exact results. Pixels with alpha are taken as premultiplied, which is
    /// what <c>MLImage.CreateFromFile</c>/<c>CreateFromStream</c> hold (Skia bitmaps premultiply with
    /// the same rounding as Pillow's RGBa); an image whose alpha is 255 everywhere is treated as RGB.
    /// </remarks>
    /// <param name="image">The image; it is read, not changed or disposed.</param>
    /// <param name="destination">3 x <see cref="Size"/> x <see cref="Size"/> floats, written CHW.</param>
    /// <param name="name">What to call the input in errors (default: the image's <c>Tag</c>, else "&lt;MLImage&gt;").</param>
    /// <exception cref="ClipImageException">The image has an unsupported pixel format or is too large.</exception>
    public void PreprocessInto(MLImage image, Span<float> destination, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        CheckDestination(destination);
        name ??= string.IsNullOrEmpty(image.Tag) ? "<MLImage>" : image.Tag;
        var layout = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => PixelLayout.Bgra32,
            MLPixelFormat.Rgba32 => PixelLayout.Rgba32,
            var other => throw new ClipImageException(name, $"unsupported MLImage pixel format {other} (Bgra32 or Rgba32 expected)"),
        };
        int width = image.Width, height = image.Height;
        if ((long)width * height > MaxPixels)
            throw new ClipImageException(name, $"{width}x{height} = {(long)width * height:N0} pixels is more than the limit of {MaxPixels:N0} (ClipImagePreprocessor.MaxPixels)");
        var pixels = image.Pixels;
        int rowBytes = pixels.Length / height;
        var alpha = HasTransparency(pixels, width, height, rowBytes) ? AlphaHandling.Premultiplied : AlphaHandling.Ignore;
        Run(new PixelSource(pixels, width, height, rowBytes, layout, alpha, ResizeFilter.Bicubic), destination, name);
    }

    /// <summary>Preprocesses the image file at <paramref name="path"/> into a new array of 3 x <see cref="Size"/> x <see cref="Size"/> floats.</summary>
    /// <exception cref="ClipImageException">The file is missing, empty, damaged, too large or not a supported image.</exception>
    public float[] Preprocess(string path)
    {
        var result = new float[OutputLength];
        PreprocessInto(path, result);
        return result;
    }

    /// <summary>Preprocesses an encoded image into a new array; see <see cref="PreprocessInto(ReadOnlySpan{byte}, Span{float}, string?)"/>.</summary>
    public float[] Preprocess(ReadOnlySpan<byte> encoded, string? name = null)
    {
        var result = new float[OutputLength];
        PreprocessInto(encoded, result, name);
        return result;
    }

    /// <summary>Preprocesses the encoded image in <paramref name="stream"/> into a new array; see <see cref="PreprocessInto(Stream, Span{float}, string?)"/>.</summary>
    public float[] Preprocess(Stream stream, string? name = null)
    {
        var result = new float[OutputLength];
        PreprocessInto(stream, result, name);
        return result;
    }

    /// <summary>Preprocesses an <see cref="MLImage"/> into a new array; see <see cref="PreprocessInto(MLImage, Span{float}, string?)"/>.</summary>
    public float[] Preprocess(MLImage image, string? name = null)
    {
        var result = new float[OutputLength];
        PreprocessInto(image, result, name);
        return result;
    }

    /// <summary>
    /// Preprocesses image files into one float32 tensor [N, 3, Size, Size] on the CPU, in the order
    /// given, using all cores.
    /// </summary>
    /// <exception cref="ClipImageException">An image cannot be preprocessed; the message gives its index and path (the first such image in the list).</exception>
    public Tensor PreprocessBatch(IReadOnlyList<string> paths) => PreprocessBatch(paths, maxDegreeOfParallelism: -1);

    /// <summary>
    /// Preprocesses image files into one float32 tensor [N, 3, Size, Size] on the CPU, in the order
    /// given, with at most <paramref name="maxDegreeOfParallelism"/> images at a time (-1: one per core).
    /// </summary>
    /// <exception cref="ClipImageException">An image cannot be preprocessed; the message gives its index and path (the first such image in the list).</exception>
    public unsafe Tensor PreprocessBatch(IReadOnlyList<string> paths, int maxDegreeOfParallelism)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), maxDegreeOfParallelism, "use -1 (all cores) or a positive number");
        int count = paths.Count, per = OutputLength;
        var batch = empty([count, 3, Size, Size], ScalarType.Float32);
        try
        {
            if (count == 0) return batch;
            var bytes = batch.bytes;
            fixed (byte* start = bytes)
            {
                float* data = (float*)start;
                var failures = new Exception?[count];
                Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, (i, state) =>
                {
                    if (state.ShouldExitCurrentIteration && state.LowestBreakIteration < i) return;
                    try
                    {
                        var path = paths[i] ?? throw new ArgumentNullException(nameof(paths), $"image {i} is null");
                        PreprocessInto(path, new Span<float>(data + (long)i * per, per));
                    }
                    catch (Exception e)
                    {
                        failures[i] = e;
                        state.Break();
                    }
                });
                for (int i = 0; i < count; i++)
                {
                    if (failures[i] is not { } e) continue;
                    var input = paths[i] ?? "<null>";
                    throw e is ClipImageException image
                        ? new ClipImageException(i, image.Input, image.Problem, e)
                        : new ClipImageException(i, input, e.Message, e);
                }
            }
            return batch;
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }

    private void PreprocessEncoded(ReadOnlySpan<byte> encoded, Span<float> destination, string name)
    {
        using var decoded = SkiaImageDecoder.Decode(encoded, name, MaxPixels, Size);
        Run(decoded.Source, destination, name);
    }

    private void Run(in PixelSource source, Span<float> destination, string name)
    {
        try
        {
            ClipPixelPipeline.Run(source, Size, normalization, destination, ResizeMode, Interpolation == ClipInterpolation.Bilinear, FillColor);
        }
        catch (ImageGeometryException e)
        {
            throw new ClipImageException(name, e.Message, e);
        }
    }

    private void CheckDestination(Span<float> destination)
    {
        if (destination.Length != OutputLength)
            throw new ArgumentException($"the destination holds {destination.Length} floats; 3 x {Size} x {Size} = {OutputLength} are needed", nameof(destination));
    }

    private static bool HasTransparency(ReadOnlySpan<byte> pixels, int width, int height, int rowBytes)
    {
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * rowBytes, width * 4);
            for (int p = 3; p < row.Length; p += 4)
                if (row[p] != 255) return true;
        }
        return false;
    }

    // Files are read into a pooled buffer: no per-image garbage, whatever the file size.
    private static byte[] ReadFile(string path, out int length)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            if (Directory.Exists(path)) throw new ClipImageException(path, "is a directory, not an image file");
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ClipImageException(path, "no such file", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException and not ClipImageException)
        {
            throw new ClipImageException(path, $"cannot be read: {e.Message}", e);
        }
        using (handle)
        {
            long size = RandomAccess.GetLength(handle);
            if (size == 0) throw new ClipImageException(path, "the file is empty (0 bytes)");
            if (size > Array.MaxLength) throw new ClipImageException(path, $"the file is {size:N0} bytes, too large to be read as one image");
            var buffer = ArrayPool<byte>.Shared.Rent((int)size);
            try
            {
                int read = 0;
                while (read < size)
                {
                    int n = RandomAccess.Read(handle, buffer.AsSpan(read, (int)size - read), read);
                    if (n == 0) break;
                    read += n;
                }
                length = read;
                return buffer;
            }
            catch (IOException e)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw new ClipImageException(path, $"cannot be read: {e.Message}", e);
            }
        }
    }

    private static byte[] ReadStream(Stream stream, string name, out int length)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(stream.CanSeek ? (int)Math.Clamp(stream.Length - stream.Position + 1, 1, Array.MaxLength) : 1 << 16);
        length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length == Array.MaxLength) throw new ClipImageException(name, "the stream is too large to be read as one image");
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, Array.MaxLength));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int n = stream.Read(buffer, length, buffer.Length - length);
                if (n == 0) return buffer;
                length += n;
            }
        }
        catch (Exception e)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (e is ClipImageException) throw;
            if (e is IOException or NotSupportedException or ObjectDisposedException)
                throw new ClipImageException(name, $"cannot be read: {e.Message}", e);
            throw;
        }
    }
}
