using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>
/// A zero-shot classifier: one normalized text embedding per class, made with the CLIP paper's prompt
/// ensembling (each class's prompts, over all templates and synonyms, embedded and normalized, averaged,
/// normalized again). Classifies image features by <c>softmax(logit_scale × cosine similarity)</c>, or, for
/// models with a <c>logit_bias</c> (SigLIP), by each class's own <c>sigmoid(logit_scale × cos + logit_bias)</c>.
/// </summary>
public sealed class ZeroShotClassifier : IDisposable
{
    private readonly Tensor weights;   // [C, D], rows L2-normalized, float32, on the model's device

    private ZeroShotClassifier(ZeroShotPrompts prompts, Tensor weights, float logitScale, float? logitBias = null)
    {
        Prompts = prompts;
        this.weights = weights;
        LogitScale = logitScale;
        LogitBias = logitBias;
    }

    /// <summary>The model's <c>logit_bias</c> for sigmoid-scored models (SigLIP); null for softmax-scored ones.</summary>
    public float? LogitBias { get; }

    /// <summary>How <see cref="Probabilities"/> scores: <see cref="ClipScoring.Sigmoid"/> when there is a <see cref="LogitBias"/>.</summary>
    public ClipScoring Scoring => LogitBias is null ? ClipScoring.Softmax : ClipScoring.Sigmoid;

    /// <summary>The classes and templates the classifier was built from.</summary>
    public ZeroShotPrompts Prompts { get; }

    /// <summary>Display names, one per class in class order.</summary>
    public IReadOnlyList<string> ClassNames => Prompts.ClassNames;

    /// <summary>Number of classes.</summary>
    public int ClassCount => (int)weights.shape[0];

    /// <summary>The temperature: the model's <c>exp(logit_scale)</c>.</summary>
    public float LogitScale { get; }

    /// <summary>The class embeddings <c>[C, D]</c> (normalized). Owned by the classifier: do not dispose.</summary>
    public Tensor Weights => weights;

    /// <summary>Builds the classifier by embedding every prompt with the model's text tower.</summary>
    /// <param name="model">The CLIP model.</param>
    /// <param name="tokenizer">Its tokenizer.</param>
    /// <param name="prompts">Classes and templates.</param>
    /// <param name="batchSize">Prompts per forward pass.</param>
    public static ZeroShotClassifier Create(ClipModel model, ClipTokenizer tokenizer, ZeroShotPrompts prompts, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompts);
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>(prompts.Classes.Count);
        foreach (var synonyms in prompts.Classes)
        {
            var texts = synonyms.SelectMany(name => prompts.Templates.Select(t => ZeroShotPrompts.Fill(t, name))).ToList();
            Tensor sum = torch.zeros(model.Config.EmbedDim, device: model.Device);
            for (int start = 0; start < texts.Count; start += batchSize)
            {
                var chunk = texts.GetRange(start, Math.Min(batchSize, texts.Count - start));
                var tokens = tokenizer.Tokenize(chunk);
                var features = ClipModel.Normalize(model.EncodeText(tokens));
                sum = sum + features.sum(dim: 0);
            }
            var mean = sum / texts.Count;
            rows.Add(mean / mean.norm());
        }
        var weights = torch.stack(rows, 0);
        return new ZeroShotClassifier(prompts, scope.MoveToOuter(weights), model.LogitScale, model.LogitBias);
    }

    /// <summary>Recreates a classifier from saved class embeddings (see <see cref="Weights"/>).</summary>
    public static ZeroShotClassifier FromWeights(ZeroShotPrompts prompts, Tensor weights, float logitScale) =>
        FromWeights(prompts, weights, logitScale, null);

    /// <summary>Recreates a classifier from saved class embeddings, with the <c>logit_bias</c> of a sigmoid-scored model (null: softmax).</summary>
    public static ZeroShotClassifier FromWeights(ZeroShotPrompts prompts, Tensor weights, float logitScale, float? logitBias)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.dim() != 2 || weights.shape[0] != prompts.Classes.Count)
            throw new ArgumentException($"Class embeddings must be [{prompts.Classes.Count}, D], got [{string.Join(", ", weights.shape)}].", nameof(weights));
        return new ZeroShotClassifier(prompts, weights.to(ScalarType.Float32).detach().clone().DetachFromDisposeScope(), logitScale, logitBias);
    }

    /// <summary>Logits <c>[N, C]</c> for image features <c>[N, D]</c> (normalized here), <see cref="LogitBias"/> included where there is one.</summary>
    public Tensor Logits(Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        var f = ClipModel.Normalize(imageFeatures.to(ScalarType.Float32, weights.device));
        var logits = f.matmul(weights.t()) * LogitScale;
        if (LogitBias is { } bias) logits = logits + bias;
        return scope.MoveToOuter(logits);
    }

    /// <summary>
    /// Class probabilities <c>[N, C]</c>: the softmax of <see cref="Logits"/> over classes, or for sigmoid-scored
    /// models (<see cref="Scoring"/>) each class's sigmoid, independent of the others (they need not sum to 1).
    /// </summary>
    public Tensor Probabilities(Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(imageFeatures);
        return scope.MoveToOuter(Scoring == ClipScoring.Sigmoid ? torch.sigmoid(logits) : logits.softmax(1));
    }

    /// <summary>
    /// The <paramref name="k"/> highest scores of each row of <paramref name="probabilities"/> (<c>[N, C]</c>, as
    /// <see cref="Probabilities"/> returns them), best first: the class indices and their scores, both row-major
    /// <c>[N × k]</c>, with <paramref name="k"/> cut to the class count. The one top-k labelling that the ML.NET
    /// transform and the <c>clip zero-shot</c> tool share.
    /// </summary>
    public static (int[] Classes, float[] Scores) TopClasses(Tensor probabilities, int k)
    {
        if (probabilities.dim() != 2) throw new ArgumentException($"Expected probabilities [N, C], got [{string.Join(", ", probabilities.shape)}].", nameof(probabilities));
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be positive.");
        using var scope = NewDisposeScope();
        var (values, indices) = probabilities.to(ScalarType.Float32).cpu().topk((int)Math.Min(k, probabilities.shape[1]), dim: 1);
        return (indices.contiguous().data<long>().Select(i => (int)i).ToArray(), values.contiguous().data<float>().ToArray());
    }

    /// <inheritdoc />
    public void Dispose() => weights.Dispose();
}
