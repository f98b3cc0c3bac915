using Clip.MLNet.Evaluation;
using TorchSharp;

namespace Clip.MLNet.Tests.Evaluation;

/// <summary>The metric functions on inputs small enough to work out by hand.</summary>
public class MetricsTests
{
    // Six items, seven classes. Ranks of the true class, worked out by hand in the comments.
    private static readonly float[][] Scores =
    {
        new[] { 0.9f, 0.1f, 0f, 0f, 0f, 0f, 0f },        // label 0: rank 0
        new[] { 0.5f, 0.2f, 0.1f, 0f, 0f, 0f, 0.2f },    // label 1: rank 1 (0.5 above; 0.2 at index 6 is equal but after)
        new[] { 0.1f, 0.3f, 0.2f, 0.25f, 0.05f, 0.06f, 0.04f }, // label 2: rank 2 (0.3, 0.25)
        new[] { 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.4f },  // label 5: rank 6 (0.4, then the equal 0.1s at indices 0 to 4)
        new[] { 0f, 0f, 0f, 0f, 0.3f, 0.3f, 0.4f },      // label 4: rank 1 (0.4; 0.3 at index 5 is after)
        new[] { 0.2f, 0.2f, 0f, 0f, 0f, 0f, 0f },        // label 1: rank 1 (the tie at index 0 goes first)
    };
    private static readonly int[] Labels = { 0, 1, 2, 5, 4, 1 };

    [Fact]
    public void RanksBreakTiesTowardsTheLowerIndex()
    {
        Assert.Equal(new[] { 0, 1, 2, 6, 1, 1 }, Scores.Select((s, i) => ClassificationMetrics.Rank(s, Labels[i])));
        Assert.Equal(new[] { 0, 0, 1, 6, 6, 0 }, Scores.Select(s => ClassificationMetrics.ArgMax(s)));
    }

    [Fact]
    public void TopKCountsRanksBelowK()
    {
        Assert.Equal(1.0 / 6, ClassificationMetrics.TopKAccuracy(Scores, Labels, 1));
        Assert.Equal(4.0 / 6, ClassificationMetrics.TopKAccuracy(Scores, Labels, 2));
        Assert.Equal(5.0 / 6, ClassificationMetrics.TopKAccuracy(Scores, Labels, 5));
        Assert.Equal(5.0 / 6, ClassificationMetrics.TopKAccuracy(Scores, Labels, 6));
        Assert.Equal(1.0, ClassificationMetrics.TopKAccuracy(Scores, Labels, 7));
    }

    [Fact]
    public void EvaluateGivesTop1Top5AndMeanPerClass()
    {
        var r = ClassificationMetrics.Evaluate(Scores, Labels);
        Assert.Equal(6, r.Count);
        Assert.Equal(7, r.ClassCount);
        Assert.Equal(1.0 / 6, r.Top1);
        Assert.Equal(5.0 / 6, r.Top5);
        // Classes present: 0 (1/1 right), 1 (0/2), 2 (0/1), 4 (0/1), 5 (0/1): mean of 1, 0, 0, 0, 0. Classes 3 and 6 have no items.
        Assert.Equal(0.2, r.MeanPerClass, 12);
        Assert.Equal(new[] { 1, 2, 1, 0, 1, 1, 0 }, r.PerClassCount);
        Assert.True(double.IsNaN(r.PerClassAccuracy[3]));
    }

    [Fact]
    public void MeanPerClassWeighsClassesNotItems()
    {
        // Class 0: 9 of 9 right; class 1: 0 of 1. Accuracy 90%, mean per class 50%.
        var labels = Enumerable.Repeat(0, 9).Append(1).ToArray();
        var predicted = Enumerable.Repeat(0, 10).ToArray();
        Assert.Equal(0.5, ClassificationMetrics.MeanPerClassAccuracy(predicted, labels, 2));
        Assert.Equal(1.0, ClassificationMetrics.MeanPerClassAccuracy(labels, labels, 3));
    }

    [Fact]
    public void Top5IsLeftOutWithFiveClassesOrFewer()
    {
        var r = ClassificationMetrics.Evaluate(new[] { new[] { 0.1f, 0.9f }, new[] { 0.8f, 0.2f } }, new[] { 1, 1 });
        Assert.Null(r.Top5);
        Assert.Equal(0.5, r.Top1);
    }

