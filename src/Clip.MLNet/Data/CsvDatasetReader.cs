using Microsoft.VisualBasic.FileIO;

namespace Clip.MLNet.Data;

/// <summary>Options of <see cref="CsvDatasetReader"/>.</summary>
public sealed class CsvDatasetOptions
{
    /// <summary>Header names tried, in order, for the image column when <see cref="ImageColumn"/> is not set.</summary>
    public static IReadOnlyList<string> ImageColumnCandidates { get; } = Array.AsReadOnly(new[] { "image", "filepath", "file", "path", "filename", "image_path" });

    /// <summary>Header names tried, in order, for the caption column when <see cref="CaptionColumn"/> is not set.</summary>
    public static IReadOnlyList<string> CaptionColumnCandidates { get; } = Array.AsReadOnly(new[] { "caption", "text", "title", "sentence" });

    /// <summary>Header names tried, in order, for the label column when <see cref="LabelColumn"/> is not set.</summary>
    public static IReadOnlyList<string> LabelColumnCandidates { get; } = Array.AsReadOnly(new[] { "label", "class", "category" });

    /// <summary>The header name of the image path column (matched ignoring case); default: the first of <see cref="ImageColumnCandidates"/> present.</summary>
    public string? ImageColumn { get; set; }

    /// <summary>The header name of the caption column; default: the first of <see cref="CaptionColumnCandidates"/> present, if any.</summary>
    public string? CaptionColumn { get; set; }

    /// <summary>The header name of the label column (class names); default: the first of <see cref="LabelColumnCandidates"/> present, if any.</summary>
    public string? LabelColumn { get; set; }

    /// <summary>The field separator; default: a tab for <c>.tsv</c> and <c>.tab</c> files, otherwise a comma.</summary>
    public char? Separator { get; set; }

    /// <summary>
    /// The class names in label order. When null, the classes are the distinct labels in sorted (ordinal) order;
    /// when given, a label not in the list is an error naming its line.
    /// </summary>
    public IReadOnlyList<string>? ClassNames { get; set; }

    /// <summary>The folder relative image paths are resolved against; default: the folder of the CSV file.</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Check that every image file exists while reading (default true), so a missing file fails at once, naming its line.</summary>
    public bool CheckFilesExist { get; set; } = true;

    /// <summary>What to call the dataset; default: the file name without its extension.</summary>
    public string? Name { get; set; }
}

