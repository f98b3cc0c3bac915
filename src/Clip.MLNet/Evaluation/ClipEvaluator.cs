using System.Diagnostics;
using Clip.MLNet.Data;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Evaluation;

/// <summary>
/// Evaluates a CLIP model on datasets, as the CLIP paper's tables do: zero-shot classification, a linear probe on
/// frozen image embeddings, and image–text retrieval. Images and texts go through the batched ML.NET transforms
/// (<c>ClipImageEmbedding</c>, <c>ClipTextEmbedding</c>); each image is embedded once and its embedding serves every task.
/// </summary>
/// <remarks>
/// Zero-shot scores are the <see cref="ZeroShotClassifier"/>'s probabilities of those embeddings, which is what
/// <c>ClipZeroShot</c> computes. The probe fits on the unnormalized embeddings (as the paper); retrieval ranks by cosine
/// similarity. Rows of a captioned dataset that share an image path are one image with several captions.
/// </remarks>
public sealed class ClipEvaluator
{
    private readonly ClipModel model;
    private readonly ClipTokenizer? tokenizer;
    private readonly MLContext ml;

    /// <summary>Creates an evaluator for <paramref name="model"/> (not owned).</summary>
    /// <param name="model">The model.</param>
    /// <param name="tokenizer">Its tokenizer; the model's own when null. Needed for zero-shot and retrieval only.</param>
    /// <param name="mlContext">The ML.NET context (a new one when null).</param>
    public ClipEvaluator(ClipModel model, ClipTokenizer? tokenizer = null, MLContext? mlContext = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.tokenizer = tokenizer ?? model.Tokenizer;
        ml = mlContext ?? new MLContext(seed: 0);
    }

    /// <summary>Evaluates every dataset and gathers the results.</summary>
    /// <param name="datasets">The datasets, with their probe training splits and prompts.</param>
    /// <param name="options">Tasks, limits, prompts and probe settings (defaults when null).</param>
    /// <param name="progress">Progress of each step, as it goes.</param>
    /// <param name="cancellationToken">Checked between batches and between probe fits.</param>
    /// <param name="modelDescription">What to call the model in the report (default: its architecture).</param>
    public EvaluationReport Evaluate(IEnumerable<EvaluationDataset> datasets, EvaluationOptions? options = null,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default, string? modelDescription = null)
    {
        ArgumentNullException.ThrowIfNull(datasets);
        options ??= new EvaluationOptions();
        var results = datasets.Select(d => Evaluate(d, options, progress, cancellationToken)).ToList();
        return new EvaluationReport(modelDescription ?? model.Config.Describe(), options.Tasks, results);
    }