    [Fact]
    public void BadInputsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(Array.Empty<float[]>(), Array.Empty<int>()));
        Assert.Contains("label 3", Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(new[] { new[] { 1f, 2f } }, new[] { 3 })).Message);
        Assert.Contains("Row 1", Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(new[] { new[] { 1f, 2f }, new[] { 1f } }, new[] { 0, 0 })).Message);
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(new[] { new[] { 1f } }, new[] { 0, 0 }));
    }

    // Three images, five captions: image 0 has captions 0 and 3, image 1 has caption 1, image 2 has captions 2 and 4.
    private static readonly int[] ImageOfText = { 0, 1, 2, 0, 2 };
    private static readonly float[,] Similarity =
    {
        //  t0    t1    t2    t3    t4
        { 0.1f, 0.9f, 0.3f, 0.8f, 0.0f },  // image 0: best own caption t3 at rank 1 (t1 above)
        { 0.5f, 0.2f, 0.6f, 0.1f, 0.7f },  // image 1: t1 at rank 3 (t4, t2, t0 above)
        { 0.2f, 0.1f, 0.0f, 0.3f, 0.9f },  // image 2: t4 at rank 0
    };

    [Fact]
    public void ImageToTextCountsAnImageFoundWhenAnyOfItsCaptionsIsInTheTopK()
    {
        var r = RetrievalMetrics.Evaluate(Similarity, ImageOfText, new[] { 1, 2, 4 });
        Assert.Equal(new[] { 1, 3, 0 }, r.ImageRanks);
        Assert.Equal(new[] { 1.0 / 3, 2.0 / 3, 1.0 }, r.ImageToText);
        Assert.Equal(3, r.ImageCount);
    }

    [Fact]
    public void TextToImageRanksEachTextsOneImage()
    {
        // Columns: t0 → image 0 scores 0.1 below 0.5 and 0.2: rank 2; t1 → image 1 (0.2) below 0.9: rank 1;
        // t2 → image 2 (0.0) below 0.3, 0.6: rank 2; t3 → image 0 (0.8) top: rank 0; t4 → image 2 (0.9) top: rank 0.
        var r = RetrievalMetrics.Evaluate(Similarity, ImageOfText, new[] { 1, 2 });
        Assert.Equal(new[] { 2, 1, 2, 0, 0 }, r.TextRanks);
        Assert.Equal(new[] { 2.0 / 5, 3.0 / 5 }, r.TextToImage);
        Assert.Equal(5, r.TextCount);
    }

    [Fact]
    public void EmbeddingsGiveTheSameRanksAsTheirCosineMatrix()
    {
        var rng = new Random(5);
        float[] Vector() => Enumerable.Range(0, 8).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var images = Enumerable.Range(0, 7).Select(_ => Vector()).ToArray();
        var texts = Enumerable.Range(0, 12).Select(_ => Vector()).ToArray();
        var imageOfText = Enumerable.Range(0, 12).Select(j => j % 7).ToArray();
        static float Cosine(float[] a, float[] b) =>
            (float)(a.Zip(b, (x, y) => (double)x * y).Sum() / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x)));
        var matrix = new float[7, 12];
        for (int i = 0; i < 7; i++) for (int j = 0; j < 12; j++) matrix[i, j] = Cosine(images[i], texts[j]);

        using var img = torch.tensor(images.SelectMany(v => v).ToArray(), new long[] { 7, 8 });
        using var txt = torch.tensor(texts.SelectMany(v => v).ToArray(), new long[] { 12, 8 });
        var fromTensors = RetrievalMetrics.Evaluate(img, txt, imageOfText, blockRows: 3);
        var fromMatrix = RetrievalMetrics.Evaluate(matrix, imageOfText);
        Assert.Equal(fromMatrix.ImageRanks, fromTensors.ImageRanks);
        Assert.Equal(fromMatrix.TextRanks, fromTensors.TextRanks);
        Assert.Equal(new[] { 1, 5, 10 }, fromTensors.Ks);
    }

    [Fact]
    public void ImagesWithoutCaptionsAreRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => RetrievalMetrics.Evaluate(new float[3, 2], new[] { 0, 2 }));
        Assert.Contains("Image 1 has no text", e.Message);
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.Evaluate(new float[2, 2], new[] { 0, 2 }));
    }
}
