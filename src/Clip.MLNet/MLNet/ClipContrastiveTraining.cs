using Clip.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Contrastive training as an ML.NET estimator: <see cref="Fit"/> trains a CLIP model on an image column and a
/// caption column (from scratch, or fine-tuning a given model) and returns a <see cref="ClipImageEmbeddingTransformer"/>
/// carrying the trained model (<see cref="ClipModelTransformer{TOptions}.Model"/>, with its tokenizer) and the training log.
/// </summary>
public sealed class ClipContrastiveEstimator : IEstimator<ClipImageEmbeddingTransformer>
{
    /// <summary>Options of <see cref="ClipContrastiveEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The image column: MLImage, a text path, or a vector of bytes. Default <c>Image</c>.</summary>
        public string ImageColumnName { get; set; } = "Image";
        /// <summary>The caption column (text). Default <c>Caption</c>.</summary>
        public string CaptionColumnName { get; set; } = "Caption";
        /// <summary>The embedding column of the returned transformer. Default <c>Features</c>.</summary>
        public string OutputColumnName { get; set; } = "Features";
        /// <summary>Optimizer, schedule, loss, augmentation and checkpoint settings.</summary>
        public ClipTrainingOptions Training { get; set; } = new();
        /// <summary>
        /// The architecture when training from scratch (no model given). Its vocabulary size is taken from the
        /// tokenizer; when no tokenizer is given either, one is learned from the captions.
        /// </summary>
        public ClipConfig? Config { get; set; }
        /// <summary>Stops training cleanly at the next step (with a checkpoint when a folder is set).</summary>
        public CancellationToken CancellationToken { get; set; }
        /// <summary>Reports every step (besides ML.NET's progress channel).</summary>
        public IProgress<ClipTrainingProgress>? Progress { get; set; }
    }

    private readonly IHostEnvironment? env;
    private readonly ClipModel? model;
    private readonly ClipTokenizer? tokenizer;
    private readonly Options options;

    /// <summary>Creates the estimator: fine-tunes <paramref name="model"/> in place when given, else trains a new model of <see cref="Options.Config"/>.</summary>
    public ClipContrastiveEstimator(ClipModel? model, ClipTokenizer? tokenizer, Options options) : this(null, model, tokenizer, options) { }

    internal ClipContrastiveEstimator(IHostEnvironment? env, ClipModel? model, ClipTokenizer? tokenizer, Options options)
    {
        this.env = env;
        this.model = model;
        this.tokenizer = tokenizer;
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        if (model is null && options.Config is null)
            throw new ArgumentException("Give a model to fine-tune, or Options.Config to train one from scratch.");
        options.Training.Validate();
    }

    /// <summary>Trains and returns the embedding transformer over the trained model.</summary>
    public ClipImageEmbeddingTransformer Fit(IDataView input)
    {
        var data = ClipTrainingData.FromDataView(input, options.ImageColumnName, options.CaptionColumnName);
        var tok = tokenizer ?? model?.Tokenizer ?? ClipTokenizer.Train(data.CaptionCorpus(), options.Config!.ContextLength);
        ClipModel trained;
        bool owned = model is null;
        if (model is null)
        {
            torch.manual_seed(options.Training.Seed);
            trained = ClipModel.Create(options.Config! with { VocabSize = tok.VocabularySize });
        }
        else
        {
            trained = model;
        }
        try
        {
            using var channel = env?.StartProgressChannel("CLIP contrastive training");
            ClipTrainingProgress? last = null;
            channel?.SetHeader(new ProgressHeader(new[] { "loss", "accuracy" }, new[] { "steps" }), e =>
            {
                if (last is null) return;
                e.SetProgress(0, last.Step, last.TotalSteps);
                e.SetMetric(0, last.Loss);
                e.SetMetric(1, last.Accuracy);
            });
            var progress = new SynchronousProgress(p =>
            {
                last = p;
                options.Progress?.Report(p);
            });
            var history = new ClipTrainer(trained, tok, options.Training).Train(data, progress, options.CancellationToken);
            var transformer = new ClipImageEmbeddingTransformer(trained, new ClipImageEmbeddingEstimator.Options
            {
                InputColumnName = options.ImageColumnName,
                OutputColumnName = options.OutputColumnName,
            })
            { TrainingHistory = history };
            if (owned) transformer.Own(trained);
            return transformer;
        }
        catch
        {
            if (owned) trained.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ImageInput.Check(inputSchema, options.ImageColumnName);
        TextInput.Check(inputSchema, options.CaptionColumnName);
        return MLNetInterop.WithOutputs(inputSchema, new[]
        {
            MLNetInterop.ShapeColumn(options.OutputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false),
        });
    }

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool, out of order).</summary>
    private sealed class SynchronousProgress(Action<ClipTrainingProgress> report) : IProgress<ClipTrainingProgress>
    {
        public void Report(ClipTrainingProgress value) => report(value);
    }
}
