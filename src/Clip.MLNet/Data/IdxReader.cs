using System.Buffers.Binary;
using System.IO.Compression;

namespace Clip.MLNet.Data;

/// <summary>
/// Reads MNIST-style idx files: an images file (<c>*-images-idx3-ubyte</c>: magic 0x00000803, count, rows, columns,
/// then one byte per pixel) and a labels file (<c>*-labels-idx1-ubyte</c>: magic 0x00000801, count, then one byte
/// per label), each plain or gzip-compressed (<c>.gz</c>, recognised by its content). MNIST and Fashion-MNIST are
/// 28×28 gray images; other sizes are read as they are declared.
/// </summary>
public static class IdxReader
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;

    /// <summary>Reads an images file and its labels file.</summary>
    /// <param name="imagesPath">The <c>idx3-ubyte</c> images file.</param>
    /// <param name="labelsPath">The <c>idx1-ubyte</c> labels file.</param>
    /// <param name="classNames">The class names in label order; default <c>0</c> … <c>9</c> (or up to the largest label).</param>
    /// <param name="name">What to call the dataset (default: the images file's name up to <c>-images</c>).</param>
    /// <returns>Gray images (1 channel) with their labels.</returns>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A wrong magic number, a truncated or over-long file, damaged gzip, counts that differ, no images, or a label outside the class list; the message names the file.</exception>
    public static RawImageDataset Read(string imagesPath, string labelsPath, IReadOnlyList<string>? classNames = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        ArgumentNullException.ThrowIfNull(labelsPath);
        var images = ReadAll(imagesPath);
        var labelBytes = ReadAll(labelsPath);

        var imageDims = Header(images, ImagesMagic, 3, imagesPath, "images (idx3-ubyte)");
        var labelDims = Header(labelBytes, LabelsMagic, 1, labelsPath, "labels (idx1-ubyte)");
        int count = imageDims[0], rows = imageDims[1], cols = imageDims[2];
        if (rows <= 0 || cols <= 0) throw new InvalidDataException($"{imagesPath}: declares {rows}x{cols} images.");
        CheckLength(images, 16, (long)count * rows * cols, imagesPath, $"{count} images of {rows}x{cols} pixels");
        CheckLength(labelBytes, 8, labelDims[0], labelsPath, $"{labelDims[0]} labels");
        if (labelDims[0] != count)
            throw new InvalidDataException($"{labelsPath}: {labelDims[0]} labels for the {count} images of {imagesPath}.");
        if (count == 0) throw new InvalidDataException($"{imagesPath}: no images (an empty dataset).");

        var labels = new int[count];
        int maxLabel = 0;
        for (int i = 0; i < count; i++)
        {
            labels[i] = labelBytes[8 + i];
            maxLabel = Math.Max(maxLabel, labels[i]);
        }
        classNames ??= maxLabel < 10 ? KnownClassNames.Mnist
            : Enumerable.Range(0, maxLabel + 1).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        int bad = Array.FindIndex(labels, l => l >= classNames.Count);
        if (bad >= 0)
            throw new InvalidDataException($"{labelsPath}: label {bad} is {labels[bad]}, outside the {classNames.Count} classes ({string.Join(", ", classNames.Take(12))}{(classNames.Count > 12 ? ", …" : "")}).");

        var pixels = images.AsSpan(16, count * rows * cols).ToArray();
        return new RawImageDataset(name ?? DefaultName(imagesPath), cols, rows, 1, pixels, labels, classNames);
    }

    /// <summary>The whole file, gunzipped when it starts with gzip's magic bytes.</summary>
    private static byte[] ReadAll(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file.", path);
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return bytes;
        try
        {
            using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            using var output = new MemoryStream();
            gzip.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: damaged gzip data ({e.Message}).", e);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: truncated gzip data.", e);
        }
    }

    private static int[] Header(byte[] data, int magic, int dims, string path, string what)
    {
        int headerLength = 4 + 4 * dims;
        if (data.Length < 4)
            throw new InvalidDataException($"{path}: {data.Length} bytes, too short for an idx file of {what}.");
        int actual = BinaryPrimitives.ReadInt32BigEndian(data);
        if (actual != magic)
            throw new InvalidDataException($"{path}: magic number 0x{actual:X8}, not 0x{magic:X8}: not an idx file of {what}.");
        if (data.Length < headerLength)
            throw new InvalidDataException($"{path}: truncated in its header ({data.Length} bytes).");
        var sizes = new int[dims];
        for (int d = 0; d < dims; d++)
        {
            sizes[d] = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4 + 4 * d));
            if (sizes[d] < 0) throw new InvalidDataException($"{path}: negative size {sizes[d]} in its header.");
        }
        return sizes;
    }

    private static void CheckLength(byte[] data, int headerLength, long expected, string path, string what)
    {
        long actual = data.Length - headerLength;
        if (actual < expected)
            throw new InvalidDataException($"{path}: truncated: the header declares {what} ({expected:N0} bytes of data), the file holds {actual:N0}.");
        if (actual > expected)
            throw new InvalidDataException($"{path}: {actual - expected:N0} bytes after the {what} its header declares (not an idx file, or the wrong header).");
    }

    private static string DefaultName(string imagesPath)
    {
        var file = Path.GetFileName(imagesPath);
        int cut = file.IndexOf("-images", StringComparison.OrdinalIgnoreCase);
        return cut > 0 ? file[..cut] : Path.GetFileNameWithoutExtension(file);
    }

    /// <summary>
    /// Finds a split's files in a folder holding the usual names: <c>t10k-…</c> for <c>test</c>, <c>train-…</c> for
    /// <c>train</c>, each <c>-images-idx3-ubyte</c> / <c>-labels-idx1-ubyte</c> (or with a dot before <c>idx</c>), plain or <c>.gz</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks one of them (the message lists the names tried).</exception>
    public static (string Images, string Labels) FindSplit(string folder, string split)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such folder.");
        var prefix = split.ToLowerInvariant() switch
        {
            "test" or "t10k" => "t10k",
            "train" => "train",
            _ => throw new ArgumentException($"unknown split '{split}' (test or train).", nameof(split)),
        };
        string Find(string kind, string idx)
        {
            var names = new[] { $"{prefix}-{kind}-{idx}-ubyte", $"{prefix}-{kind}.{idx}-ubyte" }.SelectMany(n => new[] { n, n + ".gz" }).ToArray();
            return names.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException($"{folder}: no {split} {kind} file (tried {string.Join(", ", names)}).");
        }
        return (Find("images", "idx3"), Find("labels", "idx1"));
    }
}
