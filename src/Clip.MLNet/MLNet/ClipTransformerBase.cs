using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>
/// What the CLIP transformers share: a lazy, batched <see cref="Transform"/>, a row-to-row mapper for
/// <c>PredictionEngine</c>, the skipped-row count, and disposal of the native weights they own.
/// </summary>
public abstract class ClipTransformerBase : ITransformer, IDisposable
{
    internal const string SaveMessage =
        "Clip.MLNet transformers cannot be written into an ML.NET model file by mlContext.Model.Save, because ML.NET keeps " +
        "its model-saving API internal to its own assemblies. Save the fitted pipeline with " +
        "mlContext.Model.SaveClipPipeline(model, inputSchema, path) and load it with mlContext.Model.LoadClipPipeline(path, out inputSchema).";

    private readonly List<IDisposable> owned = new();
    private bool disposed;

    private protected ClipTransformerBase() { }

    internal abstract BatchStage Core { get; }

    /// <summary>Rows whose input could not be processed and were given missing outputs (with <see cref="BadRowHandling.Skip"/>).</summary>
    public long SkippedRows => Core.SkippedRows;

    /// <summary>True: these transformers map rows one to one (so <c>PredictionEngine</c> works).</summary>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ThrowIfDisposed();
        return Core.GetOutputSchema(inputSchema ?? throw new ArgumentNullException(nameof(inputSchema)));
    }

    /// <summary>Returns a lazy view: rows are computed in batches when a cursor reads them.</summary>
    public IDataView Transform(IDataView input)
    {
        ThrowIfDisposed();
        return new BatchingDataView(input ?? throw new ArgumentNullException(nameof(input)), Core);
    }

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ThrowIfDisposed();
        return new SingleRowMapper(Core, inputSchema);
    }

    /// <summary>Not supported: see the exception's message for the supported way to save.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(SaveMessage);

    /// <summary>The stage's name in pipeline files.</summary>
    internal abstract string PersistKind { get; }

    /// <summary>The stage's options and references to its weights, for <c>SaveClipPipeline</c>.</summary>
    internal abstract System.Text.Json.Nodes.JsonObject SaveState(PipelineWriter writer);

    /// <summary>Recreates a stage from what <see cref="SaveState"/> wrote.</summary>
    internal static ClipTransformerBase LoadState(string? kind, System.Text.Json.Nodes.JsonObject state, PipelineReader reader) => kind switch
    {
        ClipImageEmbeddingTransformer.Kind => ClipImageEmbeddingTransformer.Load(state, reader),
        ClipTextEmbeddingTransformer.Kind => ClipTextEmbeddingTransformer.Load(state, reader),
        ClipZeroShotTransformer.Kind => ClipZeroShotTransformer.Load(state, reader),
        ClipClassKeyTransformer.Kind => ClipClassKeyTransformer.Load(state, reader),
        _ => throw new Weights.ClipCheckpointException(reader.Path, $"the pipeline holds a stage of unknown kind '{kind}' (written by a newer Clip.MLNet?)"),
    };

    /// <summary>The saved state of a stage whose options serialize as they are: the options and the model's entry in the pipeline file.</summary>
    private protected static System.Text.Json.Nodes.JsonObject OptionsState(object options, ClipModel model, PipelineWriter writer)
    {
        var state = System.Text.Json.JsonSerializer.SerializeToNode(options, options.GetType())!.AsObject();
        state["model"] = writer.AddModel(model);
        return state;
    }

    /// <summary>Reads what <see cref="OptionsState"/> wrote and makes the stage with <paramref name="create"/>; the stage owns the model it loaded.</summary>
    private protected static T FromOptionsState<T, TOptions>(System.Text.Json.Nodes.JsonObject state, PipelineReader reader, Func<ClipModel, TOptions, T> create)
        where T : ClipTransformerBase
    {
        var options = System.Text.Json.JsonSerializer.Deserialize<TOptions>(state)!;
        var (model, reference) = reader.Model((string)state["model"]!);
        var transformer = create(model, options);
        transformer.Own(reference);
        return transformer;
    }

    internal T Own<T>(T resource) where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    private protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    /// <summary>Frees the native memory this transformer owns (models it loaded itself, classifier weights).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var r in owned) r.Dispose();
        owned.Clear();
        GC.SuppressFinalize(this);
    }
}
