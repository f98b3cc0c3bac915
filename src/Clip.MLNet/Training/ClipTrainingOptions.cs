using Clip.MLNet.Transforms;
namespace Clip.MLNet.Training;

/// <summary>How <see cref="ClipTrainer"/> trains: optimizer, schedule, loss, augmentation, checkpoints.</summary>
public sealed class ClipTrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Image-caption pairs per optimizer step (the contrastive loss compares every pair of the batch).</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>
    /// Micro-batches per step. The loss is still computed over the whole batch (features of the other
    /// micro-batches are cached), so the gradient equals that of one large batch; memory is that of a micro-batch.
    /// </summary>
    public int AccumulationSteps { get; set; } = 1;

    /// <summary>
    /// The loss: <see cref="ClipLoss.Contrastive"/> (CLIP's, the default) or <see cref="ClipLoss.Sigmoid"/> (SigLIP's; the
    /// model must have a <c>logit_bias</c>: SigLIP checkpoints, or a configuration with <see cref="ClipConfig.HasLogitBias"/>).
    /// </summary>
    public ClipLoss Loss { get; set; } = ClipLoss.Contrastive;

    /// <summary>Peak learning rate of AdamW.</summary>
    public double LearningRate { get; set; } = 5e-4;

    /// <summary>AdamW weight decay, applied to matrices only (not to gains, biases, embeddings vectors or the temperature).</summary>
    public double WeightDecay { get; set; } = 0.2;

    /// <summary>AdamW β1.</summary>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>AdamW β2 (0.98, as CLIP).</summary>
    public double Beta2 { get; set; } = 0.98;

    /// <summary>AdamW ε (1e-6, as CLIP).</summary>
    public double Epsilon { get; set; } = 1e-6;

    /// <summary>Steps of linear warm-up before the cosine decay.</summary>
    public int WarmupSteps { get; set; } = 100;

    /// <summary>Clip the gradient norm to this value (none when null).</summary>
    public double? MaxGradientNorm { get; set; }

    /// <summary>
    /// When true (default), pairs of a batch whose captions are identical count as positives of each other (the
    /// target of each row is spread evenly over them), or, when the data gives positive groups
    /// (<see cref="ClipTrainingData.PositiveGroup"/>, e.g. the class of a labelled set captioned from templates), pairs
    /// of the same group. When false, the plain CLIP loss: only the pair itself. For identical captions the two agree
    /// in loss and gradient (identical captions have identical features); they differ in the reported accuracy, and
    /// with positive groups also in what is learned.
    /// </summary>
    public bool IdenticalCaptionsArePositives { get; set; } = true;

    /// <summary>Freeze the image tower (train the text tower and temperature only).</summary>
    public bool LockImageTower { get; set; }

    /// <summary>Freeze the text tower.</summary>
    public bool LockTextTower { get; set; }

    /// <summary>
    /// Seed of the data order, augmentation and caption draws. Initial weights come from TorchSharp's generator
    /// (<c>torch.manual_seed</c>), which <c>ClipTrain</c> and <c>clip train</c> seed with the same value before creating a model.
    /// </summary>
    public int Seed { get; set; } = 1;

    /// <summary>Random resized crop applied to training images; none when null.</summary>
    public RandomResizedCropOptions? Augmentation { get; set; }

    /// <summary>The temperature's upper bound: <c>exp(logit_scale)</c> is clamped to at most this (100, as CLIP).</summary>
    public double MaxLogitScale { get; set; } = 100;

    /// <summary>Folder for checkpoints (model, optimizer, trainer state); none written when null.</summary>
    public string? CheckpointFolder { get; set; }

    /// <summary>Write a checkpoint every this many steps (0: at the end of each epoch only).</summary>
    public int CheckpointEverySteps { get; set; }

    /// <summary>Resume from this checkpoint folder (a <c>step-N</c> folder, or a checkpoint folder whose latest checkpoint is taken).</summary>
    public string? ResumeFrom { get; set; }

    /// <summary>What an unreadable image or a pair without a caption does: an error (default) or the pair is skipped and counted.</summary>
    public BadRowHandling BadRows { get; set; } = BadRowHandling.Error;

    /// <summary>Threads preparing the next batch (decoding, preprocessing) while the current one trains.</summary>
    public int PrepareThreads { get; set; } = 1;

    /// <summary>
    /// Called after each epoch with the model in evaluation mode; its metrics (for example a validation
    /// accuracy) go into that epoch's log.
    /// </summary>
    public Func<ClipModel, int, IReadOnlyDictionary<string, double>>? EpochEvaluation { get; set; }

    internal void Validate()
    {
        if (Epochs <= 0) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be positive.");
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "The contrastive loss needs at least 2 pairs per batch.");
        if (AccumulationSteps < 1 || AccumulationSteps > BatchSize)
            throw new ArgumentOutOfRangeException(nameof(AccumulationSteps), AccumulationSteps, "AccumulationSteps must be between 1 and BatchSize.");
        if (LearningRate <= 0) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The learning rate must be positive.");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps));
        if (MaxLogitScale <= 1) throw new ArgumentOutOfRangeException(nameof(MaxLogitScale));
        if (LockImageTower && LockTextTower) throw new ArgumentException("Locking both towers leaves only the temperature to train.");
    }
}

/// <summary>Random resized crop (as torchvision's): a random area fraction and aspect ratio, resized back to the input size.</summary>
public sealed class RandomResizedCropOptions
{
    /// <summary>Smallest fraction of the image area a crop keeps.</summary>
    public double MinScale { get; set; } = 0.8;
    /// <summary>Largest fraction of the image area a crop keeps.</summary>
    public double MaxScale { get; set; } = 1.0;
    /// <summary>Smallest aspect ratio (width / height) of a crop.</summary>
    public double MinRatio { get; set; } = 3.0 / 4.0;
    /// <summary>Largest aspect ratio of a crop.</summary>
    public double MaxRatio { get; set; } = 4.0 / 3.0;
    /// <summary>Probability of a horizontal flip (0: none).</summary>
    public double FlipProbability { get; set; }
}
