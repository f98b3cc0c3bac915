namespace Clip.MLNet.Transforms;

/// <summary>
/// The checks every CLIP stage's options share, with one wording: a catalog method names its own parameter
/// (<c>batchSize</c>), an options object names the property (<c>Options.BatchSize</c>).
/// </summary>
internal static class StageOptionChecks
{
    /// <summary>A catalog method's count parameter: positive, or an error naming the parameter.</summary>
    public static int Positive(int value, string parameterName) =>
        value > 0 ? value : throw new ArgumentOutOfRangeException(parameterName, value, $"{parameterName} must be positive.");

    /// <summary>The batching options of a stage.</summary>
    public static void Check(int batchSize, int? intraOpThreads, int preprocessThreads = 1)
    {
        if (batchSize <= 0)
            throw new ArgumentOutOfRangeException("options", batchSize, $"Options.BatchSize must be positive (got {batchSize}).");
        if (intraOpThreads <= 0)
            throw new ArgumentOutOfRangeException("options", intraOpThreads, $"Options.IntraOpThreads must be positive or null (got {intraOpThreads}).");
        if (preprocessThreads <= 0)
            throw new ArgumentOutOfRangeException("options", preprocessThreads, $"Options.PreprocessThreads must be positive (got {preprocessThreads}).");
    }
}
