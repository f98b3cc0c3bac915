using Clip.MLNet.Evaluation;

namespace Clip.MLNet.Tests.Evaluation;

/// <summary>The logistic-regression probe on synthetic features whose right answers are known.</summary>
public class LinearProbeTests
{
    /// <summary>Points around one centre per class, far apart: linearly separable.</summary>
    private static (float[][] Features, int[] Labels) Blobs(int[] perClass, int seed)
    {
        var rng = new Random(seed);
        var centres = new[] { new[] { 4f, 0f, 0f, 1f }, new[] { 0f, 4f, 0f, 1f }, new[] { 0f, 0f, 4f, 1f } };
        var features = new List<float[]>();
        var labels = new List<int>();
        for (int c = 0; c < perClass.Length; c++)
            for (int i = 0; i < perClass[c]; i++)
            {
                features.Add(centres[c].Select(v => v + (float)(rng.NextDouble() - 0.5)).ToArray());
                labels.Add(c);
            }
        return (features.ToArray(), labels.ToArray());
    }

    [Fact]
    public void SeparableClassesAreLearnedAndTheSearchFollowsThePapersGrid()
    {
        var (trainX, trainY) = Blobs(new[] { 20, 20, 20 }, seed: 1);
        var (testX, testY) = Blobs(new[] { 7, 7, 7 }, seed: 2);

        var result = LinearProbe.Run(trainX, trainY, testX, testY, 3);

        Assert.Equal(1.0, result.Test.Top1);
        Assert.Equal(1.0, result.Test.MeanPerClass);
        Assert.Equal(21, result.Test.Count);
        Assert.Equal(12, result.ValidationCount);   // 20% of 60
        Assert.Equal(48, result.TrainCount);
        Assert.Equal(new[] { 1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6 }, result.Sweep.Take(7).Select(t => t.L2), new ToleranceComparer());
        Assert.InRange(result.Sweep.Count, 8, 15);
        Assert.Equal(result.Sweep.Count, result.Sweep.Select(t => t.L2).Distinct().Count());
        // The choice: the best validation accuracy, the strongest regularization among equals.
        double best = result.Sweep.Max(t => t.ValidationTop1);
        Assert.Equal(result.Sweep.Where(t => t.ValidationTop1 == best).Max(t => t.L2), result.L2);
    }

    [Fact]
    public void L2IsAppliedToWeightsButNotToBiases()
    {
        // Class 0 has twice the training rows; the test set is balanced.
        var (trainX, trainY) = Blobs(new[] { 20, 10, 10 }, seed: 3);
        var (testX, testY) = Blobs(new[] { 5, 5, 5 }, seed: 4);

        var weak = LinearProbe.Run(trainX, trainY, testX, testY, 3, new LinearProbeOptions { L2Values = new[] { 1e-4 } });
        Assert.Equal(1.0, weak.Test.Top1);
        Assert.Empty(weak.Sweep);
        Assert.Equal(0, weak.ValidationCount);
        Assert.Equal(40, weak.TrainCount);

        // Weights crushed to zero, biases free: every row goes to the most frequent training class.
        var crushed = LinearProbe.Run(trainX, trainY, testX, testY, 3, new LinearProbeOptions { L2Values = new[] { 1e6 } });
        Assert.All(crushed.Test.Predicted, p => Assert.Equal(0, p));
        Assert.Equal(1.0 / 3, crushed.Test.Top1, 12);
    }

    [Fact]
    public void GivenValuesAreSearchedAndTheBestIsRefitted()
    {
        var (trainX, trainY) = Blobs(new[] { 15, 15, 15 }, seed: 5);
        var (testX, testY) = Blobs(new[] { 4, 4, 4 }, seed: 6);
        var result = LinearProbe.Run(trainX, trainY, testX, testY, 3, new LinearProbeOptions { L2Values = new[] { 1e6, 1e-3 }, ValidationFraction = 0.4 });
        Assert.Equal(new[] { 1e6, 1e-3 }, result.Sweep.Select(t => t.L2));
        Assert.Equal(1.0, result.Sweep[1].ValidationTop1);
        Assert.True(result.Sweep[0].ValidationTop1 < 0.6);
        Assert.Equal(1e-3, result.L2);
        Assert.Equal(18, result.ValidationCount);
        Assert.Equal(1.0, result.Test.Top1);
    }

    [Fact]
    public void BadInputsAreRefused()
    {
        var x = new[] { new[] { 1f, 2f }, new[] { 1f } };
        Assert.Contains("row 1 has 1 features", Assert.Throws<ArgumentException>(() => LinearProbe.Run(x, new[] { 0, 1 }, x, new[] { 0, 1 }, 2)).Message);
        var ok = new[] { new[] { 1f }, new[] { 2f } };
        Assert.Contains("label 5", Assert.Throws<ArgumentException>(() => LinearProbe.Run(ok, new[] { 0, 5 }, ok, new[] { 0, 1 }, 2)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => LinearProbe.Run(Array.Empty<float[]>(), Array.Empty<int>(), ok, new[] { 0, 1 }, 2)).Message);
    }

    private sealed class ToleranceComparer : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= 1e-9 * Math.Max(Math.Abs(a), Math.Abs(b));
        public int GetHashCode(double value) => 0;
    }
}
