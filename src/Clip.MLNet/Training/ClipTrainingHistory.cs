using System.Text.Json.Serialization;

namespace Clip.MLNet.Training;

/// <summary>One epoch of training: mean loss and in-batch accuracy, the schedule's state and any evaluation metrics.</summary>
public sealed class ClipEpochLog
{
    /// <summary>1-based epoch number.</summary>
    public int Epoch { get; set; }
    /// <summary>Mean training loss over the epoch's steps.</summary>
    public double Loss { get; set; }
    /// <summary>Mean in-batch image-to-text accuracy (the argmax caption is a positive).</summary>
    public double Accuracy { get; set; }
    /// <summary>Learning rate at the epoch's last step.</summary>
    public double LearningRate { get; set; }
    /// <summary><c>exp(logit_scale)</c> at the epoch's end.</summary>
    public double LogitScale { get; set; }
    /// <summary>Wall-clock seconds the epoch took (training steps only).</summary>
    public double Seconds { get; set; }
    /// <summary>Pairs per second over the epoch.</summary>
    public double PairsPerSecond { get; set; }
    /// <summary>Metrics of <see cref="ClipTrainingOptions.EpochEvaluation"/>.</summary>
    public Dictionary<string, double> Metrics { get; set; } = new();
}

/// <summary>Progress of a training run, reported after every step.</summary>
public sealed record ClipTrainingProgress(int Step, int TotalSteps, int Epoch, int Epochs, double Loss, double Accuracy, double LearningRate, double LogitScale, double PairsPerSecond);

/// <summary>What a training run did: the per-epoch log and the loss of every step.</summary>
public sealed class ClipTrainingHistory
{
    /// <summary>One entry per completed epoch.</summary>
    public List<ClipEpochLog> Epochs { get; set; } = new();
    /// <summary>The loss of every step, in order (for loss curves).</summary>
    public List<double> StepLosses { get; set; } = new();
    /// <summary>Steps completed (including those of a resumed run).</summary>
    public int CompletedSteps { get; set; }
    /// <summary>Pairs skipped because their image or caption was bad.</summary>
    public int SkippedPairs { get; set; }
    /// <summary>True when the run stopped early on cancellation (after writing a checkpoint when a folder was set).</summary>
    [JsonIgnore]
    public bool Cancelled { get; set; }
}
