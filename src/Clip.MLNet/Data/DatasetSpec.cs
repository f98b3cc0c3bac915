namespace Clip.MLNet.Data;

/// <summary>
/// A dataset named in one string, as <c>clip eval --dataset</c> takes it: <c>[NAME=]KIND:LOCATION[;KEY=VALUE]…</c>.
/// See <see cref="Grammar"/> for the kinds and keys.
/// </summary>
/// <example>
/// <code>
/// fashion-mnist:/usr/share/datasets/fashion-mnist
/// digits=mnist:/data/t10k-images-idx3-ubyte.gz,/data/t10k-labels-idx1-ubyte.gz
/// cifar100:/data/cifar-100-binary;labels=coarse
/// pets=imagefolder:/data/pets
/// flickr=csv:/data/flickr/captions.csv;image=filename;caption=sentence
/// </code>
/// </example>
public sealed class DatasetSpec
{
    /// <summary>The grammar, as <c>clip eval --help</c> shows it.</summary>
    public const string Grammar =
        "[NAME=]KIND:LOCATION[;KEY=VALUE]...  KIND and LOCATION: " +
        "imagefolder:DIR (one sub-folder per class); " +
        "csv:FILE or tsv:FILE (header row; image path column and caption and/or label column; paths relative to the file); " +
        "mnist:, fashion-mnist:, idx: DIR or IMAGES,LABELS (idx files, plain or .gz; DIR holds t10k-*/train-*); " +
        "cifar10:, cifar100: DIR or FILE[,FILE...] (binary batches). " +
        "KEYs: split=test|train (DIR locations), labels=fine|coarse (cifar100), image=COL, caption=COL, label=COL (csv column names), " +
        "classes=FILE (class names, one per line), prompts=NAME (the dataset's name in a prompts JSON; default NAME).";

    private static readonly string[] Kinds = { "imagefolder", "csv", "tsv", "idx", "mnist", "fashion-mnist", "cifar10", "cifar100" };
    private static readonly string[] Keys = { "split", "labels", "image", "caption", "label", "classes", "prompts" };

    /// <summary>The spec as written.</summary>
    public string Text { get; }

    /// <summary>The dataset's name: the <c>NAME=</c> prefix, else a default from the kind and location.</summary>
    public string Name { get; }

    /// <summary>The kind: imagefolder, csv, tsv, idx, mnist, fashion-mnist, cifar10 or cifar100.</summary>
    public string Kind { get; }

    /// <summary>The location: one folder or file, or (idx, CIFAR) a list of files.</summary>
    public IReadOnlyList<string> Locations { get; }

    /// <summary>The <c>KEY=VALUE</c> options, keys in lower case.</summary>
    public IReadOnlyDictionary<string, string> Options { get; }

    private DatasetSpec(string text, string name, string kind, IReadOnlyList<string> locations, IReadOnlyDictionary<string, string> options)
    {
        Text = text;
        Name = name;
        Kind = kind;
        Locations = locations;
        Options = options;
    }

    /// <summary>The name to look the dataset up by in a prompts JSON file: the <c>prompts</c> option, else <see cref="Name"/>.</summary>
    public string PromptsName => Options.TryGetValue("prompts", out var p) ? p : Name;

