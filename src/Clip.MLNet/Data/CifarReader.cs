namespace Clip.MLNet.Data;

/// <summary>Which CIFAR binary format, and which of CIFAR-100's labels.</summary>
public enum CifarVariant
{
    /// <summary>CIFAR-10: records of 1 label byte + 3,072 pixel bytes; 10 classes.</summary>
    Cifar10,
    /// <summary>CIFAR-100 with its 100 fine labels (records of coarse byte, fine byte, 3,072 pixel bytes).</summary>
    Cifar100Fine,
    /// <summary>CIFAR-100 with its 20 coarse labels (superclasses).</summary>
    Cifar100Coarse,
}

/// <summary>
/// Reads CIFAR-10 and CIFAR-100 binary batches (<c>data_batch_1.bin</c> … <c>test_batch.bin</c>; <c>train.bin</c>,
/// <c>test.bin</c>): 32×32 RGB images, stored as red, green and blue planes, given here as interleaved RGB
/// (<see cref="RawImageDataset"/>). Class names come from the metadata file beside the first batch
/// (<c>batches.meta.txt</c>, <c>fine_label_names.txt</c>, <c>coarse_label_names.txt</c>) when present, otherwise
/// from <see cref="KnownClassNames"/>.
/// </summary>
public static class CifarReader
{
    private const int Side = 32;
    private const int PlaneBytes = Side * Side;
    private const int ImageBytes = 3 * PlaneBytes;

    /// <summary>Reads the records of one or more batch files, in order.</summary>
    /// <param name="batchFiles">The <c>.bin</c> files.</param>
    /// <param name="variant">CIFAR-10, or CIFAR-100 with fine or coarse labels.</param>
    /// <param name="classNames">Class names to use instead of the metadata file's or the built-in list.</param>
    /// <param name="name">What to call the dataset (default <c>cifar10</c>, <c>cifar100</c> or <c>cifar100-coarse</c>).</param>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file whose length is not a whole number of records (truncated, or another format), an empty file, a label outside the classes, or a metadata file with the wrong number of names; the message names the file.</exception>
    public static RawImageDataset Read(IReadOnlyList<string> batchFiles, CifarVariant variant = CifarVariant.Cifar10, IReadOnlyList<string>? classNames = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(batchFiles);
        if (batchFiles.Count == 0) throw new ArgumentException("No CIFAR batch files given.", nameof(batchFiles));
        int labelBytes = variant == CifarVariant.Cifar10 ? 1 : 2;
        int labelOffset = variant == CifarVariant.Cifar100Fine ? 1 : 0;
        int record = labelBytes + ImageBytes;
        string format = variant == CifarVariant.Cifar10 ? "CIFAR-10" : "CIFAR-100";
        classNames ??= NamesBeside(batchFiles[0], variant);

        var pixels = new List<byte[]>();
        var labels = new List<int>();
        foreach (var file in batchFiles)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"{file}: no such file.", file);
            var bytes = File.ReadAllBytes(file);
            if (bytes.Length == 0) throw new InvalidDataException($"{file}: empty (no {format} records).");
            if (bytes.Length % record != 0)
                throw new InvalidDataException($"{file}: {bytes.Length:N0} bytes are not a whole number of {record:N0}-byte {format} records (truncated, or not a {format} binary batch).");
            int count = bytes.Length / record;
            var block = new byte[count * ImageBytes];
            for (int i = 0; i < count; i++)
            {
                int at = i * record;
                int label = bytes[at + labelOffset];
                if (label >= classNames.Count)
                    throw new InvalidDataException($"{file}: record {i} has label {label}, outside the {classNames.Count} classes (is this {format}{(variant == CifarVariant.Cifar10 ? "" : variant == CifarVariant.Cifar100Fine ? " with fine labels" : " with coarse labels")}?).");
                labels.Add(label);
                // Planes (R…, G…, B…) to interleaved RGB.
                var planes = bytes.AsSpan(at + labelBytes, ImageBytes);
                var target = block.AsSpan(i * ImageBytes, ImageBytes);
                for (int p = 0; p < PlaneBytes; p++)
                {
                    target[3 * p] = planes[p];
                    target[3 * p + 1] = planes[PlaneBytes + p];
                    target[3 * p + 2] = planes[2 * PlaneBytes + p];
                }
            }
            pixels.Add(block);
        }
        var all = new byte[pixels.Sum(b => (long)b.Length)];
        long offset = 0;
        foreach (var b in pixels)
        {
            b.CopyTo(all, offset);
            offset += b.Length;
        }
        name ??= variant switch { CifarVariant.Cifar10 => "cifar10", CifarVariant.Cifar100Fine => "cifar100", _ => "cifar100-coarse" };
        return new RawImageDataset(name, Side, Side, 3, all, labels.ToArray(), classNames);
    }

    /// <summary>
    /// The batch files of a split in a CIFAR folder (the extracted <c>cifar-10-batches-bin</c> or <c>cifar-100-binary</c>,
    /// or a folder holding one of them): <c>test_batch.bin</c> or <c>data_batch_*.bin</c> for CIFAR-10,
    /// <c>test.bin</c> or <c>train.bin</c> for CIFAR-100.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks the split's files.</exception>
    public static IReadOnlyList<string> FindSplit(string folder, CifarVariant variant, string split)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such folder.");
        bool ten = variant == CifarVariant.Cifar10;
        var inner = Path.Combine(folder, ten ? "cifar-10-batches-bin" : "cifar-100-binary");
        if (Directory.Exists(inner)) folder = inner;
        bool test = split.ToLowerInvariant() switch
        {
            "test" => true,
            "train" => false,
            _ => throw new ArgumentException($"unknown split '{split}' (test or train).", nameof(split)),
        };
        string[] files = ten
            ? test ? new[] { Path.Combine(folder, "test_batch.bin") }
                   : Directory.GetFiles(folder, "data_batch_*.bin").Order(StringComparer.Ordinal).ToArray()
            : new[] { Path.Combine(folder, test ? "test.bin" : "train.bin") };
        if (files.Length == 0 || !files.All(File.Exists))
            throw new FileNotFoundException($"{folder}: no CIFAR-{(ten ? "10" : "100")} {split} batch ({(ten ? test ? "test_batch.bin" : "data_batch_*.bin" : test ? "test.bin" : "train.bin")}).");
        return files;
    }

    private static IReadOnlyList<string> NamesBeside(string batchFile, CifarVariant variant)
    {
        var (file, builtIn) = variant switch
        {
            CifarVariant.Cifar10 => ("batches.meta.txt", KnownClassNames.Cifar10),
            CifarVariant.Cifar100Fine => ("fine_label_names.txt", KnownClassNames.Cifar100Fine),
            _ => ("coarse_label_names.txt", KnownClassNames.Cifar100Coarse),
        };
        var meta = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(batchFile))!, file);
        if (!File.Exists(meta)) return builtIn;
        var names = KnownClassNames.ReadFile(meta);
        if (names.Count != builtIn.Count)
            throw new InvalidDataException($"{meta}: {names.Count} class names, {builtIn.Count} expected.");
        return names;
    }
}
