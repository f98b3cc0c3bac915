using System.Text.Json.Nodes;
using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Estimator for <see cref="ClipImageEmbeddingTransformer"/>: CLIP image embeddings of an image column
/// (MLImage, file path or encoded bytes) as a fixed-size float vector, L2-normalized by default.
/// Nothing is trained: <see cref="Fit"/> checks the schema and returns the transformer.
/// </summary>
public sealed class ClipImageEmbeddingEstimator : IEstimator<ClipImageEmbeddingTransformer>
{
    /// <summary>Options of <see cref="ClipImageEmbeddingEstimator"/>.</summary>
    public sealed class Options : ClipImageStageOptions
    {
        /// <summary>The output column: a vector of <c>embed_dim</c> floats. Default <c>Features</c>.</summary>
        public string OutputColumnName { get; set; } = "Features";
        /// <summary>L2-normalize the embeddings (default true), as for cosine similarity.</summary>
        public bool Normalize { get; set; } = true;
    }

    private readonly ClipModel model;
    private readonly Options options;

    /// <summary>Creates the estimator over a loaded model (not owned: dispose it yourself after the transformers).</summary>
    public ClipImageEmbeddingEstimator(ClipModel model, Options? options = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.options = options ?? new Options();
        this.options.Validate();
    }

    /// <summary>Checks the input column and returns the transformer.</summary>
    public ClipImageEmbeddingTransformer Fit(IDataView input)
    {
        StageOptionChecks.CheckFit(input.Schema, options, ColumnRule.Image, "ClipImageEmbedding", options.OutputColumnName);
        return new ClipImageEmbeddingTransformer(model, options);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        StageOptionChecks.EmbeddingShape(inputSchema, options, ColumnRule.Image, options.OutputColumnName, "ClipImageEmbedding");
}

/// <summary>
/// CLIP image embeddings as an ML.NET transformer. Rows are processed in batches of
/// <see cref="ClipStageOptions.BatchSize"/>; results and order equal batch size 1.
/// Safe to use from several threads; dispose it to free weights it owns.
/// </summary>
public sealed class ClipImageEmbeddingTransformer : ClipModelTransformer<ClipImageEmbeddingEstimator.Options>
{
    private readonly Stage stage;

    /// <summary>The training log when this transformer came from <see cref="ClipContrastiveEstimator"/>; otherwise null.</summary>
    public Clip.MLNet.Training.ClipTrainingHistory? TrainingHistory { get; internal set; }

    internal ClipImageEmbeddingTransformer(ClipModel model, ClipImageEmbeddingEstimator.Options options) : base(model, options)
    {
        var preprocessor = model.CreateImagePreprocessor(options.MaxImagePixels);
        stage = new Stage(model, preprocessor, options);
    }

    /// <summary>Length of the embedding vectors.</summary>
    public int EmbeddingSize => Model.Config.EmbedDim;

    internal override BatchStage Core => stage;

    internal const string Kind = "ClipImageEmbedding";
    internal override string PersistKind => Kind;

    internal override JsonObject SaveState(PipelineWriter writer) => OptionsState(Options, Model, writer);

    internal static ClipImageEmbeddingTransformer Load(JsonObject state, PipelineReader reader) =>
        FromOptionsState<ClipImageEmbeddingTransformer, ClipImageEmbeddingEstimator.Options>(state, reader, (model, options) => new(model, options));

    private sealed class Stage(ClipModel model, ClipImagePreprocessor preprocessor, ClipImageEmbeddingEstimator.Options options) : OptionsStage(options, ColumnRule.Image)
    {
        private readonly BatchOutputColumn[] outputs = { BatchOutputColumn.Floats(options.OutputColumnName, model.Config.EmbedDim) };

        public override IReadOnlyList<BatchOutputColumn> Outputs => outputs;
        public override BatchWorker CreateWorker(DataViewSchema.Column input) => new Worker(model, preprocessor, options);
    }

    private sealed class Worker(ClipModel model, ClipImagePreprocessor preprocessor, ClipImageEmbeddingEstimator.Options options)
        : ImageBatchWorker(model, preprocessor, options.ImageFolder)
    {
        protected override void Write(Tensor features, IReadOnlyList<int> slots, BatchOutputs outputs)
        {
            if (options.Normalize) features = ClipModel.Normalize(features);
            BatchRows.ScatterRows(features, outputs.Floats[0], Model.Config.EmbedDim, slots);
        }
    }
}
