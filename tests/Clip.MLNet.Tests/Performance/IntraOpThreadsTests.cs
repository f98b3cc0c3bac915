using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

using Clip.MLNet.Performance;

namespace Clip.MLNet.Tests.Performance;

/// <summary>The transforms' IntraOpThreads option sets libtorch's process-wide thread count when rows are read, and is saved with the pipeline.</summary>
public class IntraOpThreadsTests
{
    [Fact]
    public void ReadingRowsAppliesTheOptionAndTheResultsDoNotChange()
    {
        int before = ClipModel.IntraOpThreads;
        try
        {
            var ml = new MLContext(seed: 1);
            var data = ReferenceData.ImageView(ml, ReferenceData.ImagePaths.Take(3));
            using var plain = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
            var expected = ReferenceData.Column(plain.Transform(data), "Features");

            using var one = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { IntraOpThreads = 1 }).Fit(data);
            var view = one.Transform(data);
            Assert.Equal(before, ClipModel.IntraOpThreads);       // lazy: nothing applied before rows are read
            var actual = ReferenceData.Column(view, "Features");
            Assert.Equal(1, ClipModel.IntraOpThreads);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(expected[i].Zip(actual[i], (a, b) => Math.Abs(a - b)).Max() <= 1e-5);
        }
        finally
        {
            ClipModel.IntraOpThreads = before;
        }
    }

    [Fact]
    public void NonPositiveCountsAreRefused()
    {
        var options = new ClipImageEmbeddingEstimator.Options { IntraOpThreads = 0 };
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipImageEmbeddingEstimator(ReferenceData.Vit, options));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipTextEmbeddingEstimator(ReferenceData.Vit, ReferenceData.Vit.Tokenizer!,
            new ClipTextEmbeddingEstimator.Options { IntraOpThreads = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipZeroShotEstimator(ReferenceData.Vit, ReferenceData.Vit.Tokenizer!,
            new ClipZeroShotEstimator.Options { ClassNames = new[] { "a" }, IntraOpThreads = 0 }));
    }

    [Fact]
    public void TheOptionIsSavedWithThePipeline()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml, ReferenceData.ImagePaths.Take(1));
        var pipeline = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { IntraOpThreads = 2 })
            .Append(ml.Transforms.ClipZeroShot(ReferenceData.Vit, new ClipZeroShotEstimator.Options { ClassNames = new[] { "a", "b" }, IntraOpThreads = 2 }));
        using var model = pipeline.Fit(data);
        var path = dir.File("pipeline.zip");
        ml.Model.SaveClipPipeline(model, data.Schema, path);
        using var loaded = ml.Model.LoadClipPipeline(path, out _);
        var stages = ((TransformerChain<ITransformer>)loaded).ToList();
        Assert.Equal(2, ((ClipImageEmbeddingTransformer)stages[0]).Options.IntraOpThreads);
        Assert.Equal(2, ((ClipZeroShotTransformer)stages[1]).Options.IntraOpThreads);
    }
}

/// <summary>Heap trimming after forward passes is a switch that leaves results alone.</summary>
public class NativeHeapTests
{
    [Fact]
    public void TrimmingCanBeSwitchedAndDoesNotChangeFeatures()
    {
        bool before = ClipModel.TrimNativeHeap;
        try
        {
            var pixels = Fixtures.Expected("pixel_values_224");
            ClipModel.TrimNativeHeap = false;
            using var a = ReferenceData.Vit.EncodeImage(pixels);
            ClipModel.TrimNativeHeap = true;
            Assert.True(ClipModel.TrimNativeHeap);
            NativeHeap.TrimIfDue();
            using var b = ReferenceData.Vit.EncodeImage(pixels);
            Assert.InRange(Fixtures.RelativeError(b, a), 0, 0);
        }
        finally
        {
            ClipModel.TrimNativeHeap = before;
        }
    }
}