/// <summary>
/// Reads a CSV or TSV file with a header row, one image per row with its caption and/or class label
/// (<c>image,caption</c> for image–text pairs: an image with several captions takes several rows). Fields
/// may be quoted (RFC 4180: <c>"a, b"</c>, <c>""</c> for a quote, line breaks inside quotes).
/// </summary>
public static class CsvDatasetReader
{
    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <returns>Rows with an <c>Image</c> path column (absolute paths) and <c>Caption</c> and/or <c>Label</c> columns.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">
    /// A malformed file: no header, a named column missing from the header, neither a caption nor a label column, no rows,
    /// or a row with no image path, no caption, no label, an unknown label or a missing image file; the message names
    /// the file and the line.
    /// </exception>
    public static ImageDataset Read(string path, CsvDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new CsvDatasetOptions();
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file.", path);
        var full = Path.GetFullPath(path);
        var folder = options.ImageFolder is { } f ? Path.GetFullPath(f) : Path.GetDirectoryName(full)!;
        char separator = options.Separator ?? (Path.GetExtension(path).ToLowerInvariant() is ".tsv" or ".tab" ? '\t' : ',');

        var text = File.ReadAllText(full, System.Text.Encoding.UTF8);
        int lastLine = text.Count(c => c == '\n') + (text.Length > 0 && text[^1] != '\n' ? 1 : 0);
        using var parser = new TextFieldParser(new StringReader(text))
        {
            TextFieldType = FieldType.Delimited,
            Delimiters = new[] { separator.ToString() },
            HasFieldsEnclosedInQuotes = true,
            TrimWhiteSpace = false,
        };

        var header = ReadRecord(parser, path, lastLine, out _) ?? throw new InvalidDataException($"{path}: empty file (a header row is expected).");
        header = header.Select(h => h.Trim()).ToArray();
        int imageCol = Column(header, options.ImageColumn, CsvDatasetOptions.ImageColumnCandidates, path, "image path", required: true);
        int captionCol = Column(header, options.CaptionColumn, CsvDatasetOptions.CaptionColumnCandidates, path, "caption", required: false);
        int labelCol = Column(header, options.LabelColumn, CsvDatasetOptions.LabelColumnCandidates, path, "label", required: false);
        if (captionCol < 0 && labelCol < 0)
            throw new InvalidDataException($"{path}: the header ({string.Join(", ", header)}) has neither a caption column ({string.Join(", ", CsvDatasetOptions.CaptionColumnCandidates)}) nor a label column ({string.Join(", ", CsvDatasetOptions.LabelColumnCandidates)}).");

        var paths = new List<string>();
        var captions = captionCol >= 0 ? new List<string>() : null;
        var labelNames = labelCol >= 0 ? new List<(string Name, long Line)>() : null;
        while (ReadRecord(parser, path, lastLine, out long line) is { } fields)
        {
            if (fields.Length == 1 && fields[0].Trim().Length == 0) continue;   // a blank line
            string Field(int col, string what) => col < fields.Length
                ? fields[col]
                : throw new InvalidDataException($"{path}, line {line}: {fields.Length} field(s), no {what} (column {col + 1}, '{header[col]}').");
            var image = Field(imageCol, "image path").Trim();
            if (image.Length == 0) throw new InvalidDataException($"{path}, line {line}: no image path (column '{header[imageCol]}').");
            var resolved = Path.GetFullPath(Path.Combine(folder, image));
            if (options.CheckFilesExist && !File.Exists(resolved))
                throw new InvalidDataException($"{path}, line {line}: the image '{image}' does not exist ({resolved}).");
            paths.Add(resolved);
            if (captions is not null)
            {
                var caption = Field(captionCol, "caption");
                if (caption.Trim().Length == 0) throw new InvalidDataException($"{path}, line {line}: the image '{image}' has no caption (column '{header[captionCol]}').");
                captions.Add(caption);
            }
            if (labelNames is not null)
            {
                var label = Field(labelCol, "label").Trim();
                if (label.Length == 0) throw new InvalidDataException($"{path}, line {line}: the image '{image}' has no label (column '{header[labelCol]}').");
                labelNames.Add((label, line));
            }
        }
        if (paths.Count == 0) throw new InvalidDataException($"{path}: no rows after the header (an empty dataset).");

        int[]? labels = null;
        IReadOnlyList<string>? classNames = null;
        if (labelNames is not null)
        {
            classNames = options.ClassNames ?? labelNames.Select(l => l.Name).Distinct().Order(StringComparer.Ordinal).ToArray();
            var index = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < classNames.Count; i++) index.TryAdd(classNames[i], i);
            labels = new int[labelNames.Count];
            for (int i = 0; i < labels.Length; i++)
                labels[i] = index.TryGetValue(labelNames[i].Name, out var c) ? c
                    : throw new InvalidDataException($"{path}, line {labelNames[i].Line}: the label '{labelNames[i].Name}' is not one of the {classNames.Count} classes.");
        }
        return ImageDataset.FromFiles(options.Name ?? Path.GetFileNameWithoutExtension(path), paths, labels, classNames, captions, full);
    }

    /// <summary>The next record and the line it starts on; null at the end of the file.</summary>
    private static string[]? ReadRecord(TextFieldParser parser, string path, int lastLine, out long line)
    {
        line = 0;
        if (parser.EndOfData) return null;
        string[]? fields;
        try
        {
            fields = parser.ReadFields();
        }
        catch (MalformedLineException e)
        {
            throw new InvalidDataException($"{path}, line {e.LineNumber}: malformed field (an unclosed or misplaced quote?).", e);
        }
        if (fields is null) return null;
        // The parser skips blank lines before a record and counts from the line after it, so the record's first
        // line is found from its last one and the line breaks inside its quoted fields.
        long end = parser.LineNumber < 0 ? lastLine : parser.LineNumber - 1;
        line = end - fields.Sum(f => f.Count(c => c == '\n'));
        return fields;
    }

    private static int Column(string[] header, string? named, IReadOnlyList<string> candidates, string path, string what, bool required)
    {
        if (named is not null)
        {
            int i = Array.FindIndex(header, h => string.Equals(h, named, StringComparison.OrdinalIgnoreCase));
            return i >= 0 ? i : throw new InvalidDataException($"{path}: no column '{named}' in the header ({string.Join(", ", header)}).");
        }
        foreach (var candidate in candidates)
        {
            int i = Array.FindIndex(header, h => string.Equals(h, candidate, StringComparison.OrdinalIgnoreCase));
            if (i >= 0) return i;
        }
        if (required)
            throw new InvalidDataException($"{path}: no {what} column in the header ({string.Join(", ", header)}); expected one of {string.Join(", ", candidates)}, or name it in the options.");
        return -1;
    }
}
