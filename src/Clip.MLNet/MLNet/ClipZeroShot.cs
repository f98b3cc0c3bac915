using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Estimator for <see cref="ClipZeroShotTransformer"/>, CLIP's zero-shot image classifier.
/// <see cref="Fit"/> embeds the class prompts (with the paper's prompt ensembling); the transformer
/// then adds <c>Score</c> (per-class probabilities in class order) and <c>PredictedLabel</c> (a key whose
/// key values are the class names in order), as ML.NET's multiclass trainers do.
/// </summary>
public sealed class ClipZeroShotEstimator : IEstimator<ClipZeroShotTransformer>
{
    /// <summary>Options of <see cref="ClipZeroShotEstimator"/>.</summary>
    public sealed class Options : ClipImageStageOptions
    {
        /// <summary>The tokenizer for the catalog method that takes these options; the model's own (<see cref="ClipModel.Tokenizer"/>) when null. Not saved with the options: pipeline files keep the tokenizer the stage used.</summary>
        [System.Text.Json.Serialization.JsonIgnore]
        public ClipTokenizer? Tokenizer { get; set; }
        /// <summary>Per-class probabilities (a vector with the class names as slot names). Default <c>Score</c>.</summary>
        public string ScoreColumnName { get; set; } = "Score";
        /// <summary>The most probable class, as a key over the class names. Default <c>PredictedLabel</c>.</summary>
        public string PredictedLabelColumnName { get; set; } = "PredictedLabel";
        /// <summary>The classes: one name each. Use <see cref="Prompts"/> for synonym lists.</summary>
        public IReadOnlyList<string>? ClassNames { get; set; }
        /// <summary>Prompt templates with <c>{}</c> for the class name; default <c>{}</c> alone.</summary>
        public IReadOnlyList<string>? Templates { get; set; }
        /// <summary>Classes and templates together (takes precedence over <see cref="ClassNames"/> and <see cref="Templates"/>).</summary>
        public ZeroShotPrompts? Prompts { get; set; }
        /// <summary>When above 0, also outputs the <see cref="TopK"/> best classes per row: <c>TopLabels</c> (text) and <c>TopScores</c>.</summary>
        public int TopK { get; set; }
        /// <summary>Name of the top-k labels column. Default <c>TopLabels</c>.</summary>
        public string TopLabelsColumnName { get; set; } = "TopLabels";
        /// <summary>Name of the top-k probabilities column. Default <c>TopScores</c>.</summary>
        public string TopScoresColumnName { get; set; } = "TopScores";

        internal ZeroShotPrompts ResolvePrompts() =>
            Prompts ?? new ZeroShotPrompts(ClassNames ?? throw new ArgumentException("Zero-shot classification needs ClassNames or Prompts."), Templates);
    }

    private readonly ClipModel model;
    private readonly ClipTokenizer tokenizer;
    private readonly Options options;
    private readonly ZeroShotPrompts prompts;

    /// <summary>Creates the estimator over a loaded model and its tokenizer (neither owned).</summary>
    public ClipZeroShotEstimator(ClipModel model, ClipTokenizer tokenizer, Options options)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        if (options.TopK < 0) throw new ArgumentOutOfRangeException(nameof(options), options.TopK, "Options.TopK must not be negative.");
        TextInput.CheckTokenizer(model, tokenizer);
        prompts = options.ResolvePrompts();
    }

    /// <summary>The classes and templates this estimator classifies with.</summary>
    public ZeroShotPrompts Prompts => prompts;

    /// <summary>Embeds the class prompts and returns the classifier.</summary>
    public ClipZeroShotTransformer Fit(IDataView input)
    {
        StageOptionChecks.CheckFit(input.Schema, options, ColumnRule.Image, "ClipZeroShot", options.ScoreColumnName, options.PredictedLabelColumnName);
        var classifier = ZeroShotClassifier.Create(model, tokenizer, prompts);
        var transformer = new ClipZeroShotTransformer(model, classifier, options);
        transformer.Own(classifier);
        return transformer;
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ImageInput.Check(inputSchema, options.InputColumnName);
        var outputs = new List<SchemaShape.Column>
        {
            MLNetInterop.ShapeColumn(options.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, MLNetInterop.SlotNamesShape()),
            MLNetInterop.ShapeColumn(options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, MLNetInterop.KeyValuesShape()),
        };
        if (options.TopK > 0)
        {
            outputs.Add(MLNetInterop.ShapeColumn(options.TopLabelsColumnName, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false));
            outputs.Add(MLNetInterop.ShapeColumn(options.TopScoresColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));
        }
        return MLNetInterop.WithOutputs(inputSchema, outputs, "ClipZeroShot");
    }
}