    /// <summary>Evaluates one dataset.</summary>
    public DatasetEvaluation Evaluate(EvaluationDataset dataset, EvaluationOptions? options = null,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        options ??= new EvaluationOptions();
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), "BatchSize must be positive.");
        var clock = Stopwatch.StartNew();
        var name = dataset.Name;
        var notes = new List<string>();
        var test = Limit(dataset.Test, options.MaxItems, options.Seed);
        if (test.Count == 0) throw new InvalidDataException($"{name}: no rows to evaluate (an empty dataset).");
        if (test.Count < dataset.Test.Count) notes.Add($"{test.Count} of {dataset.Test.Count} rows, drawn at random (seed {options.Seed})");

        bool zeroShot = options.Tasks.HasFlag(EvaluationTasks.ZeroShot) && test.HasLabels;
        bool probe = options.Tasks.HasFlag(EvaluationTasks.LinearProbe) && test.HasLabels;
        bool retrieval = options.Tasks.HasFlag(EvaluationTasks.Retrieval) && test.HasCaptions;
        if (!zeroShot && !probe && !retrieval)
            throw new InvalidDataException($"{name}: none of the tasks asked for ({options.Tasks}) applies: it has {(test.HasLabels ? "labels" : "no labels")} and {(test.HasCaptions ? "captions" : "no captions")}.");
        var textTokenizer = zeroShot || retrieval ? TokenizerFor(name) : null;

        // Each distinct image once; rows point at their image.
        var (images, imageOfRow) = DistinctImages(test);
        var features = EmbedImages(images, name, "images", options, progress, cancellationToken);
        var rowFeatures = imageOfRow.Select(i => features[i]).ToArray();

        ClassificationResult? zeroShotResult = null;
        int templateCount = 0;
        if (zeroShot)
        {
            var prompts = PromptsFor(dataset, test, options);
            templateCount = prompts.Templates.Count;
            progress?.Report(new EvaluationProgress(name, "zero-shot prompts", 0, prompts.Classes.Sum(c => c.Count) * prompts.Templates.Count));
            var scores = ZeroShotScores(prompts, textTokenizer!, rowFeatures);
            zeroShotResult = ClassificationMetrics.Evaluate(scores, test.Labels!);
            progress?.Report(new EvaluationProgress(name, "zero-shot", test.Count, test.Count));
        }

        LinearProbeResult? probeResult = null;
        if (probe)
            probeResult = RunProbe(dataset, test, rowFeatures, options, notes, progress, cancellationToken);

        RetrievalResult? retrievalResult = null;
        if (retrieval)
        {
            var captions = test.Captions!;
            var textFeatures = EmbedTexts(captions, textTokenizer!, name, options, progress, cancellationToken);
            using var scope = NewDisposeScope();
            retrievalResult = RetrievalMetrics.Evaluate(ToTensor(features), ToTensor(textFeatures), imageOfRow, options.RecallKs);
        }

        return new DatasetEvaluation(name, test.Source, test.Count, images.Count, test.ClassNames?.Count,
            zeroShotResult, templateCount, probeResult, retrievalResult, clock.Elapsed.TotalSeconds, notes);
    }

    /// <summary>
    /// The image embeddings of every row of <paramref name="data"/> (unnormalized unless <paramref name="normalize"/>),
    /// computed by the <c>ClipImageEmbedding</c> transform in batches.
    /// </summary>
    public float[][] EmbedImages(ImageDataset data, EvaluationOptions? options = null, bool normalize = false,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        EmbedImages(data, data.Name, "images", options ?? new EvaluationOptions(), progress, cancellationToken, normalize);

    private float[][] EmbedImages(ImageDataset data, string name, string step, EvaluationOptions options,
        IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken, bool normalize = false)
    {
        var view = data.ToDataView(ml);
        using var transformer = ml.Transforms.ClipImageEmbedding(model, new ClipImageEmbeddingEstimator.Options
        {
            OutputColumnName = "Features",
            InputColumnName = ImageDataset.ImageColumnName,
            Normalize = normalize,
            BatchSize = options.BatchSize,
            PreprocessThreads = options.PreprocessThreads,
        }).Fit(view);
        return ReadVectors(transformer.Transform(view), data.Count, name, step, options.BatchSize, progress, cancellationToken);
    }

    private float[][] EmbedTexts(IReadOnlyList<string> texts, ClipTokenizer textTokenizer, string name, EvaluationOptions options,
        IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken)
    {
        var view = ml.Data.LoadFromEnumerable(texts.Select(t => new TextRow { Text = t }).ToList());
        using var transformer = ml.Transforms.ClipTextEmbedding(model, new ClipTextEmbeddingEstimator.Options
        {
            OutputColumnName = "Features",
            InputColumnName = "Text",
            Normalize = false,
            BatchSize = Math.Max(options.BatchSize, 64),
            Tokenizer = textTokenizer,
        }).Fit(view);
        return ReadVectors(transformer.Transform(view), texts.Count, name, "captions", Math.Max(options.BatchSize, 64), progress, cancellationToken);
    }

    private static float[][] ReadVectors(IDataView view, int count, string name, string step, int batch,
        IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken)
    {
        var column = view.Schema["Features"];
        var rows = new float[count][];
        using var cursor = view.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var value = default(VBuffer<float>);
        int i = 0;
        progress?.Report(new EvaluationProgress(name, step, 0, count));
        while (cursor.MoveNext())
        {
            cancellationToken.ThrowIfCancellationRequested();
            getter(ref value);
            rows[i++] = value.DenseValues().ToArray();
            if (i % batch == 0 || i == count) progress?.Report(new EvaluationProgress(name, step, i, count));
        }
        if (i != count) throw new InvalidOperationException($"{name}: {i} embeddings for {count} rows.");
        return rows;
    }

    /// <summary>The zero-shot prompts of a dataset: its own, or its class names with the options' templates.</summary>
    private static ZeroShotPrompts PromptsFor(EvaluationDataset dataset, ImageDataset test, EvaluationOptions options)
    {
        var prompts = dataset.Prompts
            ?? new ZeroShotPrompts(test.ClassNames!.Select(KnownClassNames.ToPromptName), options.Templates ?? ZeroShotPrompts.NameOnly);
        if (prompts.Classes.Count != test.ClassNames!.Count)
            throw new InvalidDataException($"{dataset.Name}: the prompts have {prompts.Classes.Count} classes, the dataset {test.ClassNames.Count} ({test.Source}).");
        return prompts;
    }

    private float[][] ZeroShotScores(ZeroShotPrompts prompts, ClipTokenizer textTokenizer, float[][] features)
    {
        using var classifier = ZeroShotClassifier.Create(model, textTokenizer, prompts);
        var scores = new float[features.Length][];
        const int block = 1024;
        for (int start = 0; start < features.Length; start += block)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(block, features.Length - start);
            var probabilities = classifier.Probabilities(ToTensor(features.AsSpan(start, n))).cpu().contiguous();
            var values = probabilities.data<float>().ToArray();
            int c = classifier.ClassCount;
            for (int i = 0; i < n; i++) scores[start + i] = values.AsSpan(i * c, c).ToArray();
        }
        return scores;
    }

    private LinearProbeResult RunProbe(EvaluationDataset dataset, ImageDataset test, float[][] testFeatures, EvaluationOptions options,
        List<string> notes, IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken)
    {
        var name = dataset.Name;
        var testLabels = test.Labels!;
        IReadOnlyList<float[]> trainFeatures, scoreFeatures;
        IReadOnlyList<int> trainLabels, scoreLabels;
        if (dataset.Train is { } trainSet)
        {
            if (!trainSet.HasLabels) throw new InvalidDataException($"{name}: the training split ({trainSet.Source}) has no labels.");
            if (!trainSet.ClassNames!.SequenceEqual(test.ClassNames!))
                throw new InvalidDataException($"{name}: the training split's {trainSet.ClassNames!.Count} classes ({trainSet.Source}) are not the evaluated set's {test.ClassNames!.Count} ({test.Source}).");
            var train = trainSet.Sample(options.MaxTrainItems ?? int.MaxValue, options.Seed);
            if (train.Count < trainSet.Count) notes.Add($"probe fitted on {train.Count} of {trainSet.Count} training rows, drawn at random");
            trainFeatures = EmbedImages(train, name, "training images", options, progress, cancellationToken);
            trainLabels = train.Labels!;
            scoreFeatures = testFeatures;
            scoreLabels = testLabels;
        }
        else
        {
            if (test.Count < 3) throw new InvalidDataException($"{name}: {test.Count} rows are too few to fit a linear probe on part of them; give a training split.");
            var order = ImageDataset.Shuffled(test.Count, options.Seed);
            int fit = Math.Clamp((int)Math.Round(test.Count * options.ProbeTrainFraction), 2, test.Count - 1);
            var fitRows = order.Take(fit).Order().ToArray();
            var scoreRows = order.Skip(fit).Order().ToArray();
            trainFeatures = fitRows.Select(r => testFeatures[r]).ToArray();
            trainLabels = fitRows.Select(r => testLabels[r]).ToArray();
            scoreFeatures = scoreRows.Select(r => testFeatures[r]).ToArray();
            scoreLabels = scoreRows.Select(r => testLabels[r]).ToArray();
            notes.Add($"no training split: probe fitted on {fit} of the {test.Count} evaluated rows and scored on the other {test.Count - fit}");
        }
        var probeOptions = options.LinearProbe;
        // Synchronous progress: Progress<T> would post to the thread pool and report out of order.
        IProgress<string>? probeProgress = progress is null ? null : new InlineProgress<string>(s => progress.Report(new EvaluationProgress(name, "linear probe: " + s, 0, null)));
        return LinearProbe.Run(trainFeatures, trainLabels, scoreFeatures, scoreLabels, test.ClassNames!.Count, probeOptions, ml, probeProgress, cancellationToken);
    }

    /// <summary>The rows limited to <paramref name="max"/> items: rows, or for captioned image files, images with all their captions.</summary>
    private static ImageDataset Limit(ImageDataset data, int? max, int seed)
    {
        if (max is not { } m || m >= data.Count) return data;
        if (m <= 0) throw new ArgumentOutOfRangeException(nameof(max), m, "MaxItems must be positive.");
        if (!data.HasCaptions || data.ImagePaths is null) return data.Sample(m, seed);
        var paths = data.ImagePaths;
        var distinct = paths.Distinct(StringComparer.Ordinal).ToArray();
        if (m >= distinct.Length) return data;
        var keep = new HashSet<string>(ImageDataset.Shuffled(distinct.Length, seed).Take(m).Select(i => distinct[i]), StringComparer.Ordinal);
        return data.Subset(Enumerable.Range(0, data.Count).Where(r => keep.Contains(paths[r])).ToArray());
    }

    /// <summary>The distinct images of a dataset (by path; images in memory are each their own) and, per row, its image.</summary>
    private static (ImageDataset Images, int[] ImageOfRow) DistinctImages(ImageDataset data)
    {
        if (data.ImagePaths is not { } paths) return (data, Enumerable.Range(0, data.Count).ToArray());
        var (distinct, indexOf) = DistinctValues.Of(paths, StringComparer.Ordinal);
        var imageOfRow = Array.ConvertAll(indexOf, i => (int)i);
        return distinct.Count == paths.Count ? (data, imageOfRow) : (ImageDataset.FromFiles(data.Name, distinct, source: data.Source), imageOfRow);
    }

    private ClipTokenizer TokenizerFor(string name) => tokenizer ?? throw new ArgumentException(
        $"{name}: zero-shot and retrieval need a tokenizer and the model carries none: pass one (ClipTokenizer.Load(\"bpe_simple_vocab_16e6.txt.gz\"); --vocab on the command line).");

    private static Tensor ToTensor(ReadOnlySpan<float[]> rows)
    {
        int d = rows.Length == 0 ? 0 : rows[0].Length;
        var flat = new float[(long)rows.Length * d];
        for (int i = 0; i < rows.Length; i++) rows[i].CopyTo(flat, (long)i * d);
        return torch.tensor(flat, new long[] { rows.Length, d });
    }

    private static Tensor ToTensor(float[][] rows) => ToTensor(rows.AsSpan());

    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>A text row for <c>LoadFromEnumerable</c> (public members: ML.NET reads them by reflection).</summary>
internal sealed class TextRow
{
    public string Text { get; set; } = "";
}
