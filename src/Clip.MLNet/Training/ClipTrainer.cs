using Clip.MLNet.Data;
using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Clip.MLNet.Training;

/// <summary>
/// Contrastive training of a CLIP model on image-caption pairs, from scratch or fine-tuning: CLIP's symmetric
/// cross-entropy with a learnable temperature (clamped), AdamW without decay on gains and biases, linear warm-up
/// then cosine decay, exact gradient accumulation, optional tower locking and augmentation, checkpoints that
/// resume to the same state, and cancellation that stops cleanly at the next step.
/// </summary>
public sealed partial class ClipTrainer
{
    /// <summary>Creates a trainer for <paramref name="model"/> (trained in place) with <paramref name="tokenizer"/>.</summary>
    public ClipTrainer(ClipModel model, ClipTokenizer tokenizer, ClipTrainingOptions? options = null)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Options = options ?? new ClipTrainingOptions();
        if (tokenizer.VocabularySize > model.Config.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabularySize} tokens but the model's table {model.Config.VocabSize}.");
        if (tokenizer.ContextLength > model.ContextLength)
            throw new ArgumentException($"The tokenizer's context length {tokenizer.ContextLength} exceeds the model's {model.ContextLength}.");
    }

    /// <summary>The model being trained.</summary>
    public ClipModel Model { get; }

    /// <summary>The tokenizer of the captions (attached to the model and saved with it).</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>The training options.</summary>
    public ClipTrainingOptions Options { get; }

    /// <summary>Trains on <paramref name="data"/>; returns the per-epoch log. The model is left in evaluation mode.</summary>
    /// <exception cref="InvalidDataException">A pair is bad and <see cref="ClipTrainingOptions.BadRows"/> is Error, or a checkpoint does not fit.</exception>
    /// <exception cref="OperationCanceledException">Only when cancelled before the first step; later cancellation returns with <see cref="ClipTrainingHistory.Cancelled"/>.</exception>
    public ClipTrainingHistory Train(ClipTrainingData data, IProgress<ClipTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var o = Options;
        o.Validate();
        if (Model.ComputeType != ScalarType.Float32)
            throw new InvalidOperationException("Training runs in float32; load or create the model without a reduced precision.");
        if (data.Count == 0) throw new InvalidDataException("The training data is empty.");
        if (o.Loss == ClipLoss.Sigmoid && Model.LogitBiasParameter is null)
            throw new InvalidOperationException("The sigmoid loss needs a model with a logit_bias (a SigLIP checkpoint, or a configuration with HasLogitBias); this model has none: use the contrastive loss.");
        if (data.Count < 2) throw new InvalidDataException("The training data has 1 pair; the contrastive loss needs at least 2.");
        cancellationToken.ThrowIfCancellationRequested();

        Model.Tokenizer = Tokenizer;
        int batchSize = Math.Min(o.BatchSize, data.Count);
        int stepsPerEpoch = data.Count / batchSize;
        int totalSteps = stepsPerEpoch * o.Epochs;
        var history = new ClipTrainingHistory();

        var visualParams = Model.Visual.parameters().ToList();
        var textParams = Model.Text.parameters().ToList();
        foreach (var p in visualParams) p.requires_grad = !o.LockImageTower;
        foreach (var p in textParams) p.requires_grad = !o.LockTextTower;
        var trainable = Model.named_parameters().Where(np => np.parameter.requires_grad).ToList();
        var decay = trainable.Where(np => np.parameter.dim() >= 2).Select(np => np.parameter).ToList();
        var noDecay = trainable.Where(np => np.parameter.dim() < 2).Select(np => np.parameter).ToList();
        using var optimizer = torch.optim.AdamW(new[]
        {
            new AdamW.ParamGroup(decay, o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay),
            new AdamW.ParamGroup(noDecay, o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, 0.0),
        }, o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay);

        int startStep = 0;
        if (o.ResumeFrom is { } resume)
            startStep = LoadCheckpoint(resume, optimizer, stepsPerEpoch, batchSize, history);

        double maxLogit = Math.Log(o.MaxLogitScale);
        int resolution = Model.ImageResolution;
        data.Preprocessing = Model.ImagePreprocessing;
        var epochWatch = new Stopwatch();
        double epochLoss = 0, epochAccuracy = 0;
        int epochSteps = 0, epochPairs = 0;
        SetTrainMode(true);
        try
        {
            // The next step's pairs are decoded and augmented on the batching engine while this one trains.
            using var batches = new TrainingBatches(this, data, startStep, totalSteps, stepsPerEpoch, batchSize, resolution);
            epochWatch.Start();
            for (int step = startStep; step < totalSteps; step++)
            {
                var batch = batches.Next();
                history.SkippedPairs += batch.Skipped;

                double lr = LearningRateSchedule.At(step, totalSteps, o.WarmupSteps, o.LearningRate);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

                double loss, accuracy;
                using (batch.Pixels)
                {
                    if (batch.Captions.Length < 2) { loss = double.NaN; accuracy = double.NaN; }
                    else (loss, accuracy) = Step(optimizer, batch, step);
                }
                using (torch.no_grad()) Model.LogitScaleParameter.clamp_(0, maxLogit);

                history.StepLosses.Add(loss);
                history.CompletedSteps = step + 1;
                if (!double.IsNaN(loss)) { epochLoss += loss; epochAccuracy += accuracy; epochSteps++; }
                epochPairs += batch.Captions.Length;
                int epoch = step / stepsPerEpoch + 1;
                double rate = epochPairs / Math.Max(1e-9, epochWatch.Elapsed.TotalSeconds);
                progress?.Report(new ClipTrainingProgress(step + 1, totalSteps, epoch, o.Epochs, loss, accuracy, lr, Model.LogitScale, rate));

                bool endOfEpoch = (step + 1) % stepsPerEpoch == 0;
                if (endOfEpoch)
                {
                    epochWatch.Stop();
                    var log = new ClipEpochLog
                    {
                        Epoch = epoch,
                        Loss = epochSteps > 0 ? epochLoss / epochSteps : double.NaN,
                        Accuracy = epochSteps > 0 ? epochAccuracy / epochSteps : double.NaN,
                        LearningRate = lr,
                        LogitScale = Model.LogitScale,
                        Seconds = epochWatch.Elapsed.TotalSeconds,
                        PairsPerSecond = rate,
                    };
                    if (o.EpochEvaluation is { } evaluate)
                    {
                        SetTrainMode(false);
                        foreach (var (k, v) in evaluate(Model, epoch)) log.Metrics[k] = v;
                        SetTrainMode(true);
                    }
                    history.Epochs.Add(log);
                    epochLoss = epochAccuracy = 0;
                    epochSteps = epochPairs = 0;
                    epochWatch.Restart();
                }
                bool cancel = cancellationToken.IsCancellationRequested && step + 1 < totalSteps;
                bool periodic = o.CheckpointEverySteps > 0 && (step + 1) % o.CheckpointEverySteps == 0;
                if (o.CheckpointFolder is not null && (endOfEpoch || periodic || cancel || step + 1 == totalSteps))
                    SaveCheckpoint(o.CheckpointFolder, optimizer, step + 1, stepsPerEpoch, batchSize, history);
                if (cancel)
                {
                    history.Cancelled = true;
                    break;
                }
            }
        }
        finally
        {
            SetTrainMode(false);
            foreach (var p in visualParams.Concat(textParams)) p.requires_grad = true;
        }
        return history;
    }

    private void SetTrainMode(bool train)
    {
        Model.eval();
        if (!train) return;
        if (!Options.LockImageTower) Model.Visual.train();
        if (!Options.LockTextTower) Model.Text.train();
    }

    private (double Loss, double Accuracy) Step(AdamW optimizer, Batch batch, int step)
    {
        var o = Options;
        optimizer.zero_grad();
        int n = batch.Captions.Length;
        var pixels = batch.Pixels;
        if (o.Augmentation is { } augmentation)
        {
            var random = new Random(TrainingSeed.Mix(o.Seed, step, 0x5eed));
            pixels = RandomResizedCrop.Apply(pixels, augmentation, random);
        }
        long[]? positives = !o.IdenticalCaptionsArePositives ? null : batch.Groups ?? DistinctValues.Of(batch.Captions, StringComparer.Ordinal).IndexOf;

        int micro = Math.Min(o.AccumulationSteps, n);
        var bounds = Enumerable.Range(0, micro + 1).Select(j => (int)((long)n * j / micro)).ToArray();
        double loss, accuracy;
        using var scope = NewDisposeScope();
        if (micro == 1)
        {
            var image = ImageFeatures(pixels);
            var text = TextFeatures(batch.Captions, 0, n);
            var (l, acc) = Loss(image, text, Model.LogitScaleParameter.exp(), Model.LogitBiasParameter, positives);
            l.backward();
            loss = l.item<float>();
            accuracy = acc;
        }
        else
        {
            // Exact accumulation: features of all micro-batches first without gradients; then each micro-batch
            // again with gradients, its live features in place of its cached ones, so every pass differentiates
            // the full-batch loss with respect to its own part. The temperature is live in one pass only.
            var cachedImages = new Tensor[micro];
            var cachedTexts = new Tensor[micro];
            using (torch.no_grad())
            {
                for (int j = 0; j < micro; j++)
                {
                    cachedImages[j] = ImageFeatures(pixels.narrow(0, bounds[j], bounds[j + 1] - bounds[j]));
                    cachedTexts[j] = TextFeatures(batch.Captions, bounds[j], bounds[j + 1]);
                }
            }
            loss = 0;
            accuracy = 0;
            for (int j = 0; j < micro; j++)
            {
                using var inner = NewDisposeScope();
                var image = ImageFeatures(pixels.narrow(0, bounds[j], bounds[j + 1] - bounds[j]));
                var text = TextFeatures(batch.Captions, bounds[j], bounds[j + 1]);
                var images = torch.cat(cachedImages.Select((c, k) => k == j ? image : c).ToArray(), 0);
                var texts = torch.cat(cachedTexts.Select((c, k) => k == j ? text : c).ToArray(), 0);
                var scale = j == 0 ? Model.LogitScaleParameter.exp() : Model.LogitScaleParameter.exp().detach();
                var bias = j == 0 ? Model.LogitBiasParameter : Model.LogitBiasParameter?.detach();
                var (l, acc) = Loss(images, texts, scale, bias, positives);
                l.backward();
                if (j == 0) { loss = l.item<float>(); accuracy = acc; }
            }
        }
        if (o.MaxGradientNorm is { } maxNorm)
            torch.nn.utils.clip_grad_norm_(Model.parameters().Where(p => p.requires_grad), maxNorm);
        optimizer.step();
        return (loss, accuracy);
    }

    private (Tensor Loss, double Accuracy) Loss(Tensor images, Tensor texts, Tensor scale, Tensor? bias, long[]? positives) =>
        Options.Loss == ClipLoss.Sigmoid
            ? SigmoidLoss.Compute(images, texts, scale, bias!, positives)
            : ContrastiveLoss.Compute(images, texts, scale, positives);

    private Tensor ImageFeatures(Tensor pixels)
    {
        if (Options.LockImageTower)
        {
            using var _ = torch.no_grad();
            return ClipModel.Normalize(Model.Visual.forward(pixels));
        }
        return ClipModel.Normalize(Model.Visual.forward(pixels));
    }

    /// <summary>Text features of captions [start, end): each distinct caption is encoded once, then gathered.</summary>
    private Tensor TextFeatures(string[] captions, int start, int end)
    {
        var slice = captions[start..end];
        var (unique, inverse) = DistinctValues.Of(slice, StringComparer.Ordinal);
        using var tokens = Tokenizer.Tokenize(unique);
        using var index = torch.tensor(inverse);
        Tensor features;
        if (Options.LockTextTower)
        {
            using var _ = torch.no_grad();
            features = Model.Text.forward(tokens.to(Model.Device));
        }
        else
        {
            features = Model.Text.forward(tokens.to(Model.Device));
        }
        return ClipModel.Normalize(features).index_select(0, index.to(Model.Device));
    }


}
