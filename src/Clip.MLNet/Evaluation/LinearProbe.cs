using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace Clip.MLNet.Evaluation;

/// <summary>Options of <see cref="LinearProbe"/>.</summary>
public sealed class LinearProbeOptions
{
    /// <summary>
    /// The L2 strengths to try. When null (default), the CLIP paper's search: 10⁻⁶, 10⁻⁴, …, 10⁶, then halving the
    /// step around the best value (1, ½, ¼, ⅛ of a decade) until it reaches 8 steps per decade. One value: no search
    /// and no validation split.
    /// </summary>
    public IReadOnlyList<double>? L2Values { get; set; }

    /// <summary>The fraction of the training rows held out to choose the L2 strength (default 0.2).</summary>
    public double ValidationFraction { get; set; } = 0.2;

    /// <summary>
    /// Refit on the training and validation rows together with the chosen L2 strength before scoring the test rows
    /// (default true), as the CLIP paper does; false keeps the model fitted on the training rows alone.
    /// </summary>
    public bool RefitOnAllTrainingRows { get; set; } = true;

    /// <summary>L-BFGS iterations at most per fit (default 1,000, scikit-learn's limit in the paper's probe).</summary>
    public int MaximumIterations { get; set; } = 1000;

    /// <summary>L-BFGS convergence tolerance (ML.NET's default 1e-7).</summary>
    public float OptimizationTolerance { get; set; } = 1e-7f;

    /// <summary>Seed of the validation split.</summary>
    public int Seed { get; set; }

    /// <summary>Threads of the trainer (null: ML.NET's default, all cores).</summary>
    public int? Threads { get; set; }
}

/// <summary>The outcome of <see cref="LinearProbe.Run"/>.</summary>
public sealed class LinearProbeResult
{
    /// <summary>Accuracy on the test rows.</summary>
    public ClassificationResult Test { get; }

    /// <summary>The L2 strength chosen (ML.NET's <c>L2Regularization</c>, which here equals the paper's λ = 1/C of scikit-learn).</summary>
    public double L2 { get; }

    /// <summary>Each L2 strength tried, with its validation accuracy, in the order tried (empty when one value was given).</summary>
    public IReadOnlyList<LinearProbeTrial> Sweep { get; }

    /// <summary>Rows the L2 search trained on (all training rows when there was no search).</summary>
    public int TrainCount { get; }

    /// <summary>Rows held out to choose the L2 strength (0 when there was no search).</summary>
    public int ValidationCount { get; }

    internal LinearProbeResult(ClassificationResult test, double l2, IReadOnlyList<LinearProbeTrial> sweep, int trainCount, int validationCount)
    {
        Test = test;
        L2 = l2;
        Sweep = sweep;
        TrainCount = trainCount;
        ValidationCount = validationCount;
    }
}

/// <summary>One L2 strength of the search, with its top-1 accuracy on the validation rows.</summary>
public sealed record LinearProbeTrial(double L2, double ValidationTop1);

