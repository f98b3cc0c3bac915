using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Training;

/// <summary>
/// Image-caption pairs for <see cref="ClipTrainer"/>: in-memory pixels with a caption function (labelled
/// datasets whose captions come from templates), image files or an ML.NET data view with a caption column.
/// </summary>
public abstract class ClipTrainingData
{
    /// <summary>
    /// The image preprocessing of the model being trained (set by the trainer; open_clip configs give their own mean,
    /// std and resize mode). Null, or another size than the one asked for: OpenAI's at that size.
    /// </summary>
    internal ClipPreprocessing? Preprocessing { get; set; }

    /// <summary>A preprocessor for <paramref name="resolution"/>: <see cref="Preprocessing"/> when it is of that size, else OpenAI's.</summary>
    internal ClipImagePreprocessor PreprocessorFor(int resolution) =>
        Preprocessing is { } p && p.Size == resolution ? p.CreatePreprocessor() : new ClipImagePreprocessor(resolution);

    private int bad;

    /// <summary>Number of pairs.</summary>
    public abstract int Count { get; }

    /// <summary>Pairs skipped so far because their image could not be read or their caption is missing.</summary>
    public int SkippedPairs => Volatile.Read(ref bad);

    /// <summary>
    /// Writes item <paramref name="index"/>'s image, preprocessed for a model of <paramref name="resolution"/>
    /// pixels, into <paramref name="pixels"/> ([3, S, S], normalized) and returns its caption. Called from several
    /// threads at once for different items.
    /// </summary>
    /// <exception cref="InvalidDataException">The image cannot be read or the caption is missing; the message names the item.</exception>
    protected internal abstract string Fill(int index, int resolution, Span<float> pixels, Random random);

    /// <summary>
    /// The positive group of item <paramref name="index"/>, or null. When every item of a batch has one, pairs of the
    /// same group count as positives of each other (for a labelled dataset whose captions are made from templates, the
    /// class: "a photo of a coat" and "a picture of a coat" then match). When null, identical captions do.
    /// </summary>
    public virtual long? PositiveGroup(int index) => null;

    /// <summary>Every caption the data can produce, for learning a vocabulary (may be a sample for generated captions).</summary>
    public abstract IEnumerable<string> CaptionCorpus();

    internal void CountSkipped() => Interlocked.Increment(ref bad);

