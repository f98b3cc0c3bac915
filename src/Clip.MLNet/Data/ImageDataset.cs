using System.Collections;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Data;

/// <summary>
/// A dataset of images for CLIP, read by one of the readers in this namespace: the images (file paths, or
/// pixels in memory), and per image a class label and/or a caption. <see cref="ToDataView(MLContext)"/> gives it as an
/// ML.NET <see cref="IDataView"/> whose <c>Image</c> column the CLIP transforms read directly. (Images with neither
/// labels nor captions are allowed too, for embedding.)
/// </summary>
/// <remarks>
/// <para>Columns of <see cref="ToDataView(MLContext)"/>:</para>
/// <list type="bullet">
/// <item><c>Image</c>: the absolute path of the image file (text), or for pixels in memory the image as PNG bytes
/// (a vector of bytes, encoded as the row is read).</item>
/// <item><c>Label</c>, when there are classes: a key over <see cref="ClassNames"/> (key <c>i + 1</c> is class <c>i</c>,
/// the key values are the names): the same keys <c>ClipZeroShot</c> predicts when given the same class names,
/// and what ML.NET's multiclass trainers and <c>Evaluate</c> take.</item>
/// <item><c>Caption</c>, when there are captions: text. A captioned image with several captions appears on
/// several rows with the same <c>Image</c>.</item>
/// </list>
/// <para>Rows are held in memory (paths, labels, captions; small images as pixels), so subsets are cheap.</para>
/// </remarks>
public sealed class ImageDataset
{
    /// <summary>The image column's name.</summary>
    public const string ImageColumnName = "Image";

    /// <summary>The label column's name (a key over <see cref="ClassNames"/>).</summary>
    public const string LabelColumnName = "Label";

    /// <summary>The caption column's name.</summary>
    public const string CaptionColumnName = "Caption";

    private readonly string[]? paths;
    private readonly RawImageDataset? raw;
    private readonly int[]? labels;
    private readonly string[]? captions;

    private ImageDataset(string name, string source, string[]? paths, RawImageDataset? raw, int[]? labels, IReadOnlyList<string>? classNames, string[]? captions)
    {
        Name = name;
        Source = source;
        this.paths = paths;
        this.raw = raw;
        this.labels = labels;
        this.captions = captions;
        ClassNames = classNames is null ? null : Array.AsReadOnly(classNames.ToArray());
        Count = paths?.Length ?? raw!.Count;
    }

    /// <summary>
    /// A dataset of image files.
    /// </summary>
    /// <param name="name">What to call the dataset in messages and reports.</param>
    /// <param name="imagePaths">One path per row (kept as given; readers pass absolute paths).</param>
    /// <param name="labels">One class index per row, or null.</param>
    /// <param name="classNames">The class names in label order (required with labels).</param>
    /// <param name="captions">One caption per row, or null.</param>
    /// <param name="source">Where the rows came from, for reports (default: <paramref name="name"/>).</param>
    /// <exception cref="ArgumentException">Lists of different lengths, an empty path, or a label outside the class list.</exception>
    public static ImageDataset FromFiles(string name, IReadOnlyList<string> imagePaths, IReadOnlyList<int>? labels = null,
        IReadOnlyList<string>? classNames = null, IReadOnlyList<string>? captions = null, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(imagePaths);
        var p = imagePaths.ToArray();
        for (int i = 0; i < p.Length; i++)
            if (string.IsNullOrEmpty(p[i])) throw new ArgumentException($"{name}: row {i} has no image path.", nameof(imagePaths));
        var (l, c) = CheckRows(name, p.Length, labels, classNames, captions);
        return new ImageDataset(name, source ?? name, p, null, l, classNames, c);
    }

    /// <summary>A dataset of images in memory (see <see cref="RawImageDataset.ToImageDataset"/>).</summary>
    public static ImageDataset FromRaw(RawImageDataset raw, IReadOnlyList<string>? captions = null, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(raw);
        var (l, c) = CheckRows(raw.Name, raw.Count, raw.Labels, raw.ClassNames, captions);
        return new ImageDataset(raw.Name, source ?? raw.Name, null, raw, l, raw.ClassNames, c);
    }

