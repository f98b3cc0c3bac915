using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>The kinds of output column a batched stage produces.</summary>
internal enum OutputKind { FloatVector, Key, TextVector }

/// <summary>One output column of a batched stage.</summary>
internal sealed record BatchOutputColumn(string Name, OutputKind Kind, int Width, DataViewType Type, DataViewSchema.Annotations? Annotations = null)
{
    /// <summary>A float vector column of <paramref name="width"/> values (an embedding, scores).</summary>
    public static BatchOutputColumn Floats(string name, int width, DataViewSchema.Annotations? annotations = null) =>
        new(name, OutputKind.FloatVector, width, new VectorDataViewType(NumberDataViewType.Single, width), annotations);
}

/// <summary>Per-batch output storage: row-major arrays, one per output column.</summary>
internal sealed class BatchOutputs
{
    public BatchOutputs(IReadOnlyList<BatchOutputColumn> columns, int capacity)
    {
        Floats = new float[columns.Count][];
        Keys = new uint[columns.Count][];
        Texts = new ReadOnlyMemory<char>[columns.Count][];
        for (int i = 0; i < columns.Count; i++)
        {
            var c = columns[i];
            switch (c.Kind)
            {
                case OutputKind.FloatVector: Floats[i] = new float[capacity * c.Width]; break;
                case OutputKind.Key: Keys[i] = new uint[capacity]; break;
                case OutputKind.TextVector: Texts[i] = new ReadOnlyMemory<char>[capacity * c.Width]; break;
            }
        }
    }

    public float[][] Floats { get; }
    public uint[][] Keys { get; }
    public ReadOnlyMemory<char>[][] Texts { get; }
}

/// <summary>
/// A transform that runs a model over batches of rows: the cursor reads <see cref="BatchSize"/> rows
/// ahead, prepares each row's input (on worker threads), runs one forward pass for the batch and
/// then serves the rows one by one. Results and row order do not depend on the batch size.
/// </summary>
internal abstract class BatchStage
{
    /// <summary>The column the stage reads.</summary>
    public abstract string InputColumnName { get; }

    /// <summary>The columns the stage adds (replacing same-named input columns).</summary>
    public abstract IReadOnlyList<BatchOutputColumn> Outputs { get; }

    /// <summary>Rows per forward pass.</summary>
    public abstract int BatchSize { get; }

    /// <summary>Threads that prepare inputs (decode and preprocess) beside the forward pass.</summary>
    public virtual int PrepareThreads => 1;

    /// <summary>Batches prepared ahead of the one being computed (0: prepare in the consumer thread).</summary>
    public virtual int PrefetchBatches => 1;

    /// <summary>
    /// libtorch intra-op threads to set when a cursor starts (null: leave the process's setting). The
    /// setting is process-wide (<see cref="ClipModel.IntraOpThreads"/>).
    /// </summary>
    public virtual int? IntraOpThreads => null;

    /// <summary>Applies <see cref="IntraOpThreads"/> and creates a worker.</summary>
    public BatchWorker StartWorker(DataViewSchema.Column input)
    {
        if (IntraOpThreads is { } n) ClipModel.IntraOpThreads = n;
        return CreateWorker(input);
    }

    /// <summary>What a bad row does.</summary>
    public abstract BadRowHandling BadRows { get; }

    /// <summary>Counts rows skipped under <see cref="BadRowHandling.Skip"/>.</summary>
    public long SkippedRows => Interlocked.Read(ref skipped);
    private long skipped;
    internal void CountSkipped() => Interlocked.Increment(ref skipped);

    /// <summary>Throws (naming the column and the accepted types) unless the input column can be read.</summary>
    public abstract void CheckInput(DataViewSchema inputSchema);

    /// <summary>A worker for one cursor: reads, prepares and computes. Not shared between threads except <see cref="BatchWorker.Prepare"/>.</summary>
    public abstract BatchWorker CreateWorker(DataViewSchema.Column input);

    /// <summary>The stage's name in messages and in the <c>ClipStage</c> annotation of its outputs (ClipTextEmbedding, ...).</summary>
    public virtual string Name
    {
        get
        {
            var name = GetType().DeclaringType?.Name ?? GetType().Name;
            return name.EndsWith("Transformer", StringComparison.Ordinal) ? name[..^"Transformer".Length] : name;
        }
    }

    /// <summary>
    /// The output schema: input columns, then the outputs (hiding same-named inputs), each marked with the
    /// <c>ClipStage</c> annotation. Hiding another CLIP stage's output is refused.
    /// </summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        CheckInput(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        var name = Name.AsMemory();
        foreach (var o in Outputs)
        {
            MLNetInterop.CheckNotHidingClipOutput(o.Name, Name, MLNetInterop.ClipStageOf(inputSchema, o.Name));
            var annotations = new DataViewSchema.Annotations.Builder();
            if (o.Annotations is not null) annotations.Add(o.Annotations, _ => true);
            annotations.Add(MLNetInterop.ClipStageAnnotation, TextDataViewType.Instance, (ref ReadOnlyMemory<char> value) => value = name);
            builder.AddColumn(o.Name, o.Type, annotations.ToAnnotations());
        }
        return builder.ToSchema();
    }
}

/// <summary>Per-cursor work of a <see cref="BatchStage"/>.</summary>
internal abstract class BatchWorker : IDisposable
{
    /// <summary>Allocates the buffer prepared inputs of one batch go into.</summary>
    public abstract object CreateBuffer(int capacity);

    /// <summary>
    /// Prepares one row into <paramref name="slot"/> of <paramref name="buffer"/> from the value of the
    /// input column (boxed: a path, an MLImage, bytes, a text). Called concurrently for distinct slots.
    /// </summary>
    public abstract void Prepare(object buffer, int slot, object? value);

    /// <summary>Describes an input value for error messages (a path, an image tag); null when nothing better than the row number is known.</summary>
    public virtual string? Describe(object? value) => null;

    /// <summary>Runs the model over the valid slots of a prepared batch and fills <paramref name="outputs"/>.</summary>
    public abstract void Compute(object buffer, int count, bool[] valid, BatchOutputs outputs);

    public virtual void Dispose() { }
}

/// <summary>A stage configured by the options every CLIP transform shares: their overrides, once.</summary>
internal abstract class OptionsStage(ClipStageOptions options, ColumnRule rule) : BatchStage
{
    public override string InputColumnName => options.InputColumnName;
    public override int BatchSize => options.BatchSize;
    public override int PrepareThreads => options is ClipImageStageOptions image ? image.PreprocessThreads : 1;
    public override int? IntraOpThreads => options.IntraOpThreads;
    public override BadRowHandling BadRows => options.BadRows;
    public override void CheckInput(DataViewSchema inputSchema) => rule.Check(inputSchema, options.InputColumnName);
}
