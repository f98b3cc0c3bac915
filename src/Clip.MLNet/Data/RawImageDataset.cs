using SkiaSharp;

namespace Clip.MLNet.Data;

/// <summary>
/// Small images held in memory as 8-bit pixels (MNIST, Fashion-MNIST, CIFAR, synthetic sets), with a label
/// per image. Gives a training loop direct access to the pixels (<see cref="Pixels"/>, <see cref="AllPixels"/>),
/// and the CLIP transforms a PNG-encoded image column through <see cref="ToImageDataset"/>.
/// </summary>
/// <remarks>
/// Pixels are stored image after image, each row-major, channels interleaved (H × W × C: gray, or R, G, B),
/// as a PIL image or a NumPy array holds them. Whoever feeds them to a model normalizes them: the CLIP
/// transforms go through <see cref="ClipImagePreprocessor"/> (gray replicated to R, G and B, then OpenAI's mean
/// and standard deviation), so a training loop that wants the same inputs normalizes the same way.
/// Instances are immutable.
/// </remarks>
public sealed class RawImageDataset
{
    private readonly byte[] pixels;
    private readonly int[]? labels;

    /// <summary>Creates a dataset over pixels already in memory (not copied: do not change the array afterwards).</summary>
    /// <param name="name">What to call the dataset in messages and reports.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    /// <param name="channels">1 (gray) or 3 (RGB).</param>
    /// <param name="pixels">Count × height × width × channels bytes.</param>
    /// <param name="labels">One class index per image, or null for unlabelled images.</param>
    /// <param name="classNames">The class names, in label order (required with labels).</param>
    /// <exception cref="ArgumentException">Sizes that do not agree, or a label outside the class list.</exception>
    public RawImageDataset(string name, int width, int height, int channels, byte[] pixels, int[]? labels, IReadOnlyList<string>? classNames)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(pixels);
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"{name}: image size {width}x{height} is not positive.");
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), $"{name}: {channels} channels; 1 (gray) or 3 (RGB) expected.");
        long per = (long)width * height * channels;
        if (pixels.Length % per != 0)
            throw new ArgumentException($"{name}: {pixels.Length} pixel bytes are not a whole number of {width}x{height}x{channels} images.", nameof(pixels));
        int count = (int)(pixels.Length / per);
        if (labels is not null)
        {
            if (classNames is null) throw new ArgumentException($"{name}: labels need class names.", nameof(classNames));
            if (labels.Length != count) throw new ArgumentException($"{name}: {labels.Length} labels for {count} images.", nameof(labels));
            for (int i = 0; i < labels.Length; i++)
                if ((uint)labels[i] >= (uint)classNames.Count)
                    throw new ArgumentException($"{name}: image {i} has label {labels[i]}, outside the {classNames.Count} classes.", nameof(labels));
        }
        Name = name;
        Width = width;
        Height = height;
        Channels = channels;
        Count = count;
        this.pixels = pixels;
        this.labels = labels;
        ClassNames = classNames is null ? null : Array.AsReadOnly(classNames.ToArray());
    }

    /// <summary>What to call the dataset in messages and reports.</summary>
    public string Name { get; }

    /// <summary>Number of images.</summary>
    public int Count { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>1 (gray) or 3 (RGB, interleaved).</summary>
    public int Channels { get; }

    /// <summary>Bytes per image: <see cref="Height"/> × <see cref="Width"/> × <see cref="Channels"/>.</summary>
    public int ImageBytes => Width * Height * Channels;

    /// <summary>The class names in label order; null for unlabelled images.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>Whether the images have labels.</summary>
    public bool HasLabels => labels is not null;

    /// <summary>The pixels of image <paramref name="index"/>: H × W × C bytes, row-major, channels interleaved.</summary>
    public ReadOnlySpan<byte> Pixels(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {Count} images.");
        return pixels.AsSpan(index * ImageBytes, ImageBytes);
    }

    /// <summary>All pixels, image after image (Count × H × W × C bytes), for copying whole batches at once.</summary>
    public ReadOnlyMemory<byte> AllPixels => pixels;

    /// <summary>The class index of image <paramref name="index"/>.</summary>
    /// <exception cref="InvalidOperationException">The images have no labels.</exception>
    public int Label(int index)
    {
        if (labels is null) throw new InvalidOperationException($"{Name} has no labels.");
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {Count} images.");
        return labels[index];
    }

    /// <summary>All class indices in image order; null for unlabelled images.</summary>
    public IReadOnlyList<int>? Labels => labels is null ? null : Array.AsReadOnly(labels);

    /// <summary>A new dataset of the images at <paramref name="indices"/>, in that order (pixels copied).</summary>
    public RawImageDataset Select(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        int per = ImageBytes;
        var selected = new byte[(long)indices.Count * per];
        var selectedLabels = labels is null ? null : new int[indices.Count];
        for (int i = 0; i < indices.Count; i++)
        {
            Pixels(indices[i]).CopyTo(selected.AsSpan(i * per, per));
            if (selectedLabels is not null) selectedLabels[i] = labels![indices[i]];
        }
        return new RawImageDataset(Name, Width, Height, Channels, selected, selectedLabels, ClassNames);
    }

    /// <summary>
    /// Image <paramref name="index"/> as a PNG file's bytes (gray or RGB, 8 bits): the form the CLIP transforms read
    /// from a byte-vector column, decoded back to exactly these pixels.
    /// </summary>
    public unsafe byte[] EncodePng(int index)
    {
        var source = Pixels(index);
        // Skia has no 24-bit RGB layout: RGB goes through opaque RGBA, which its PNG encoder writes as RGB.
        byte[] buffer;
        SKImageInfo info;
        if (Channels == 1)
        {
            buffer = source.ToArray();
            info = new SKImageInfo(Width, Height, SKColorType.Gray8, SKAlphaType.Opaque);
        }
        else
        {
            buffer = new byte[Width * Height * 4];
            for (int p = 0, q = 0; p < source.Length; p += 3, q += 4)
            {
                buffer[q] = source[p];
                buffer[q + 1] = source[p + 1];
                buffer[q + 2] = source[p + 2];
                buffer[q + 3] = 255;
            }
            info = new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        }
        fixed (byte* data = buffer)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)data, info.RowBytes);
            using var encoded = pixmap.Encode(SKPngEncoderOptions.Default)
                ?? throw new InvalidOperationException($"{Name}: the PNG encoder refused image {index}.");
            return encoded.ToArray();
        }
    }

    /// <summary>
    /// This dataset as an <see cref="ImageDataset"/>: an <c>Image</c> column of PNG-encoded bytes (encoded when a
    /// cursor reads the row), the <c>Label</c> key, and <paramref name="captions"/> as a <c>Caption</c> column when given.
    /// </summary>
    /// <param name="captions">One caption per image, or null.</param>
    /// <param name="source">Where the images came from, for reports (default: <see cref="Name"/>).</param>
    public ImageDataset ToImageDataset(IReadOnlyList<string>? captions = null, string? source = null) =>
        ImageDataset.FromRaw(this, captions, source);
}