/// <summary>
/// The CLIP paper's linear probe: multinomial logistic regression on frozen image features, with ML.NET's
/// <see cref="LbfgsMaximumEntropyMulticlassTrainer"/>. The L2 strength is chosen on a validation split of the
/// training rows (top-1 accuracy; among equal accuracies the stronger regularization), then, as in the paper,
/// the model is refitted on training and validation rows together and scored once on the test rows.
/// </summary>
/// <remarks>
/// ML.NET minimizes (Σ log-loss + ½ λ ‖W‖²) / n over the rows, so its <c>L2Regularization</c> λ is scikit-learn's
/// 1/C, the quantity the paper sweeps over 10⁻⁶ … 10⁶. Biases are not regularized. Features are used as given:
/// the paper probes the unnormalized image embeddings.
/// </remarks>
public static class LinearProbe
{
    /// <summary>Fits the probe on training rows and scores the test rows.</summary>
    /// <param name="trainFeatures">Training features, one array of D floats per row.</param>
    /// <param name="trainLabels">Training class indices.</param>
    /// <param name="testFeatures">Test features.</param>
    /// <param name="testLabels">Test class indices.</param>
    /// <param name="classCount">Number of classes (labels are 0 … classCount−1).</param>
    /// <param name="options">Search and trainer options.</param>
    /// <param name="mlContext">The ML.NET context (a new one, seeded with <see cref="LinearProbeOptions.Seed"/>, when null).</param>
    /// <param name="progress">Reports each fit as it starts.</param>
    /// <param name="cancellationToken">Checked between fits.</param>
    /// <exception cref="ArgumentException">Empty sets, features of different lengths, or labels outside the classes.</exception>
    public static LinearProbeResult Run(IReadOnlyList<float[]> trainFeatures, IReadOnlyList<int> trainLabels,
        IReadOnlyList<float[]> testFeatures, IReadOnlyList<int> testLabels, int classCount,
        LinearProbeOptions? options = null, MLContext? mlContext = null, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new LinearProbeOptions();
        var ml = mlContext ?? new MLContext(seed: options.Seed);
        if (classCount <= 0) throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "must be positive");
        int dim = CheckSet(trainFeatures, trainLabels, classCount, "training", 0);
        CheckSet(testFeatures, testLabels, classCount, "test", dim);
        if (options.MaximumIterations <= 0) throw new ArgumentOutOfRangeException(nameof(options), "MaximumIterations must be positive.");

        if (options.L2Values is { Count: 1 } single)
        {
            progress?.Report($"fit L2={Format(single[0])}");
            var scores = FitAndScore(ml, options, trainFeatures, trainLabels, testFeatures, dim, classCount, single[0]);
            return new LinearProbeResult(ClassificationMetrics.Evaluate(scores, testLabels), single[0], Array.Empty<LinearProbeTrial>(), trainFeatures.Count, 0);
        }
        if (!(options.ValidationFraction > 0 && options.ValidationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(options), options.ValidationFraction, "ValidationFraction must be between 0 and 1.");
        if (trainFeatures.Count < 2) throw new ArgumentException($"The L2 search needs at least 2 training rows to hold some out; got {trainFeatures.Count}.", nameof(trainFeatures));

        // The validation split, seeded.
        var order = Data.ImageDataset.Shuffled(trainFeatures.Count, options.Seed);
        int validationCount = Math.Clamp((int)Math.Round(trainFeatures.Count * options.ValidationFraction), 1, trainFeatures.Count - 1);
        var val = order.Take(validationCount).Order().ToArray();
        var fit = order.Skip(validationCount).Order().ToArray();
        var fitFeatures = fit.Select(i => trainFeatures[i]).ToArray();
        var fitLabels = fit.Select(i => trainLabels[i]).ToArray();
        var valFeatures = val.Select(i => trainFeatures[i]).ToArray();
        var valLabels = val.Select(i => trainLabels[i]).ToArray();

        var trials = new List<LinearProbeTrial>();
        void Try(double l2)
        {
            if (trials.Any(t => t.L2 == l2)) return;
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report($"search L2={Format(l2)} ({trials.Count + 1})");
            var scores = FitAndScore(ml, options, fitFeatures, fitLabels, valFeatures, dim, classCount, l2);
            trials.Add(new LinearProbeTrial(l2, ClassificationMetrics.TopKAccuracy(scores, valLabels, 1)));
        }

        if (options.L2Values is { } values)
        {
            if (values.Count == 0 || values.Any(v => !(v >= 0) || double.IsInfinity(v))) throw new ArgumentException("L2 values must be finite and not negative.", nameof(options));
            foreach (var v in values) Try(v);
        }
        else
        {
            // The paper's parametric search over log10(λ), in eighths of a decade so that the same λ is never fitted twice:
            // a grid two decades apart, then steps of 1, 1/2, 1/4 and 1/8 of a decade on both sides of the best so far.
            static double L2At(int eighths) => Math.Pow(10, eighths / 8.0);
            var exponentOf = new Dictionary<double, int>();
            void TryAt(int eighths)
            {
                if (eighths is < -48 or > 48) return;   // the paper's range, 10^-6 to 10^6
                exponentOf[L2At(eighths)] = eighths;
                Try(L2At(eighths));
            }
            for (int e = -48; e <= 48; e += 16) TryAt(e);
            for (int step = 8; step >= 1; step /= 2)
            {
                int best = exponentOf[Best(trials)];
                TryAt(best - step);
                TryAt(best + step);
            }
        }
        double chosen = Best(trials);

        cancellationToken.ThrowIfCancellationRequested();
        var (finalFeatures, finalLabels) = options.RefitOnAllTrainingRows ? (trainFeatures, trainLabels) : ((IReadOnlyList<float[]>)fitFeatures, (IReadOnlyList<int>)fitLabels);
        progress?.Report($"fit L2={Format(chosen)} on {finalFeatures.Count} rows");
        var testScores = FitAndScore(ml, options, finalFeatures, finalLabels, testFeatures, dim, classCount, chosen);
        return new LinearProbeResult(ClassificationMetrics.Evaluate(testScores, testLabels), chosen, trials, fitFeatures.Length, validationCount);
    }

