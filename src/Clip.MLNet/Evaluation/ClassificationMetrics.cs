using System.Text.Json.Serialization;

namespace Clip.MLNet.Evaluation;

/// <summary>Accuracy of a classifier over a labelled set (see <see cref="ClassificationMetrics.Evaluate"/>).</summary>
public sealed class ClassificationResult
{
    /// <summary>Number of items scored.</summary>
    public int Count { get; }

    /// <summary>Number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>The fraction of items whose highest-scoring class is their label.</summary>
    public double Top1 { get; }

    /// <summary>The fraction of items whose label is among their five highest-scoring classes; null with five classes or fewer (it would be 1).</summary>
    public double? Top5 { get; }

    /// <summary>Top-1 accuracy of each class that has items, averaged over those classes.</summary>
    public double MeanPerClass { get; }

    /// <summary>The predicted class of each item (the highest score; ties go to the lower class index).</summary>
    [JsonIgnore]
    public IReadOnlyList<int> Predicted { get; }

    /// <summary>Items per class.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> PerClassCount { get; }

    /// <summary>Top-1 accuracy per class (NaN for a class without items).</summary>
    [JsonIgnore]
    public IReadOnlyList<double> PerClassAccuracy { get; }

    internal ClassificationResult(int count, int classCount, double top1, double? top5, double meanPerClass, int[] predicted, int[] perClassCount, double[] perClassAccuracy)
    {
        Count = count;
        ClassCount = classCount;
        Top1 = top1;
        Top5 = top5;
        MeanPerClass = meanPerClass;
        Predicted = predicted;
        PerClassCount = perClassCount;
        PerClassAccuracy = perClassAccuracy;
    }
}

/// <summary>
/// Classification metrics from per-class scores (probabilities or logits: only their order matters) and true
/// class indices. Ranks break ties the way an argmax does, in favour of the lower class index, so that the
/// top-1 prediction here is the <c>PredictedLabel</c> of <c>ClipZeroShot</c> and of ML.NET's multiclass trainers.
/// </summary>
public static class ClassificationMetrics
{
    /// <summary>
    /// The rank of class <paramref name="label"/> among <paramref name="scores"/>: how many classes come before it,
    /// counting those with a higher score and those with an equal score and a lower index (0 = predicted).
    /// </summary>
    public static int Rank(ReadOnlySpan<float> scores, int label)
    {
        if ((uint)label >= (uint)scores.Length) throw new ArgumentOutOfRangeException(nameof(label), label, $"not a class index (0 to {scores.Length - 1})");
        float s = scores[label];
        int rank = 0;
        for (int j = 0; j < scores.Length; j++)
            if (scores[j] > s || (scores[j] == s && j < label)) rank++;
        return rank;
    }

    /// <summary>The highest-scoring class (the lowest index among equal scores).</summary>
    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        if (scores.IsEmpty) throw new ArgumentException("No scores.", nameof(scores));
        int best = 0;
        for (int j = 1; j < scores.Length; j++) if (scores[j] > scores[best]) best = j;
        return best;
    }

    /// <summary>The fraction of rows whose label ranks within the top <paramref name="k"/> classes.</summary>
    public static double TopKAccuracy(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels, int k)
    {
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "must be positive");
        Check(scores, labels);
        int hits = 0;
        for (int i = 0; i < scores.Count; i++) if (Rank(scores[i], labels[i]) < k) hits++;
        return (double)hits / scores.Count;
    }

    /// <summary>
    /// The mean, over the classes that occur in <paramref name="labels"/>, of the fraction of each class's items
    /// predicted as that class (the "mean per-class accuracy", or balanced accuracy, of the CLIP paper's tables).
    /// </summary>
    public static double MeanPerClassAccuracy(IReadOnlyList<int> predicted, IReadOnlyList<int> labels, int classCount)
    {
        var (_, accuracy) = PerClass(predicted, labels, classCount);
        var present = accuracy.Where(a => !double.IsNaN(a)).ToArray();
        return present.Length == 0 ? double.NaN : present.Average();
    }

    /// <summary>Top-1, top-5 (with more than five classes) and mean per-class accuracy of <paramref name="scores"/> [N][C] against <paramref name="labels"/>.</summary>
    /// <exception cref="ArgumentException">No rows, rows of different lengths, or a label outside 0 … C−1.</exception>
    public static ClassificationResult Evaluate(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels)
    {
        Check(scores, labels);
        int c = scores[0].Length;
        var predicted = scores.Select(s => ArgMax(s)).ToArray();
        int top1 = 0, top5 = 0;
        for (int i = 0; i < scores.Count; i++)
        {
            int rank = Rank(scores[i], labels[i]);
            if (rank < 1) top1++;
            if (rank < 5) top5++;
        }
        var (counts, accuracy) = PerClass(predicted, labels, c);
        var present = accuracy.Where(a => !double.IsNaN(a)).ToArray();
        return new ClassificationResult(scores.Count, c, (double)top1 / scores.Count, c > 5 ? (double)top5 / scores.Count : null,
            present.Average(), predicted, counts, accuracy);
    }

    private static (int[] Counts, double[] Accuracy) PerClass(IReadOnlyList<int> predicted, IReadOnlyList<int> labels, int classCount)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(labels);
        if (predicted.Count != labels.Count) throw new ArgumentException($"{predicted.Count} predictions for {labels.Count} labels.");
        var counts = new int[classCount];
        var correct = new int[classCount];
        for (int i = 0; i < labels.Count; i++)
        {
            if ((uint)labels[i] >= (uint)classCount) throw new ArgumentException($"Row {i} has label {labels[i]}, not a class index (0 to {classCount - 1}).", nameof(labels));
            counts[labels[i]]++;
            if (predicted[i] == labels[i]) correct[labels[i]]++;
        }
        return (counts, counts.Select((n, j) => n == 0 ? double.NaN : (double)correct[j] / n).ToArray());
    }

    private static void Check(IReadOnlyList<float[]> scores, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(labels);
        if (scores.Count == 0) throw new ArgumentException("No rows to score.", nameof(scores));
        if (scores.Count != labels.Count) throw new ArgumentException($"{scores.Count} rows of scores for {labels.Count} labels.");
        int c = scores[0]?.Length ?? 0;
        if (c == 0) throw new ArgumentException("Rows of scores are empty.", nameof(scores));
        for (int i = 0; i < scores.Count; i++)
        {
            if (scores[i] is null || scores[i].Length != c) throw new ArgumentException($"Row {i} has {scores[i]?.Length ?? 0} scores, row 0 has {c}.", nameof(scores));
            if ((uint)labels[i] >= (uint)c) throw new ArgumentException($"Row {i} has label {labels[i]}, not a class index (0 to {c - 1}).", nameof(labels));
        }
    }
}
