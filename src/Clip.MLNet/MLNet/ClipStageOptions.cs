namespace Clip.MLNet.Transforms;

/// <summary>What the options of every CLIP transform share: the input column and how rows are batched.</summary>
public abstract class ClipStageOptions
{
    private protected ClipStageOptions(string inputColumnName, int batchSize)
    {
        InputColumnName = inputColumnName;
        BatchSize = batchSize;
    }

    /// <summary>The column the stage reads.</summary>
    public string InputColumnName { get; set; }

    /// <summary>Rows per forward pass. Results do not depend on it.</summary>
    public int BatchSize { get; set; }

    /// <summary>
    /// libtorch intra-op threads for the forward pass (null, the default: leave libtorch's setting, one per core).
    /// This is <see cref="ClipModel.IntraOpThreads"/>: a process-wide setting applied when a cursor starts, so the
    /// last value set by any transform or caller wins.
    /// </summary>
    public int? IntraOpThreads { get; set; }

    /// <summary>What a row whose input cannot be processed does: an error (default) or missing outputs.</summary>
    public BadRowHandling BadRows { get; set; } = BadRowHandling.Error;

    /// <summary>Throws, naming the option, where a value is out of range.</summary>
    internal virtual void Validate() => StageOptionChecks.Check(BatchSize, IntraOpThreads);
}

/// <summary>What the options of the CLIP transforms that read images share.</summary>
public abstract class ClipImageStageOptions : ClipStageOptions
{
    private protected ClipImageStageOptions() : base("Image", 32) { }

    /// <summary>Folder that relative paths in a path column are resolved against (as <c>LoadImages</c>'s imageFolder).</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Threads decoding and preprocessing images beside the forward pass (default 1).</summary>
    public int PreprocessThreads { get; set; } = 1;

    /// <summary>Images with more pixels than this are refused before being decoded whole (null: the preprocessor's default).</summary>
    public long? MaxImagePixels { get; set; }

    internal override void Validate() => StageOptionChecks.Check(BatchSize, IntraOpThreads, PreprocessThreads);
}