    private static (int[]? Labels, string[]? Captions) CheckRows(string name, int count, IReadOnlyList<int>? labels, IReadOnlyList<string>? classNames, IReadOnlyList<string>? captions)
    {
        if (labels is not null)
        {
            if (classNames is null || classNames.Count == 0) throw new ArgumentException($"{name}: labels need class names.", nameof(classNames));
            if (labels.Count != count) throw new ArgumentException($"{name}: {labels.Count} labels for {count} images.", nameof(labels));
            for (int i = 0; i < labels.Count; i++)
                if ((uint)labels[i] >= (uint)classNames.Count)
                    throw new ArgumentException($"{name}: row {i} has label {labels[i]}, outside the {classNames.Count} classes.", nameof(labels));
        }
        if (captions is not null)
        {
            if (captions.Count != count) throw new ArgumentException($"{name}: {captions.Count} captions for {count} images.", nameof(captions));
            for (int i = 0; i < captions.Count; i++)
                if (captions[i] is null) throw new ArgumentException($"{name}: row {i} has no caption.", nameof(captions));
        }
        return (labels?.ToArray(), captions?.ToArray());
    }

    /// <summary>What to call the dataset in messages and reports.</summary>
    public string Name { get; }

    /// <summary>Where the rows came from (a folder, a file, several files), for reports.</summary>
    public string Source { get; }

    /// <summary>Number of rows.</summary>
    public int Count { get; }

    /// <summary>The class names in label order; null when the rows have no labels.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>The class index of each row; null when the rows have no labels.</summary>
    public IReadOnlyList<int>? Labels => labels is null ? null : Array.AsReadOnly(labels);

    /// <summary>The caption of each row; null when the rows have no captions.</summary>
    public IReadOnlyList<string>? Captions => captions is null ? null : Array.AsReadOnly(captions);

    /// <summary>The image path of each row; null when the images are in memory (<see cref="Raw"/>).</summary>
    public IReadOnlyList<string>? ImagePaths => paths is null ? null : Array.AsReadOnly(paths);

    /// <summary>The pixels, when the images are in memory; null for image files.</summary>
    public RawImageDataset? Raw => raw;

    /// <summary>Whether the rows have class labels.</summary>
    public bool HasLabels => labels is not null;

    /// <summary>Whether the rows have captions.</summary>
    public bool HasCaptions => captions is not null;

    /// <summary>The rows at <paramref name="rows"/>, in that order.</summary>
    public ImageDataset Subset(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        foreach (var r in rows)
            if ((uint)r >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(rows), r, $"{Name} has {Count} rows.");
        var c = captions is null ? null : rows.Select(r => captions[r]).ToArray();
        if (raw is not null)
        {
            var selected = raw.Select(rows);
            return new ImageDataset(Name, Source, null, selected, selected.Labels?.ToArray(), ClassNames, c);
        }
        return new ImageDataset(Name, Source, rows.Select(r => paths![r]).ToArray(), null,
            labels is null ? null : rows.Select(r => labels[r]).ToArray(), ClassNames, c);
    }

    /// <summary>
    /// At most <paramref name="maxCount"/> rows drawn at random (seeded), kept in their original order. Random rather than
    /// the first rows, because readers such as <see cref="ImageFolderReader"/> list rows class by class.
    /// </summary>
    public ImageDataset Sample(int maxCount, int seed = 0)
    {
        if (maxCount < 0) throw new ArgumentOutOfRangeException(nameof(maxCount), maxCount, "must not be negative");
        if (maxCount >= Count) return this;
        var order = Shuffled(Count, seed);
        var rows = order.Take(maxCount).ToArray();
        Array.Sort(rows);
        return Subset(rows);
    }

