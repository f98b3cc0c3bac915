using System.Text.Json.Nodes;
using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Maps a true-label column onto the keys a <see cref="ClipZeroShotTransformer"/> predicts, so that
/// <c>mlContext.MulticlassClassification.Evaluate</c> compares like with like. ML.NET's
/// <c>MapValueToKey</c> numbers keys by first occurrence in the data; this mapping numbers them by
/// position in the class list. Text labels match a class name exactly (the first class of that name
/// when names repeat); integer labels are 0-based class indices.
/// </summary>
public sealed class ClipClassKeyEstimator : IEstimator<ClipClassKeyTransformer>
{
    private readonly string outputColumnName;
    private readonly string inputColumnName;
    private readonly IReadOnlyList<string> classNames;
    private readonly BadRowHandling unknownLabels;

    /// <summary>Creates the mapping.</summary>
    /// <param name="outputColumnName">The key column to create (usually <c>Label</c>).</param>
    /// <param name="inputColumnName">The true label: text (a class name) or an integer (a 0-based class index).</param>
    /// <param name="classNames">The class names, in the order the classifier uses (<see cref="ClipZeroShotTransformer.ClassNames"/>).</param>
    /// <param name="unknownLabels">A label outside the class list: an error naming it (default), or a missing key.</param>
    public ClipClassKeyEstimator(string outputColumnName, string inputColumnName, IReadOnlyList<string> classNames, BadRowHandling unknownLabels = BadRowHandling.Error)
    {
        this.outputColumnName = outputColumnName ?? throw new ArgumentNullException(nameof(outputColumnName));
        this.inputColumnName = inputColumnName ?? throw new ArgumentNullException(nameof(inputColumnName));
        this.classNames = classNames?.ToArray() ?? throw new ArgumentNullException(nameof(classNames));
        if (this.classNames.Count == 0) throw new ArgumentException("The class list is empty.", nameof(classNames));
        this.unknownLabels = unknownLabels;
    }

    /// <inheritdoc />
    public ClipClassKeyTransformer Fit(IDataView input)
    {
        var transformer = new ClipClassKeyTransformer(outputColumnName, inputColumnName, classNames, unknownLabels);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ClipClassKeyTransformer.Rule.Check(inputSchema, inputColumnName);
        return MLNetInterop.WithOutputs(inputSchema, new[]
        {
            MLNetInterop.ShapeColumn(outputColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, MLNetInterop.KeyValuesShape()),
        });
    }
}

/// <summary>The fitted class-key mapping (see <see cref="ClipClassKeyEstimator"/>).</summary>
public sealed class ClipClassKeyTransformer : ClipTransformerBase
{
    internal const string AcceptedTypes = "a text column of class names or an integer column of 0-based class indices";

    internal static readonly ColumnRule Rule = new("the class-key mapping", AcceptedTypes, IsAccepted,
        c => c.Kind == SchemaShape.Column.VectorKind.Scalar && !c.IsKey && IsAccepted(c.ItemType));

    private readonly Stage stage;

    internal ClipClassKeyTransformer(string outputColumnName, string inputColumnName, IReadOnlyList<string> classNames, BadRowHandling unknownLabels)
    {
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        ClassNames = classNames;
        UnknownLabels = unknownLabels;
        stage = new Stage(this);
    }

    /// <summary>The key column created.</summary>
    public string OutputColumnName { get; }
    /// <summary>The label column read.</summary>
    public string InputColumnName { get; }
    /// <summary>The classes, in key order.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>What a label outside the class list does.</summary>
    public BadRowHandling UnknownLabels { get; }

    internal override BatchStage Core => stage;

    internal const string Kind = "ClipClassKey";
    internal override string PersistKind => Kind;

    internal override JsonObject SaveState(PipelineWriter writer) => new()
    {
        ["output_column"] = OutputColumnName,
        ["input_column"] = InputColumnName,
        ["classes"] = new JsonArray(ClassNames.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
        ["unknown_labels"] = UnknownLabels.ToString(),
    };

    internal static ClipClassKeyTransformer Load(JsonObject state, PipelineReader reader) => new(
        (string)state["output_column"]!, (string)state["input_column"]!,
        state["classes"]!.AsArray().Select(n => (string)n!).ToArray(),
        Enum.Parse<BadRowHandling>((string)state["unknown_labels"]!));

    internal static bool IsAccepted(DataViewType t) =>
        t is TextDataViewType || t == NumberDataViewType.Int32 || t == NumberDataViewType.UInt32 || t == NumberDataViewType.Int64
        || t == NumberDataViewType.Int16 || t == NumberDataViewType.Byte || t == NumberDataViewType.Single || t == NumberDataViewType.Double;

    private sealed class Stage : BatchStage
    {
        private readonly ClipClassKeyTransformer parent;
        private readonly Dictionary<string, uint> keyOf = new(StringComparer.Ordinal);
        private readonly BatchOutputColumn[] outputs;

        public Stage(ClipClassKeyTransformer parent)
        {
            this.parent = parent;
            for (int i = 0; i < parent.ClassNames.Count; i++) keyOf.TryAdd(parent.ClassNames[i], (uint)(i + 1));
            outputs = new[]
            {
                new BatchOutputColumn(parent.OutputColumnName, OutputKind.Key, 1, new KeyDataViewType(typeof(uint), parent.ClassNames.Count),
                    ClipZeroShotTransformer.NamesAnnotation(parent.ClassNames, keyValues: true)),
            };
        }

        public override string InputColumnName => parent.InputColumnName;
        public override IReadOnlyList<BatchOutputColumn> Outputs => outputs;
        public override int BatchSize => 256;
        public override int PrefetchBatches => 0;
        public override BadRowHandling BadRows => parent.UnknownLabels;

        public override void CheckInput(DataViewSchema inputSchema)
        {
            Rule.Check(inputSchema, parent.InputColumnName);
        }

        public override BatchWorker CreateWorker(DataViewSchema.Column input) => new Worker(this);

        private sealed class Worker(Stage stage) : BatchWorker
        {
            public override object CreateBuffer(int capacity) => new uint[capacity];

            public override void Prepare(object buffer, int slot, object? value)
            {
                int count = stage.parent.ClassNames.Count;
                ((uint[])buffer)[slot] = value switch
                {
                    ReadOnlyMemory<char> text => stage.keyOf.TryGetValue(text.ToString(), out var k)
                        ? k : throw new InvalidDataException($"the label '{text}' is not one of the {count} classes"),
                    float or double => IndexKey(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), count),
                    IConvertible c => IndexKey(c.ToInt64(System.Globalization.CultureInfo.InvariantCulture), count),
                    _ => throw new InvalidDataException("the label is missing"),
                };
            }

            private static uint IndexKey(double index, int count) =>
                index == Math.Floor(index) && index >= 0 && index < count
                    ? (uint)index + 1
                    : throw new InvalidDataException($"the label {index} is not a class index (0 to {count - 1})");

            public override string? Describe(object? value) => value is null ? null : $"label {value}";

            public override void Compute(object buffer, int count, bool[] valid, BatchOutputs outputs)
            {
                var keys = (uint[])buffer;
                for (int s = 0; s < count; s++) if (valid[s]) outputs.Keys[0][s] = keys[s];
            }
        }
    }
}
