using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.MLNet;

/// <summary>CLIP stages inside full ML.NET pipelines: linear probes, evaluation, saving and loading.</summary>
public class PipelineTests
{
    [Fact]
    public void LinearProbeOnImageEmbeddingsFitsAndEvaluates()
    {
        var ml = new MLContext(seed: 1);
        var paths = Enumerable.Range(0, 24).Select(i => ReferenceData.ImagePaths[i % 8]).ToArray();
        var data = ReferenceData.ImageView(ml, paths);
        var pipeline = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit)
            .Append(ml.Transforms.Conversion.MapValueToKey("LabelKey", "Label"))
            .Append(ml.Transforms.NormalizeMeanVariance("Features"))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("LabelKey", "Features", l1Regularization: 0, l2Regularization: 1e-4f));
        using var model = pipeline.Fit(data);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data), labelColumnName: "LabelKey");
        // Two visually distinct groups of photos: the probe must separate its own training data.
        Assert.True(metrics.MicroAccuracy >= 0.9, $"micro accuracy {metrics.MicroAccuracy}");
        Assert.Equal(2, metrics.PerClassLogLoss.Count);
    }

    [Fact]
    public void ZeroShotEvaluatedAgainstMappedLabelsMatchesACountByHand()
    {
        var ml = new MLContext(seed: 1);
        var classes = new[] { "a photo of a great wall of china", "a photo of a flower", "a diagram of a cat" };
        // True labels as class names; image i is china* (class 0) or flower* (class 1).
        var truth = ReferenceData.ImageNames.Select(n => n.StartsWith("china", StringComparison.Ordinal) ? classes[0] : classes[1]).ToArray();
        var data = ReferenceData.ImageView(ml, labels: truth);
        var pipeline = ml.Transforms.Conversion.MapValueToClassKey("LabelKey", "Label", classes)
            .Append(ml.Transforms.ClipZeroShot(ReferenceData.Vit, classes));
        using var model = pipeline.Fit(data);
        var predictions = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(predictions, labelColumnName: "LabelKey");

        var predicted = predictions.GetColumn<uint>("PredictedLabel").ToArray();
        var labels = predictions.GetColumn<uint>("LabelKey").ToArray();
        Assert.Equal(truth.Select(t => (uint)Array.IndexOf(classes, t) + 1), labels);
        int correct = predicted.Zip(labels, (p, l) => p == l ? 1 : 0).Sum();
        Assert.Equal(correct / 8.0, metrics.MicroAccuracy, 6);
    }

    [Fact]
    public void ClassKeyMappingRefusesUnknownLabelsByName()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml, labels: Enumerable.Repeat("zebra", 8));
        using var t = ml.Transforms.Conversion.MapValueToClassKey("LabelKey", "Label", new[] { "cat", "dog" }).Fit(data);
        var e = Assert.Throws<ClipRowException>(() => t.Transform(data).GetColumn<uint>("LabelKey").ToArray());
        Assert.Contains("'zebra'", e.Message);
    }

    [Fact]
    public void SavedPipelineLoadsInAFreshProcessWithIdenticalPredictions()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var paths = Enumerable.Range(0, 16).Select(i => ReferenceData.ImagePaths[i % 8]).ToArray();
        var data = ReferenceData.ImageView(ml, paths);
        var pipeline = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit)
            .Append(ml.Transforms.Conversion.MapValueToKey("LabelKey", "Label"))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("LabelKey", "Features"))
            .Append(ml.Transforms.ClipZeroShot(ReferenceData.Vit, new[] { "a wall", "a flower" },
                new[] { "a photo of {}.", "{}" }, inputColumnName: "Image"));
        using var model = pipeline.Fit(data);
        var file = dir.File("pipeline.zip");
        ml.Model.SaveClipPipeline(model, data.Schema, file);

        var here = ChildProcessEntry.Describe(model.Transform(data));
        var there = ProcessRunner.TestAssembly("pipeline-predict", file, string.Join('|', paths));
        Assert.Equal(here, there);
    }

    [Fact]
    public void A_saved_bf16_pipeline_loads_back_in_bf16()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var paths = ReferenceData.ImagePaths.Take(4).ToArray();
        var data = ReferenceData.ImageView(ml, paths);
        using var bf16 = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_jit.pt"), new ClipLoadOptions { Precision = TorchSharp.torch.ScalarType.BFloat16 });
        using var model = ml.Transforms.ClipImageEmbedding(bf16).Fit(data);
        var file = dir.File("pipeline.zip");
        ml.Model.SaveClipPipeline(model, data.Schema, file);

        using var loaded = ml.Model.LoadClipPipeline(file, out _);
        var stage = Assert.IsType<ClipImageEmbeddingTransformer>(Assert.Single(loaded));
        Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, stage.Model.ComputeType);
        Assert.Equal(ChildProcessEntry.Describe(model.Transform(data)), ChildProcessEntry.Describe(loaded.Transform(data)));
    }
}
