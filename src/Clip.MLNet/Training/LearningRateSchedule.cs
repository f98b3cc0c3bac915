namespace Clip.MLNet.Training;

/// <summary>Linear warm-up to the peak rate, then cosine decay to zero at the last step (as CLIP's training).</summary>
public static class LearningRateSchedule
{
    /// <summary>The learning rate at <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>.</summary>
    public static double At(int step, int totalSteps, int warmupSteps, double peak)
    {
        if (totalSteps <= 0) return peak;
        if (step < warmupSteps) return peak * (step + 1) / warmupSteps;
        int decaySteps = Math.Max(1, totalSteps - warmupSteps);
        double progress = Math.Min(1.0, (double)(step - warmupSteps) / decaySteps);
        return 0.5 * (1 + Math.Cos(Math.PI * progress)) * peak;
    }
}
