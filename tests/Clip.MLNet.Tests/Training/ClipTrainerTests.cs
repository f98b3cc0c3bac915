using Clip.MLNet.Tests.Support;
using Clip.MLNet.Training;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Training;

[Collection(GlobalRngCollection.Name)]
public class ClipTrainerTests
{
    [Fact]
    public void LossGoesDownInAShortRun()
    {
        var shapes = TrainingTestData.Shapes(256);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        using var model = TrainingTestData.NewModel(TrainingTestData.TinyVit(tokenizer.VocabularySize));
        var history = new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 8, BatchSize = 32, LearningRate = 1e-3, WarmupSteps = 10, WeightDecay = 0.1 })
            .Train(TrainingTestData.Pairs(shapes));
        Assert.Equal(8, history.Epochs.Count);
        Assert.Equal(64, history.CompletedSteps);
        Assert.True(history.Epochs[^1].Loss < history.Epochs[0].Loss - 0.5, $"loss {history.Epochs[0].Loss} -> {history.Epochs[^1].Loss}");
        Assert.True(history.Epochs[^1].Accuracy > history.Epochs[0].Accuracy + 0.1, $"accuracy {history.Epochs[0].Accuracy} -> {history.Epochs[^1].Accuracy}");
        Assert.False(model.training);
        Assert.Same(tokenizer, model.Tokenizer);
    }

    [Fact]
    public void ACheckpointResumesToTheSameNextStepLoss()
    {
        using var dir = new TempDir();
        var shapes = TrainingTestData.Shapes(96);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        var config = TrainingTestData.TinyVit(tokenizer.VocabularySize);
        ClipTrainingOptions Options(string? checkpoints = null, string? resume = null) => new()
        {
            Epochs = 3, BatchSize = 16, LearningRate = 1e-3, WarmupSteps = 2, Seed = 5,
            Augmentation = new RandomResizedCropOptions(), CheckpointFolder = checkpoints, CheckpointEverySteps = 4, ResumeFrom = resume,
        };

        List<double> reference;
        using (var model = TrainingTestData.NewModel(config))
            reference = new ClipTrainer(model, tokenizer, Options()).Train(TrainingTestData.Pairs(shapes)).StepLosses;

        // Stop after step 7 (cancellation writes a checkpoint), then resume in a model with other initial weights.
        using var cts = new CancellationTokenSource();
        using (var model = TrainingTestData.NewModel(config))
        {
            var progress = new Inline(p => { if (p.Step == 7) cts.Cancel(); });
            var stopped = new ClipTrainer(model, tokenizer, Options(dir.Path)).Train(TrainingTestData.Pairs(shapes), progress, cts.Token);
            Assert.True(stopped.Cancelled);
            Assert.Equal(7, stopped.CompletedSteps);
        }
        using (var model = TrainingTestData.NewModel(config, seed: 99))
        {
            var resumed = new ClipTrainer(model, tokenizer, Options(resume: dir.Path)).Train(TrainingTestData.Pairs(shapes));
            Assert.Equal(reference.Count, resumed.StepLosses.Count);
            for (int s = 0; s < 7; s++) Assert.Equal(reference[s], resumed.StepLosses[s], 6);
            Assert.Equal(reference[7], resumed.StepLosses[7], 4);         // the next step after the checkpoint
            Assert.Equal(reference[^1], resumed.StepLosses[^1], 3);
        }
    }

    [Fact]
    public void AccumulationGivesTheGradientOfTheWholeBatch()
    {
        var shapes = TrainingTestData.Shapes(32);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        var config = TrainingTestData.TinyVit(tokenizer.VocabularySize);
        float[] After(int accumulation)
        {
            using var model = TrainingTestData.NewModel(config);
            // ε = 1 makes AdamW's first update proportional to the gradient (not its sign), so parameters compare gradients.
            new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 1, BatchSize = 32, AccumulationSteps = accumulation, WarmupSteps = 1, LearningRate = 1, Epsilon = 1, WeightDecay = 0 })
                .Train(TrainingTestData.Pairs(shapes));
            return model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
        }
        float[] initial;
        using (var model = TrainingTestData.NewModel(config))
            initial = model.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();
        var whole = After(1);
        var accumulated = After(4);
        double maxUpdate = whole.Zip(initial, (a, b) => Math.Abs(a - b)).Max();
        double maxDiff = whole.Zip(accumulated, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxUpdate > 1e-3, $"the step changed nothing ({maxUpdate})");
        Assert.True(maxDiff < 1e-4 * maxUpdate, $"max parameter difference {maxDiff} for updates up to {maxUpdate}");
    }

    [Fact]
    public void LockedImageTowerDoesNotChange()
    {
        var shapes = TrainingTestData.Shapes(64);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        using var model = TrainingTestData.NewModel(TrainingTestData.TinyVit(tokenizer.VocabularySize));
        var before = model.Visual.parameters().Select(p => p.detach().clone()).ToList();
        var textBefore = model.Text.parameters().First().detach().clone();
        new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 1, BatchSize = 16, LockImageTower = true, WarmupSteps = 1 })
            .Train(TrainingTestData.Pairs(shapes));
        Assert.All(model.Visual.parameters().Zip(before), x => Assert.True(x.First.equal(x.Second).all().item<bool>()));
        Assert.False(model.Text.parameters().First().equal(textBefore).all().item<bool>());
        Assert.True(model.Visual.parameters().All(p => p.requires_grad));   // restored for later use
    }

    [Fact]
    public void ResumingFromAnotherConfigurationSaysSo()
    {
        using var dir = new TempDir();
        var shapes = TrainingTestData.Shapes(32);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        var config = TrainingTestData.TinyVit(tokenizer.VocabularySize);
        using (var model = TrainingTestData.NewModel(config))
            new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 1, BatchSize = 16, CheckpointFolder = dir.Path, WarmupSteps = 1 }).Train(TrainingTestData.Pairs(shapes));
        using var other = TrainingTestData.NewModel(config with { TextLayers = 2 });
        var e = Assert.Throws<InvalidDataException>(() =>
            new ClipTrainer(other, tokenizer, new ClipTrainingOptions { Epochs = 2, BatchSize = 16, ResumeFrom = dir.Path, WarmupSteps = 1 }).Train(TrainingTestData.Pairs(shapes)));
        Assert.Contains("another model configuration", e.Message);
        Assert.Contains("step-", e.Message);
    }

    [Fact]
    public void EmptyAndTooSmallDataAreRefused()
    {
        var shapes = TrainingTestData.Shapes(1);
        var tokenizer = TrainingTestData.Tokenizer(shapes);
        using var model = TrainingTestData.NewModel(TrainingTestData.TinyVit(tokenizer.VocabularySize));
        var trainer = new ClipTrainer(model, tokenizer);
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => trainer.Train(ClipTrainingData.FromFiles(Array.Empty<string>(), Array.Empty<string>()))).Message);
        Assert.Contains("at least 2", Assert.Throws<InvalidDataException>(() => trainer.Train(TrainingTestData.Pairs(shapes))).Message);
    }

    [Fact]
    public void ACorruptImageIsAnErrorNamingItOrSkippedAndCounted()
    {
        using var dir = new TempDir();
        var broken = dir.File("broken.png");
        File.WriteAllText(broken, "not an image");
        var paths = ReferenceData.ImagePaths.Take(4).Append(broken).ToArray();
        var captions = paths.Select((_, i) => $"photo {i}").ToArray();
        var tokenizer = ClipTokenizer.Train(captions, contextLength: 8);
        var config = ClipConfig.VisionTransformerConfig(16, 32, 16, 32, 1, 32, 1, contextLength: 8, vocabSize: tokenizer.VocabularySize);
        using var model = TrainingTestData.NewModel(config);
        var data = ClipTrainingData.FromFiles(paths, captions);
        var e = Assert.Throws<InvalidDataException>(() =>
            new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 1, BatchSize = 5, WarmupSteps = 1 }).Train(data));
        Assert.Contains("broken.png", e.Message);

        var skipped = new ClipTrainer(model, tokenizer, new ClipTrainingOptions { Epochs = 2, BatchSize = 5, WarmupSteps = 1, BadRows = BadRowHandling.Skip })
            .Train(ClipTrainingData.FromFiles(paths, captions));
        Assert.Equal(2, skipped.SkippedPairs);   // once per epoch
        Assert.All(skipped.StepLosses, l => Assert.False(double.IsNaN(l)));
    }

    [Fact]
    public void MlNetEstimatorTrainsFromScratchAndItsModelReloadsWithItsTokenizer()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var rows = ReferenceData.ImagePaths.Select((p, i) => new CaptionRow { Image = p, Caption = Path.GetFileNameWithoutExtension(p).Replace('_', ' ') }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var estimator = ml.Transforms.ClipTrain(null, new ClipContrastiveEstimator.Options
        {
            Config = ClipConfig.VisionTransformerConfig(16, 32, 16, 32, 1, 32, 1, contextLength: 12, vocabSize: 1),
            Training = new ClipTrainingOptions { Epochs = 3, BatchSize = 4, WarmupSteps = 1 },
        });
        using var trained = estimator.Fit(data);
        Assert.NotNull(trained.TrainingHistory);
        Assert.Equal(6, trained.TrainingHistory!.CompletedSteps);
        Assert.NotNull(trained.Model.Tokenizer);
        var features = ReferenceData.Column(trained.Transform(data), "Features");
        Assert.Equal(8, features.Length);
        Assert.Equal(16, features[0].Length);

        var file = dir.File("trained.safetensors");
        trained.Model.Save(file);
        using var reloaded = ClipModel.Load(file);
        Assert.NotNull(reloaded.Tokenizer);
        Assert.Equal(trained.Model.Tokenizer!.Encode("china portrait"), reloaded.Tokenizer!.Encode("china portrait"));
    }

    [Fact]
    public void ImageWithoutCaptionIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var rows = ReferenceData.ImagePaths.Select((p, i) => new CaptionRow { Image = p, Caption = i == 3 ? "" : "a photo" }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var estimator = ml.Transforms.ClipTrain(null, new ClipContrastiveEstimator.Options
        {
            Config = ClipConfig.VisionTransformerConfig(16, 32, 16, 32, 1, 32, 1, contextLength: 12, vocabSize: 1),
            Training = new ClipTrainingOptions { Epochs = 1, BatchSize = 8, WarmupSteps = 1 },
        });
        var e = Assert.Throws<InvalidDataException>(() => estimator.Fit(data).Dispose());
        Assert.Contains("row 3", e.Message);
        Assert.Contains("without a caption", e.Message);
    }

    private sealed class CaptionRow
    {
        public string Image { get; set; } = "";
        public string Caption { get; set; } = "";
    }

    private sealed class Inline(Action<ClipTrainingProgress> report) : IProgress<ClipTrainingProgress>
    {
        public void Report(ClipTrainingProgress value) => report(value);
    }
}
