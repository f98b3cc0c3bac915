using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>
/// A zero-shot classifier: one normalized text embedding per class, made with the CLIP paper's prompt
/// ensembling (each class's prompts, over all templates and synonyms, embedded and normalized, averaged,
/// normalized again). Classifies image features by <c>softmax(logit_scale × cosine similarity)</c>.
/// </summary>
public sealed class ZeroShotClassifier : IDisposable
{
    private readonly Tensor weights;   // [C, D], rows L2-normalized, float32, on the model's device

    private ZeroShotClassifier(ZeroShotPrompts prompts, Tensor weights, float logitScale)
    {
        Prompts = prompts;
        this.weights = weights;
        LogitScale = logitScale;
    }

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
        return new ZeroShotClassifier(prompts, scope.MoveToOuter(weights), model.LogitScale);
    }

    /// <summary>Recreates a classifier from saved class embeddings (see <see cref="Weights"/>).</summary>
    public static ZeroShotClassifier FromWeights(ZeroShotPrompts prompts, Tensor weights, float logitScale)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.dim() != 2 || weights.shape[0] != prompts.Classes.Count)
            throw new ArgumentException($"Class embeddings must be [{prompts.Classes.Count}, D], got [{string.Join(", ", weights.shape)}].", nameof(weights));
        return new ZeroShotClassifier(prompts, weights.to(ScalarType.Float32).detach().clone().DetachFromDisposeScope(), logitScale);
    }

    /// <summary>Logits <c>[N, C]</c> for image features <c>[N, D]</c> (normalized here).</summary>
    public Tensor Logits(Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        var f = ClipModel.Normalize(imageFeatures.to(ScalarType.Float32, weights.device));
        return scope.MoveToOuter(f.matmul(weights.t()) * LogitScale);
    }

    /// <summary>Class probabilities <c>[N, C]</c>: the softmax of <see cref="Logits"/> over classes.</summary>
    public Tensor Probabilities(Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(Logits(imageFeatures).softmax(1));
    }

    /// <inheritdoc />
    public void Dispose() => weights.Dispose();
}