    /// <summary>Parses a spec.</summary>
    /// <exception cref="FormatException">The spec does not follow <see cref="Grammar"/>; the message says what is wrong.</exception>
    public static DatasetSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        FormatException Fail(string problem) => new($"dataset '{spec}': {problem} (expected {Grammar.Split("  ")[0]}).");
        var parts = spec.Split(';');
        var head = parts[0].Trim();
        int colon = head.IndexOf(':');
        if (colon < 0) throw Fail("no KIND: before the location");
        string? name = null;
        int equals = head.IndexOf('=');
        if (equals >= 0 && equals < colon)
        {
            name = head[..equals].Trim();
            if (name.Length == 0) throw Fail("an empty NAME before '='");
            head = head[(equals + 1)..];
            colon = head.IndexOf(':');
        }
        var kind = head[..colon].Trim().ToLowerInvariant();
        if (!Kinds.Contains(kind)) throw Fail($"unknown kind '{kind}' (known: {string.Join(", ", Kinds)})");
        var location = head[(colon + 1)..].Trim();
        if (location.Length == 0) throw Fail("no location after the kind");
        // Only the binary formats take several files; other paths are kept whole, commas and all.
        IReadOnlyList<string> locations = kind is "idx" or "mnist" or "fashion-mnist" or "cifar10" or "cifar100"
            ? location.Split(',').Select(l => l.Trim()).Where(l => l.Length > 0).ToArray()
            : new[] { location };

        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in parts.Skip(1))
        {
            if (part.Trim().Length == 0) continue;
            int eq = part.IndexOf('=');
            if (eq <= 0) throw Fail($"'{part}' is not KEY=VALUE");
            var key = part[..eq].Trim().ToLowerInvariant();
            if (!Keys.Contains(key)) throw Fail($"unknown key '{key}' (known: {string.Join(", ", Keys)})");
            var value = part[(eq + 1)..].Trim();
            if (value.Length == 0) throw Fail($"no value for '{key}'");
            options[key] = value;
        }
        if (options.TryGetValue("split", out var split) && split.ToLowerInvariant() is not ("test" or "train")) throw Fail($"split={split}: test or train expected");
        if (options.TryGetValue("labels", out var labels))
        {
            if (kind != "cifar100") throw Fail("labels= applies to cifar100 only");
            if (labels.ToLowerInvariant() is not ("fine" or "coarse")) throw Fail($"labels={labels}: fine or coarse expected");
        }
        if ((options.ContainsKey("image") || options.ContainsKey("caption") || options.ContainsKey("label")) && kind is not ("csv" or "tsv"))
            throw Fail("image=, caption= and label= apply to csv and tsv only");
        if (locations.Count > 2 && kind is "idx" or "mnist" or "fashion-mnist") throw Fail("idx files are IMAGES,LABELS (two files) or a folder");

        name ??= kind switch
        {
            "imagefolder" => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(locations[0]))),
            "csv" or "tsv" => Path.GetFileNameWithoutExtension(locations[0]),
            "cifar100" when options.TryGetValue("labels", out var l) && l.Equals("coarse", StringComparison.OrdinalIgnoreCase) => "cifar100-coarse",
            _ => kind,
        };
        return new DatasetSpec(spec, name, kind, locations, options);
    }

    /// <summary>
    /// Reads the dataset.
    /// </summary>
    /// <param name="defaultSplit">The split read from a folder location when the spec has no <c>split=</c>: <c>test</c> or <c>train</c>.</param>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="DirectoryNotFoundException">A folder is missing.</exception>
    /// <exception cref="InvalidDataException">The files are not what the kind says (the message names the file).</exception>
    public ImageDataset Load(string defaultSplit = "test")
    {
        var split = Options.TryGetValue("split", out var s) ? s.ToLowerInvariant() : defaultSplit;
        var classNames = Options.TryGetValue("classes", out var classesFile) ? KnownClassNames.ReadFile(classesFile) : null;
        var location = Locations[0];
        string source = string.Join(",", Locations);
        switch (Kind)
        {
            case "imagefolder":
            {
                var data = ImageFolderReader.Read(location, Name);
                return classNames is null ? data : WithClassNames(data, classNames, classesFile!);
            }
            case "csv":
            case "tsv":
                return CsvDatasetReader.Read(location, new CsvDatasetOptions
                {
                    Name = Name,
                    Separator = Kind == "tsv" ? '\t' : null,
                    ImageColumn = Options.GetValueOrDefault("image"),
                    CaptionColumn = Options.GetValueOrDefault("caption"),
                    LabelColumn = Options.GetValueOrDefault("label"),
                    ClassNames = classNames,
                });
            case "idx":
            case "mnist":
            case "fashion-mnist":
            {
                var (images, labels) = Locations.Count == 1
                    ? IdxReader.FindSplit(location, split)
                    : Locations.Count == 2 ? (Locations[0], Locations[1])
                    : throw new FormatException($"dataset '{Text}': idx files are IMAGES,LABELS or a folder.");
                classNames ??= Kind == "fashion-mnist" ? KnownClassNames.FashionMnist : Kind == "mnist" ? KnownClassNames.Mnist : null;
                return IdxReader.Read(images, labels, classNames, Name).ToImageDataset(source: $"{images},{labels}");
            }
            default:
            {
                var variant = Kind == "cifar10" ? CifarVariant.Cifar10
                    : Options.TryGetValue("labels", out var l) && l.Equals("coarse", StringComparison.OrdinalIgnoreCase) ? CifarVariant.Cifar100Coarse
                    : CifarVariant.Cifar100Fine;
                var files = Locations.Count == 1 && Directory.Exists(location) ? CifarReader.FindSplit(location, variant, split) : Locations;
                return CifarReader.Read(files, variant, classNames, Name).ToImageDataset(source: string.Join(",", files));
            }
        }
    }

    private static ImageDataset WithClassNames(ImageDataset data, IReadOnlyList<string> classNames, string file)
    {
        if (classNames.Count != data.ClassNames!.Count)
            throw new InvalidDataException($"{file}: {classNames.Count} class names for the {data.ClassNames.Count} classes of {data.Source}.");
        return ImageDataset.FromFiles(data.Name, data.ImagePaths!, data.Labels, classNames, data.Captions, data.Source);
    }

    /// <inheritdoc />
    public override string ToString() => Text;
}
