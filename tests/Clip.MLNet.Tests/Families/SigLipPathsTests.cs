using Clip.MLNet.Tests.Support;
using Clip.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>The existing paths with a SigLIP model: reduced precision, saved ML.NET pipelines, fine-tuning.</summary>
public class SigLipPathsTests
{
    [Fact]
    public void BFloat16StaysCloseToTheReference()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip2"), new ClipLoadOptions { Precision = ScalarType.BFloat16 });
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(FamilyFixtures.Expected("siglip2.pixel_values"));
        var text = model.EncodeText(FamilyFixtures.Expected("siglip2.text_tokens"));
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected("siglip2.image_features")) < 3e-2);
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected("siglip2.text_features")) < 3e-2);
    }

    [Fact]
    public void TheFusedAttentionPathOfOtherDevicesGivesTheSameFeatures()
    {
        // CUDA takes scaled_dot_product_attention (blocks and the attention pool); checked here on CPU tensors.
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        using var cuda = Clip.MLNet.Modeling.DeviceKernels.Assume(DeviceType.CUDA);
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(FamilyFixtures.Expected("siglip.pixel_values"));
        var text = model.EncodeText(FamilyFixtures.Expected("siglip.text_tokens"));
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected("siglip.image_features")) < 1e-4);
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected("siglip.text_features")) < 1e-4);
    }

    [Fact]
    public void SavedZeroShotPipelineKeepsSigmoidScoring()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(FamilyFixtures.ImagePaths.Select(p => new ImageRow { Image = p }));
        using var zeroShot = ml.Transforms.ClipZeroShot(model, FamilyFixtures.Texts).Fit(data);
        var before = zeroShot.Transform(data).GetColumn<float[]>("Score").ToArray();
        var path = Path.Combine(Path.GetTempPath(), $"siglip-pipeline-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.SaveClipPipeline(new TransformerChain<ITransformer>(zeroShot), data.Schema, path);
            using var loaded = ml.Model.LoadClipPipeline(path, out _);
            var after = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < before.Length; i++)
                Assert.True(before[i].Zip(after[i], (a, b) => Math.Abs(a - b)).Max() < 1e-5, $"row {i}");
            // Sigmoids, not a softmax: the rows do not sum to 1.
            Assert.All(after, row => Assert.True(Math.Abs(row.Sum() - 1) > 1e-3));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void FineTuningRunsAndUsesTheModelsPreprocessing()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        var data = ClipTrainingData.FromFiles(FamilyFixtures.ImagePaths, FamilyFixtures.Texts);
        var history = new ClipTrainer(model, model.RequireTokenizer(), new ClipTrainingOptions { Epochs = 1, BatchSize = 5, WarmupSteps = 1, LearningRate = 1e-4 })
            .Train(data);
        Assert.Single(history.StepLosses);
        Assert.True(double.IsFinite(history.StepLosses[0]));
        Assert.Equal(model.ImagePreprocessing, data.Preprocessing);
    }

    private sealed class ImageRow
    {
        public string Image { get; set; } = "";
    }
}