    /// <summary>
    /// Splits the rows at random (seeded) into two parts, the first with <paramref name="firstFraction"/> of them
    /// (rounded, at least one row in each part when there are two or more), each in the original order.
    /// </summary>
    public (ImageDataset First, ImageDataset Second) Split(double firstFraction, int seed = 0)
    {
        if (!(firstFraction > 0 && firstFraction < 1)) throw new ArgumentOutOfRangeException(nameof(firstFraction), firstFraction, "must be between 0 and 1");
        if (Count < 2) throw new InvalidOperationException($"{Name}: {Count} row(s) cannot be split in two.");
        int first = Math.Clamp((int)Math.Round(Count * firstFraction), 1, Count - 1);
        var order = Shuffled(Count, seed);
        var a = order.Take(first).ToArray();
        var b = order.Skip(first).ToArray();
        Array.Sort(a);
        Array.Sort(b);
        return (Subset(a), Subset(b));
    }

    /// <summary>0 … <paramref name="count"/>−1 in a seeded random order (the same for the same seed on every platform).</summary>
    internal static int[] Shuffled(int count, int seed)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        return order;
    }

    /// <summary>The rows as an ML.NET data view with the columns described on <see cref="ImageDataset"/>.</summary>
    public IDataView ToDataView(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return ToDataView(mlContext.Data);
    }

    /// <summary>The rows as a data view made through <paramref name="data"/> (<c>mlContext.Data</c>).</summary>
    public IDataView ToDataView(DataOperationsCatalog data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return raw is null
            ? data.LoadFromEnumerable(new LazyRows<DatasetRows.PathRow>(Count, i => new DatasetRows.PathRow { Image = paths![i], Label = KeyOf(i), Caption = captions?[i] ?? "" }), Schema(typeof(DatasetRows.PathRow)))
            : data.LoadFromEnumerable(new LazyRows<DatasetRows.BytesRow>(Count, i => new DatasetRows.BytesRow { Image = raw.EncodePng(i), Label = KeyOf(i), Caption = captions?[i] ?? "" }), Schema(typeof(DatasetRows.BytesRow)));
    }

    // LoadFromEnumerable takes a key member as the 0-based index and adds the 1 itself (0 is the missing key).
    private uint KeyOf(int row) => labels is null ? 0 : (uint)labels[row];

    private SchemaDefinition Schema(Type rowType)
    {
        var schema = SchemaDefinition.Create(rowType);
        if (labels is null) schema.Remove(schema[LabelColumnName]);
        else
        {
            var label = schema[LabelColumnName];
            label.ColumnType = new KeyDataViewType(typeof(uint), ClassNames!.Count);
            var names = new VBuffer<ReadOnlyMemory<char>>(ClassNames.Count, ClassNames.Select(n => n.AsMemory()).ToArray());
            label.AddAnnotation(Batching.AnnotationKinds.KeyValues, names, new VectorDataViewType(TextDataViewType.Instance, ClassNames.Count));
        }
        if (captions is null) schema.Remove(schema[CaptionColumnName]);
        return schema;
    }

    /// <summary>
    /// Rows made when enumerated (PNG encoding happens as a cursor reads), and a collection so that the data
    /// view knows its row count.
    /// </summary>
    private sealed class LazyRows<T>(int count, Func<int, T> make) : ICollection<T>
    {
        public int Count => count;
        public bool IsReadOnly => true;

        public IEnumerator<T> GetEnumerator()
        {
            for (int i = 0; i < count; i++) yield return make(i);
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        public void Add(T item) => throw new NotSupportedException();
        public void Clear() => throw new NotSupportedException();
        public bool Contains(T item) => throw new NotSupportedException();
        public void CopyTo(T[] array, int arrayIndex) => throw new NotSupportedException();
        public bool Remove(T item) => throw new NotSupportedException();
    }
}

/// <summary>Row types for <c>LoadFromEnumerable</c> (public members: ML.NET reads them by reflection).</summary>
internal static class DatasetRows
{
    public sealed class PathRow
    {
        public string Image { get; set; } = "";
        public uint Label { get; set; }
        public string Caption { get; set; } = "";
    }

    public sealed class BytesRow
    {
        public byte[] Image { get; set; } = [];
        public uint Label { get; set; }
        public string Caption { get; set; } = "";
    }
}