    /// <summary>
    /// In-memory images (<paramref name="count"/> × <paramref name="height"/> × <paramref name="width"/> ×
    /// <paramref name="channels"/> bytes, channels 1 (gray) or 3 (RGB)), with captions made per draw by
    /// <paramref name="caption"/> (for example a random template filled with the item's class name).
    /// </summary>
    /// <param name="pixels">The images, row-major, channels interleaved.</param>
    /// <param name="count">Number of images.</param>
    /// <param name="height">Image height.</param>
    /// <param name="width">Image width.</param>
    /// <param name="channels">1 or 3.</param>
    /// <param name="caption">The caption of an item, drawn anew each time the item is used.</param>
    /// <param name="captionCorpus">The captions <paramref name="caption"/> can make (for learning a vocabulary).</param>
    /// <param name="positiveGroup">Optional: the item's positive group (its class), see <see cref="PositiveGroup"/>.</param>
    public static ClipTrainingData FromPixels(ReadOnlyMemory<byte> pixels, int count, int height, int width, int channels,
        Func<int, Random, string> caption, IEnumerable<string> captionCorpus, Func<int, long>? positiveGroup = null)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "Images must have 1 or 3 channels.");
        if ((long)count * height * width * channels > pixels.Length)
            throw new ArgumentException($"{count} images of {height}x{width}x{channels} need {(long)count * height * width * channels} bytes; {pixels.Length} given.", nameof(pixels));
        return new PixelData(pixels, count, height, width, channels, caption, captionCorpus.ToArray(), positiveGroup);
    }

    /// <summary>Image files with one caption each.</summary>
    public static ClipTrainingData FromFiles(IReadOnlyList<string> imagePaths, IReadOnlyList<string> captions)
    {
        if (imagePaths.Count != captions.Count) throw new ArgumentException($"{imagePaths.Count} images but {captions.Count} captions.");
        var fixedCaptions = captions.ToArray();
        return new FileData(imagePaths.ToArray(), (i, _) => fixedCaptions[i], fixedCaptions.Where(c => !string.IsNullOrEmpty(c)).ToArray(), null);
    }

    /// <summary>
    /// Training pairs from a dataset of <see cref="Data"/>'s readers. With <paramref name="templates"/> (required when the
    /// dataset has labels but no captions), each use of an image draws a random template filled with its class name,
    /// and images of the same class are positives of each other; otherwise the dataset's own captions are used.
    /// </summary>
    /// <exception cref="ArgumentException">No captions and no templates, templates without labels, or a template without <c>{}</c>.</exception>
    public static ClipTrainingData FromDataset(Data.ImageDataset dataset, IReadOnlyList<string>? templates = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        Func<int, Random, string> caption;
        string[] corpus;
        Func<int, long>? group = null;
        if (templates is { Count: > 0 })
        {
            if (!dataset.HasLabels || dataset.ClassNames is null)
                throw new ArgumentException($"Dataset '{dataset.Name}' has no labels to fill the templates with.", nameof(templates));
            foreach (var t in templates)
                if (!t.Contains("{}", StringComparison.Ordinal)) throw new ArgumentException($"The template \"{t}\" has no {{}} where the class name goes.", nameof(templates));
            var names = dataset.ClassNames.Select(Data.KnownClassNames.ToPromptName).ToArray();
            var labels = dataset.Labels!;
            var list = templates.ToArray();
            caption = (i, random) => ZeroShotPrompts.Fill(list[random.Next(list.Length)], names[labels[i]]);
            corpus = names.SelectMany(n => list.Select(t => ZeroShotPrompts.Fill(t, n))).ToArray();
            group = i => labels[i];
        }
        else
        {
            var captions = dataset.Captions ?? throw new ArgumentException(
                $"Dataset '{dataset.Name}' has no captions; give templates to make captions from its class names.", nameof(templates));
            caption = (i, _) => captions[i];
            corpus = captions.Where(c => !string.IsNullOrEmpty(c)).ToArray();
        }
        if (dataset.Raw is { } raw)
            return FromPixels(raw.AllPixels, raw.Count, raw.Height, raw.Width, raw.Channels, caption, corpus, group);
        var paths = dataset.ImagePaths ?? throw new ArgumentException($"Dataset '{dataset.Name}' has neither image files nor pixels.");
        return new FileData(paths.ToArray(), caption, corpus, group);
    }

    /// <summary>
    /// Reads an ML.NET data view's image column (file paths, encoded bytes, or MLImage) and caption column
    /// (text) once into memory (paths and bytes are kept, MLImages are kept as decoded images).
    /// </summary>
    public static ClipTrainingData FromDataView(IDataView data, string imageColumnName, string captionColumnName)
    {
        ColumnRule.Image.For("training").Check(data.Schema, imageColumnName, nameof(imageColumnName));
        ColumnRule.Text.For("training").Check(data.Schema, captionColumnName, nameof(captionColumnName));
        var imageCol = data.Schema[imageColumnName];
        var captionCol = data.Schema[captionColumnName];

        var images = new List<object?>();
        var captions = new List<string?>();
        using var cursor = data.GetRowCursor(new[] { imageCol, captionCol });
        var captionGetter = cursor.GetGetter<ReadOnlyMemory<char>>(captionCol);
        Func<object?> imageGetter = imageCol.Type switch
        {
            TextDataViewType => MakeGetter<ReadOnlyMemory<char>>(cursor, imageCol, v => v.ToString()),
            VectorDataViewType => MakeGetter<VBuffer<byte>>(cursor, imageCol, v => v.DenseValues().ToArray()),
            _ => MakeGetter<MLImage>(cursor, imageCol, v => v),
        };
        var caption = default(ReadOnlyMemory<char>);
        while (cursor.MoveNext())
        {
            images.Add(imageGetter());
            captionGetter(ref caption);
            captions.Add(caption.IsEmpty ? null : caption.ToString());
        }
        return new ViewData(images, captions, imageColumnName, captionColumnName);
    }

    private static Func<object?> MakeGetter<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, object?> convert)
    {
        var getter = cursor.GetGetter<T>(column);
        return () =>
        {
            T value = default!;   // a fresh destination each row: ML.NET's image loader disposes what it is given
            getter(ref value);
            return convert(value);
        };
    }

    private sealed class PixelData(ReadOnlyMemory<byte> pixels, int count, int height, int width, int channels,
        Func<int, Random, string> caption, string[] corpus, Func<int, long>? positiveGroup) : ClipTrainingData
    {
        private readonly ClipImagePreprocessor?[] preprocessors = new ClipImagePreprocessor?[1];

        public override int Count => count;

        public override long? PositiveGroup(int index) => positiveGroup?.Invoke(index);

        public override IEnumerable<string> CaptionCorpus() => corpus;

        protected internal override string Fill(int index, int resolution, Span<float> destination, Random random)
        {
            if ((uint)index >= (uint)count) throw new ArgumentOutOfRangeException(nameof(index));
            int per = height * width * channels;
            var src = pixels.Span.Slice(index * per, per);
            if (height == resolution && width == resolution)
            {
                // Already the model's size: CLIP's resize and crop leave the pixels as they are.
                var mean = Preprocessing is { } pp && pp.Size == resolution ? pp.Mean : ClipImagePreprocessor.OpenAIMean;
                var std = Preprocessing is { } ps && ps.Size == resolution ? ps.Std : ClipImagePreprocessor.OpenAIStd;
                int plane = resolution * resolution;
                for (int c = 0; c < 3; c++)
                {
                    int sc = channels == 1 ? 0 : c;
                    float m = mean[c], s = std[c];
                    var dst = destination.Slice(c * plane, plane);
                    for (int p = 0; p < plane; p++) dst[p] = (src[p * channels + sc] / 255f - m) / s;
                }
            }
            else
            {
                var bgra = new byte[height * width * 4];
                for (int p = 0; p < height * width; p++)
                {
                    byte r = src[p * channels], g = channels == 1 ? r : src[p * channels + 1], b = channels == 1 ? r : src[p * channels + 2];
                    bgra[p * 4] = b; bgra[p * 4 + 1] = g; bgra[p * 4 + 2] = r; bgra[p * 4 + 3] = 255;
                }
                using var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, bgra);
                Preprocessor(resolution).PreprocessInto(image, destination, $"item {index}");
            }
            return caption(index, random);
        }

        private ClipImagePreprocessor Preprocessor(int resolution)
        {
            var p = preprocessors[0];
            if (p is null || p.Size != resolution) preprocessors[0] = p = PreprocessorFor(resolution);
            return p;
        }
    }

    private sealed class FileData(string[] paths, Func<int, Random, string> captionOf, string[] corpus, Func<int, long>? positiveGroup) : ClipTrainingData
    {
        private ClipImagePreprocessor? preprocessor;

        public override int Count => paths.Length;

        public override IEnumerable<string> CaptionCorpus() => corpus;

        public override long? PositiveGroup(int index) => positiveGroup?.Invoke(index);

        protected internal override string Fill(int index, int resolution, Span<float> pixels, Random random)
        {
            var caption = captionOf(index, random);
            if (string.IsNullOrEmpty(caption)) throw new InvalidDataException($"image {index} ({paths[index]}) has no caption");
            var p = preprocessor;
            if (p is null || p.Size != resolution) preprocessor = p = PreprocessorFor(resolution);
            p.PreprocessInto(paths[index], pixels);
            return caption;
        }
    }

    private sealed class ViewData(List<object?> images, List<string?> captions, string imageColumn, string captionColumn) : ClipTrainingData
    {
        private ClipImagePreprocessor? preprocessor;

        public override int Count => images.Count;

        public override IEnumerable<string> CaptionCorpus() => captions.Where(c => c is not null)!;

        protected internal override string Fill(int index, int resolution, Span<float> pixels, Random random)
        {
            var caption = captions[index];
            if (caption is null) throw new InvalidDataException($"row {index}: column '{captionColumn}' is empty (an image without a caption)");
            var p = preprocessor;
            if (p is null || p.Size != resolution) preprocessor = p = PreprocessorFor(resolution);
            try
            {
                switch (images[index])
                {
                    case string path: p.PreprocessInto(path, pixels); break;
                    case byte[] bytes: p.PreprocessInto(bytes, pixels, $"row {index}"); break;
                    case MLImage image: p.PreprocessInto(image, pixels, image.Tag ?? $"row {index}"); break;
                    default: throw new InvalidDataException("the image is missing");
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                throw new InvalidDataException($"row {index}, column '{imageColumn}': {e.Message}", e);
            }
            return caption;
        }
    }
}