    /// <summary>The best trial's L2: highest validation top-1, the larger L2 among equals.</summary>
    private static double Best(List<LinearProbeTrial> trials) =>
        trials.OrderByDescending(t => t.ValidationTop1).ThenByDescending(t => t.L2).First().L2;

    /// <summary>Fits one model and returns its class scores for <paramref name="scoreFeatures"/>.</summary>
    private static float[][] FitAndScore(MLContext ml, LinearProbeOptions options, IReadOnlyList<float[]> features, IReadOnlyList<int> labels,
        IReadOnlyList<float[]> scoreFeatures, int dim, int classCount, double l2)
    {
        var train = ToDataView(ml, features, labels, dim, classCount);
        var trainer = ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
        {
            LabelColumnName = "Label",
            FeatureColumnName = "Features",
            L2Regularization = (float)l2,
            L1Regularization = 0,
            MaximumNumberOfIterations = options.MaximumIterations,
            OptimizationTolerance = options.OptimizationTolerance,
            NumberOfThreads = options.Threads,
        });
        var model = trainer.Fit(train);
        var scored = model.Transform(ToDataView(ml, scoreFeatures, null, dim, classCount));
        // Score holds one value per key of the label column, in key order: class 0 first.
        return scored.GetColumn<float[]>("Score").ToArray();
    }

    private static IDataView ToDataView(MLContext ml, IReadOnlyList<float[]> features, IReadOnlyList<int>? labels, int dim, int classCount)
    {
        // The key member holds the 0-based class index: LoadFromEnumerable adds the 1 of ML.NET's key numbering.
        var schema = SchemaDefinition.Create(typeof(ProbeRow));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, dim);
        schema["Label"].ColumnType = new KeyDataViewType(typeof(uint), classCount);
        var rows = features.Select((f, i) => new ProbeRow { Features = f, Label = labels is null ? 0u : (uint)labels[i] }).ToList();
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    private static int CheckSet(IReadOnlyList<float[]> features, IReadOnlyList<int> labels, int classCount, string what, int dim)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (features.Count == 0) throw new ArgumentException($"The {what} set is empty.");
        if (features.Count != labels.Count) throw new ArgumentException($"The {what} set has {features.Count} feature rows and {labels.Count} labels.");
        if (dim == 0) dim = features[0]?.Length ?? 0;
        if (dim == 0) throw new ArgumentException($"The {what} features are empty.");
        for (int i = 0; i < features.Count; i++)
        {
            if (features[i] is null || features[i].Length != dim) throw new ArgumentException($"{what} row {i} has {features[i]?.Length ?? 0} features, {dim} expected.");
            if ((uint)labels[i] >= (uint)classCount) throw new ArgumentException($"{what} row {i} has label {labels[i]}, not a class index (0 to {classCount - 1}).");
        }
        return dim;
    }

    private static string Format(double l2) => l2.ToString("0.###e+0", CultureInfo.InvariantCulture);
}

/// <summary>A row of the probe's data view (public members: ML.NET reads them by reflection).</summary>
internal sealed class ProbeRow
{
    public float[] Features { get; set; } = [];
    public uint Label { get; set; }
}
