namespace Clip.MLNet.Training;

/// <summary>
/// Seeds derived from the training seed and a position (epoch, step, item). They must be the same in every process,
/// since a run resumed from a checkpoint replays the rest of its epoch: <see cref="HashCode.Combine{T1,T2}"/> is
/// randomized per process and so cannot be used. Each part goes through SplitMix64's finalizer.
/// </summary>
internal static class TrainingSeed
{
    public static int Mix(int a, int b, int c)
    {
        ulong h = Finalize(0x9E3779B97F4A7C15UL ^ (uint)a);
        h = Finalize(h ^ (uint)b);
        h = Finalize(h ^ (uint)c);
        return (int)(h ^ (h >> 32)) & int.MaxValue;
    }

    private static ulong Finalize(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
