using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Clip.MLNet.Batching;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Estimator for <see cref="ClipTextEmbeddingTransformer"/>: CLIP text embeddings of a text column as a
/// fixed-size float vector, L2-normalized by default. Nothing is trained: <see cref="Fit"/> checks the schema.
/// </summary>
public sealed class ClipTextEmbeddingEstimator : IEstimator<ClipTextEmbeddingTransformer>
{
    /// <summary>Options of <see cref="ClipTextEmbeddingEstimator"/>.</summary>
    public sealed class Options : ClipStageOptions
    {
        /// <summary>Creates the options: input column <c>Text</c>, 64 rows per batch.</summary>
        public Options() : base("Text", 64) { }

        /// <summary>The tokenizer for the catalog method that takes these options; the model's own (<see cref="ClipModel.Tokenizer"/>) when null. Not saved with the options: pipeline files keep the tokenizer the stage used.</summary>
        [System.Text.Json.Serialization.JsonIgnore]
        public ClipTokenizer? Tokenizer { get; set; }
        /// <summary>The output column: a vector of <c>embed_dim</c> floats. Default <c>Features</c>.</summary>
        public string OutputColumnName { get; set; } = "Features";
        /// <summary>L2-normalize the embeddings (default true).</summary>
        public bool Normalize { get; set; } = true;
        /// <summary>Texts longer than the context are truncated, keeping the end-of-text token (default true); false makes them an error.</summary>
        public bool Truncate { get; set; } = true;
    }

    private readonly ClipModel model;
    private readonly ClipTokenizer tokenizer;
    private readonly Options options;

    /// <summary>Creates the estimator over a loaded model and its tokenizer (neither owned).</summary>
    public ClipTextEmbeddingEstimator(ClipModel model, ClipTokenizer tokenizer, Options? options = null)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        this.options = options ?? new Options();
        this.options.Validate();
        TextInput.CheckTokenizer(model, tokenizer);
    }

    /// <summary>Checks the input column and returns the transformer.</summary>
    public ClipTextEmbeddingTransformer Fit(IDataView input)
    {
        StageOptionChecks.CheckFit(input.Schema, options, ColumnRule.Text, "ClipTextEmbedding", options.OutputColumnName);
        return new ClipTextEmbeddingTransformer(model, tokenizer, options);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        StageOptionChecks.EmbeddingShape(inputSchema, options, ColumnRule.Text, options.OutputColumnName, "ClipTextEmbedding");
}

/// <summary>CLIP text embeddings as an ML.NET transformer, batched; safe to use from several threads.</summary>
public sealed class ClipTextEmbeddingTransformer : ClipModelTransformer<ClipTextEmbeddingEstimator.Options>
{
    private readonly Stage stage;

    /// <summary>The tokenizer turning texts into ids.</summary>
    public ClipTokenizer Tokenizer { get; }

    internal ClipTextEmbeddingTransformer(ClipModel model, ClipTokenizer tokenizer, ClipTextEmbeddingEstimator.Options options) : base(model, options)
    {
        Tokenizer = tokenizer;
        stage = new Stage(model, tokenizer, options);
    }

    internal override BatchStage Core => stage;

    internal const string Kind = "ClipTextEmbedding";
    internal override string PersistKind => Kind;

    internal override JsonObject SaveState(PipelineWriter writer)
    {
        var state = OptionsState(Options, Model, writer);
        state["tokenizer"] = writer.AddTokenizer(Tokenizer);
        return state;
    }

    internal static ClipTextEmbeddingTransformer Load(JsonObject state, PipelineReader reader) =>
        FromOptionsState<ClipTextEmbeddingTransformer, ClipTextEmbeddingEstimator.Options>(state, reader,
            (model, options) => new(model, reader.Tokenizer((string)state["tokenizer"]!), options));

    private sealed class Stage(ClipModel model, ClipTokenizer tokenizer, ClipTextEmbeddingEstimator.Options options) : OptionsStage(options, ColumnRule.Text)
    {
        private readonly BatchOutputColumn[] outputs = { BatchOutputColumn.Floats(options.OutputColumnName, model.Config.EmbedDim) };

        public override IReadOnlyList<BatchOutputColumn> Outputs => outputs;
        public override int PrefetchBatches => 0;   // tokenizing is cheap next to the forward pass
        public override BatchWorker CreateWorker(DataViewSchema.Column input) => new Worker(model, tokenizer, options);
    }

    private sealed class Worker(ClipModel model, ClipTokenizer tokenizer, ClipTextEmbeddingEstimator.Options options) : BatchWorker
    {
        private readonly List<Tensor> buffers = new();

        public override object CreateBuffer(int capacity)
        {
            var buffer = torch.zeros(capacity, tokenizer.ContextLength, ScalarType.Int64).DetachFromDisposeScope();
            buffers.Add(buffer);
            return buffer;
        }

        public override void Prepare(object buffer, int slot, object? value) =>
            TextInput.Tokenize(tokenizer, value, options.Truncate, (Tensor)buffer, slot);

        public override string? Describe(object? value) => TextInput.Describe(value);

        public override void Compute(object buffer, int count, bool[] valid, BatchOutputs outputs)
        {
            using var scope = NewDisposeScope();
            var slots = BatchRows.ValidSlots(valid, count);
            var features = model.EncodeText(BatchRows.ValidRows((Tensor)buffer, slots, count));
            if (options.Normalize) features = ClipModel.Normalize(features);
            BatchRows.ScatterRows(features, outputs.Floats[0], model.Config.EmbedDim, slots);
        }

        public override void Dispose()
        {
            foreach (var b in buffers) b.Dispose();
            buffers.Clear();
        }
    }
}

/// <summary>Reading a text column for CLIP.</summary>
internal static class TextInput
{
    public static void Check(DataViewSchema inputSchema, string column) => ColumnRule.Text.Check(inputSchema, column);

    public static void Check(SchemaShape inputSchema, string column) => ColumnRule.Text.Check(inputSchema, column);

    public static void CheckTokenizer(ClipModel model, ClipTokenizer tokenizer)
    {
        if (tokenizer.ContextLength > model.ContextLength)
            throw new ArgumentException($"The tokenizer's context length {tokenizer.ContextLength} exceeds the model's {model.ContextLength}.");
        if (tokenizer.VocabularySize > model.Config.VocabSize)
            throw new ArgumentException($"The tokenizer's vocabulary ({tokenizer.VocabularySize} ids) is larger than the model's token table ({model.Config.VocabSize}).");
    }

    public static void Tokenize(ClipTokenizer tokenizer, object? value, bool truncate, Tensor buffer, int slot)
    {
        var text = value switch
        {
            ReadOnlyMemory<char> m => m.ToString(),
            null => "",
            _ => throw new InvalidDataException($"unsupported text value of type {value.GetType().Name}"),
        };
        int length = tokenizer.ContextLength;
        var row = MemoryMarshal.Cast<byte, long>(buffer.bytes).Slice(slot * length, length);
        tokenizer.EncodeInto(text, row, truncate);
    }

    public static string? Describe(object? value)
    {
        if (value is not ReadOnlyMemory<char> m) return null;
        var s = m.ToString();
        return s.Length <= 60 ? $"text \"{s}\"" : $"text \"{s[..57]}...\"";
    }
}