/// <summary>
/// CLIP zero-shot classification as an ML.NET transformer: <c>Score</c> holds <c>softmax(logit_scale × cos)</c>
/// over the classes (for sigmoid-scored models such as SigLIP, each class's own <c>sigmoid(logit_scale × cos + logit_bias)</c>;
/// see <see cref="ZeroShotClassifier.Scoring"/>), <c>PredictedLabel</c> the argmax as a key over the class names. Batched; safe to use
/// from several threads; dispose it to free the class embeddings.
/// </summary>
public sealed class ClipZeroShotTransformer : ClipModelTransformer<ClipZeroShotEstimator.Options>
{
    private readonly Stage stage;

    /// <summary>The class embeddings and names.</summary>
    public ZeroShotClassifier Classifier { get; }

    internal ClipZeroShotTransformer(ClipModel model, ZeroShotClassifier classifier, ClipZeroShotEstimator.Options options) : base(model, options)
    {
        Classifier = classifier;
        var preprocessor = model.CreateImagePreprocessor(options.MaxImagePixels);
        stage = new Stage(model, classifier, preprocessor, options);
    }

    /// <summary>The class names in class order: the key values of <c>PredictedLabel</c> and the slot names of <c>Score</c>.</summary>
    public IReadOnlyList<string> ClassNames => Classifier.ClassNames;

    internal override BatchStage Core => stage;

    internal const string Kind = "ClipZeroShot";
    internal override string PersistKind => Kind;

