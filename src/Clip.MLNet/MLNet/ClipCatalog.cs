using System.Runtime.CompilerServices;
using Clip.MLNet;
using Clip.MLNet.Transforms;

namespace Microsoft.ML;

/// <summary>
/// CLIP transforms on <see cref="MLContext.Transforms"/>: <c>ClipImageEmbedding</c>, <c>ClipTextEmbedding</c>
/// and <c>ClipZeroShot</c>, plus <c>MapValueToClassKey</c> on <see cref="TransformsCatalog.Conversion"/>.
/// </summary>
public static class ClipCatalog
{
    /// <summary>
    /// CLIP image embeddings: <paramref name="inputColumnName"/> (an MLImage from <c>LoadImages</c>, an image
    /// file path, or encoded image bytes) to a vector of <c>embed_dim</c> floats in <paramref name="outputColumnName"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="model">The CLIP model (not owned by the transformer).</param>
    /// <param name="outputColumnName">The embedding column. Default <c>Features</c>.</param>
    /// <param name="inputColumnName">The image column. Default <c>Image</c>.</param>
    /// <param name="normalize">L2-normalize the embeddings (default true).</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    public static ClipImageEmbeddingEstimator ClipImageEmbedding(this TransformsCatalog catalog, ClipModel model,
        string outputColumnName = "Features", string inputColumnName = "Image", bool normalize = true, int batchSize = 32) =>
        new(model, new ClipImageEmbeddingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Normalize = normalize,
            BatchSize = StageOptionChecks.Positive(batchSize, nameof(batchSize)),
        });

    /// <summary>CLIP image embeddings with all options.</summary>
    public static ClipImageEmbeddingEstimator ClipImageEmbedding(this TransformsCatalog catalog, ClipModel model, ClipImageEmbeddingEstimator.Options options) =>
        new(model, options);

    /// <summary>
    /// CLIP text embeddings: the text column <paramref name="inputColumnName"/> to a vector of <c>embed_dim</c>
    /// floats, with the model's own tokenizer (<see cref="ClipModel.Tokenizer"/>; another one goes in
    /// <see cref="ClipTextEmbeddingEstimator.Options.Tokenizer"/>). Texts longer than the context are truncated
    /// (keeping the end-of-text token). The parameters are those of <c>ClipImageEmbedding</c>, in the same order.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="model">The CLIP model (not owned by the transformer).</param>
    /// <param name="outputColumnName">The embedding column. Default <c>Features</c>.</param>
    /// <param name="inputColumnName">The text column. Default <c>Text</c>.</param>
    /// <param name="normalize">L2-normalize the embeddings (default true).</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    [OverloadResolutionPriority(1)]
    public static ClipTextEmbeddingEstimator ClipTextEmbedding(this TransformsCatalog catalog, ClipModel model,
        string outputColumnName = "Features", string inputColumnName = "Text", bool normalize = true, int batchSize = 64) =>
        new(model, TokenizerOf(model, null), new ClipTextEmbeddingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Normalize = normalize,
            BatchSize = StageOptionChecks.Positive(batchSize, nameof(batchSize)),
        });

    /// <summary>CLIP text embeddings with a tokenizer given between the column names (the first release's order).</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="model">The CLIP model (not owned by the transformer).</param>
    /// <param name="outputColumnName">The embedding column. Default <c>Features</c>.</param>
    /// <param name="inputColumnName">The text column. Default <c>Text</c>.</param>
    /// <param name="tokenizer">The tokenizer; the model's own (<see cref="ClipModel.Tokenizer"/>) when null.</param>
    /// <param name="normalize">L2-normalize the embeddings (default true).</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    [Obsolete("Give the tokenizer in ClipTextEmbeddingEstimator.Options.Tokenizer (or load the model with it); the overload without it takes the parameters in ClipImageEmbedding's order.")]
    public static ClipTextEmbeddingEstimator ClipTextEmbedding(this TransformsCatalog catalog, ClipModel model,
        string outputColumnName = "Features", string inputColumnName = "Text", ClipTokenizer? tokenizer = null, bool normalize = true, int batchSize = 64) =>
        new(model, TokenizerOf(model, tokenizer), new ClipTextEmbeddingEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Normalize = normalize,
            BatchSize = StageOptionChecks.Positive(batchSize, nameof(batchSize)),
        });

    /// <summary>CLIP text embeddings with all options, the tokenizer among them (the model's own when it is null).</summary>
    public static ClipTextEmbeddingEstimator ClipTextEmbedding(this TransformsCatalog catalog, ClipModel model, ClipTextEmbeddingEstimator.Options options) =>
        new(model, TokenizerOf(model, options?.Tokenizer), options);

    /// <summary>CLIP text embeddings with all options and a tokenizer beside them.</summary>
    [Obsolete("Give the tokenizer in ClipTextEmbeddingEstimator.Options.Tokenizer.")]
    [OverloadResolutionPriority(-1)]
    public static ClipTextEmbeddingEstimator ClipTextEmbedding(this TransformsCatalog catalog, ClipModel model, ClipTextEmbeddingEstimator.Options options, ClipTokenizer? tokenizer = null) =>
        new(model, TokenizerOf(model, tokenizer ?? options?.Tokenizer), options);

    /// <summary>
    /// CLIP zero-shot classification of <paramref name="inputColumnName"/> into <paramref name="classNames"/>:
    /// adds <c>Score</c> (probabilities in class order) and <c>PredictedLabel</c> (a key over the class names).
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="model">The CLIP model (not owned by the transformer).</param>
    /// <param name="classNames">One name per class; names may repeat (classes are identified by position).</param>
    /// <param name="templates">Prompt templates with <c>{}</c> for the class name, ensembled as in the CLIP paper; default <c>{}</c>.</param>
    /// <param name="inputColumnName">The image column. Default <c>Image</c>.</param>
    /// <param name="tokenizer">The tokenizer; the model's own when null.</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    public static ClipZeroShotEstimator ClipZeroShot(this TransformsCatalog catalog, ClipModel model, IEnumerable<string> classNames,
        IEnumerable<string>? templates = null, string inputColumnName = "Image", ClipTokenizer? tokenizer = null, int batchSize = 32) =>
        new(model, TokenizerOf(model, tokenizer), new ClipZeroShotEstimator.Options
        {
            ClassNames = classNames?.ToArray() ?? throw new ArgumentNullException(nameof(classNames)),
            Templates = templates?.ToArray(),
            InputColumnName = inputColumnName,
            BatchSize = StageOptionChecks.Positive(batchSize, nameof(batchSize)),
        });

    /// <summary>CLIP zero-shot classification with all options (synonym lists, prompt files, top-k, the tokenizer).</summary>
    public static ClipZeroShotEstimator ClipZeroShot(this TransformsCatalog catalog, ClipModel model, ClipZeroShotEstimator.Options options) =>
        new(model, TokenizerOf(model, options?.Tokenizer), options!);

    /// <summary>CLIP zero-shot classification with all options and a tokenizer beside them.</summary>
    [Obsolete("Give the tokenizer in ClipZeroShotEstimator.Options.Tokenizer.")]
    [OverloadResolutionPriority(-1)]
    public static ClipZeroShotEstimator ClipZeroShot(this TransformsCatalog catalog, ClipModel model, ClipZeroShotEstimator.Options options, ClipTokenizer? tokenizer = null) =>
        new(model, TokenizerOf(model, tokenizer ?? options?.Tokenizer), options!);

    /// <summary>
    /// Maps a true-label column (class names, or 0-based class indices) onto keys numbered by position in
    /// <paramref name="classNames"/>: the same keys <c>ClipZeroShot</c> predicts, for <c>Evaluate</c>.
    /// </summary>
    public static ClipClassKeyEstimator MapValueToClassKey(this TransformsCatalog.ConversionTransforms catalog, string outputColumnName,
        string inputColumnName, IReadOnlyList<string> classNames, BadRowHandling unknownLabels = BadRowHandling.Error) =>
        new(outputColumnName, inputColumnName, classNames, unknownLabels);

    /// <summary>
    /// Contrastive training on an image column and a caption column: fine-tunes <paramref name="model"/> (in place)
    /// or, when it is null, trains a new model of <see cref="ClipContrastiveEstimator.Options.Config"/> from scratch.
    /// <c>Fit</c> returns an image-embedding transformer carrying the trained model and its training log; progress
    /// goes to ML.NET's progress channel.
    /// </summary>
    public static ClipContrastiveEstimator ClipTrain(this TransformsCatalog catalog, ClipModel? model, ClipContrastiveEstimator.Options options, ClipTokenizer? tokenizer = null) =>
        new(MLNetInterop.EnvironmentOf(catalog), model, tokenizer, options);

    private static ClipTokenizer TokenizerOf(ClipModel model, ClipTokenizer? tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        return tokenizer ?? model.Tokenizer ?? throw new ArgumentException(model.MissingTokenizer ??
            "The model carries no tokenizer: pass one (ClipTokenizer.Load(\"bpe_simple_vocab_16e6.txt.gz\")), " +
            "or load the model with ClipLoadOptions.VocabularyPath (Hugging Face folders bring their own).", nameof(tokenizer));
    }
}
