using System.Globalization;
using Clip.MLNet.Training;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// Training progress on stderr: a bar redrawn in place on a terminal, one line per epoch otherwise
/// (logs and CI stay readable). Reports arrive on the training thread, in order.
/// </summary>
internal sealed class TrainingProgressPrinter : IProgress<ClipTrainingProgress>
{
    private readonly bool terminal = !Console.IsErrorRedirected;
    private int lastEpoch;

    public void Report(ClipTrainingProgress p)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} acc {p.Accuracy:P0} lr {p.LearningRate:0.0e0} {p.PairsPerSecond:F0} pairs/s");
        if (terminal)
        {
            int width = 24;
            int filled = (int)Math.Round(width * (double)p.Step / Math.Max(1, p.TotalSteps));
            Console.Error.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {line}   ");
            if (p.Step == p.TotalSteps) Console.Error.WriteLine();
        }
        else if (p.Epoch != lastEpoch && (p.Step % Math.Max(1, p.TotalSteps / p.Epochs) == 0 || p.Step == p.TotalSteps))
        {
            lastEpoch = p.Epoch;
            Console.Error.WriteLine(line);
        }
    }
}