    internal override JsonObject SaveState(PipelineWriter writer)
    {
        var o = Options;
        var prompts = Classifier.Prompts;
        return new JsonObject
        {
            ["model"] = writer.AddModel(Model),
            ["classes"] = new JsonArray(prompts.Classes.Select(c => (JsonNode)new JsonArray(c.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray())).ToArray()),
            ["templates"] = new JsonArray(prompts.Templates.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["class_embeddings"] = writer.AddTensors("classes", new Dictionary<string, Tensor> { ["weights"] = Classifier.Weights.cpu() }),
            ["logit_scale"] = Classifier.LogitScale,
            ["logit_bias"] = Classifier.LogitBias,
            ["input_column"] = o.InputColumnName,
            ["score_column"] = o.ScoreColumnName,
            ["predicted_label_column"] = o.PredictedLabelColumnName,
            ["top_k"] = o.TopK,
            ["top_labels_column"] = o.TopLabelsColumnName,
            ["top_scores_column"] = o.TopScoresColumnName,
            ["image_folder"] = o.ImageFolder,
            ["batch_size"] = o.BatchSize,
            ["preprocess_threads"] = o.PreprocessThreads,
            ["intra_op_threads"] = o.IntraOpThreads,
            ["bad_rows"] = o.BadRows.ToString(),
            ["max_image_pixels"] = o.MaxImagePixels,
        };
    }

    internal static ClipZeroShotTransformer Load(JsonObject state, PipelineReader reader)
    {
        var classes = state["classes"]!.AsArray().Select(c => (IReadOnlyList<string>)c!.AsArray().Select(n => (string)n!).ToArray()).ToArray();
        var templates = state["templates"]!.AsArray().Select(t => (string)t!).ToArray();
        var prompts = new ZeroShotPrompts(classes, templates);
        var options = new ClipZeroShotEstimator.Options
        {
            Prompts = prompts,
            InputColumnName = (string)state["input_column"]!,
            ScoreColumnName = (string)state["score_column"]!,
            PredictedLabelColumnName = (string)state["predicted_label_column"]!,
            TopK = (int)state["top_k"]!,
            TopLabelsColumnName = (string)state["top_labels_column"]!,
            TopScoresColumnName = (string)state["top_scores_column"]!,
            ImageFolder = (string?)state["image_folder"],
            BatchSize = (int)state["batch_size"]!,
            PreprocessThreads = (int)state["preprocess_threads"]!,
            IntraOpThreads = (int?)state["intra_op_threads"],
            BadRows = Enum.Parse<BadRowHandling>((string)state["bad_rows"]!),
            MaxImagePixels = (long?)state["max_image_pixels"],
        };
        var (model, reference) = reader.Model((string)state["model"]!);
        var tensors = reader.Tensors((string)state["class_embeddings"]!);
        ZeroShotClassifier classifier;
        try
        {
            classifier = ZeroShotClassifier.FromWeights(prompts, tensors["weights"].to(model.Device), (float)state["logit_scale"]!, (float?)state["logit_bias"]);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        var transformer = new ClipZeroShotTransformer(model, classifier, options);
        transformer.Own(classifier);
        transformer.Own(reference);
        return transformer;
    }

    internal static DataViewSchema.Annotations NamesAnnotation(IReadOnlyList<string> names, bool keyValues)
    {
        var values = names.Select(n => n.AsMemory()).ToArray();
        ValueGetter<VBuffer<ReadOnlyMemory<char>>> getter = (ref VBuffer<ReadOnlyMemory<char>> dst) =>
        {
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.CopyTo(editor.Values);
            dst = editor.Commit();
        };
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(keyValues ? Batching.AnnotationKinds.KeyValues : Batching.AnnotationKinds.SlotNames,
            new VectorDataViewType(TextDataViewType.Instance, values.Length), getter);
        return builder.ToAnnotations();
    }

    private sealed class Stage : OptionsStage
    {
        private readonly ClipModel model;
        private readonly ZeroShotClassifier classifier;
        private readonly ClipImagePreprocessor preprocessor;
        private readonly ClipZeroShotEstimator.Options options;
        private readonly BatchOutputColumn[] outputs;

        public Stage(ClipModel model, ZeroShotClassifier classifier, ClipImagePreprocessor preprocessor, ClipZeroShotEstimator.Options options)
            : base(options, ColumnRule.Image)
        {
            this.model = model;
            this.classifier = classifier;
            this.preprocessor = preprocessor;
            this.options = options;
            int c = classifier.ClassCount;
            var list = new List<BatchOutputColumn>
            {
                BatchOutputColumn.Floats(options.ScoreColumnName, c, NamesAnnotation(classifier.ClassNames, keyValues: false)),
                new(options.PredictedLabelColumnName, OutputKind.Key, 1, new KeyDataViewType(typeof(uint), c), NamesAnnotation(classifier.ClassNames, keyValues: true)),
            };
            if (options.TopK > 0)
            {
                int k = Math.Min(options.TopK, c);
                list.Add(new(options.TopLabelsColumnName, OutputKind.TextVector, k, new VectorDataViewType(TextDataViewType.Instance, k)));
                list.Add(BatchOutputColumn.Floats(options.TopScoresColumnName, k));
            }
            outputs = list.ToArray();
        }

        public override IReadOnlyList<BatchOutputColumn> Outputs => outputs;
        public override BatchWorker CreateWorker(DataViewSchema.Column input) => new Worker(this);

        private sealed class Worker(Stage stage) : ImageBatchWorker(stage.model, stage.preprocessor, stage.options.ImageFolder)
        {
            private readonly ReadOnlyMemory<char>[] names = stage.classifier.ClassNames.Select(n => n.AsMemory()).ToArray();

            protected override void Write(Tensor features, IReadOnlyList<int> slots, BatchOutputs outputs)
            {
                var probabilities = stage.classifier.Probabilities(features).cpu().contiguous();
                int c = stage.classifier.ClassCount;
                BatchRows.ScatterRows(probabilities, outputs.Floats[0], c, slots);
                var p = MemoryMarshal.Cast<byte, float>(probabilities.bytes);
                for (int i = 0; i < slots.Count; i++)
                {
                    var row = p.Slice(i * c, c);
                    int best = 0;
                    for (int j = 1; j < c; j++) if (row[j] > row[best]) best = j;
                    outputs.Keys[1][slots[i]] = (uint)(best + 1);
                }
                if (stage.options.TopK > 0)
                {
                    int k = stage.outputs[2].Width;
                    var (classes, scores) = ZeroShotClassifier.TopClasses(probabilities, k);
                    for (int i = 0; i < slots.Count; i++)
                        for (int j = 0; j < k; j++)
                        {
                            outputs.Texts[2][slots[i] * k + j] = names[classes[i * k + j]];
                            outputs.Floats[3][slots[i] * k + j] = scores[i * k + j];
                        }
                }
            }
        }
    }
}
