using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Training;

/// <summary>CLIP's symmetric cross-entropy over image-text logits.</summary>
public static class ContrastiveLoss
{
    /// <summary>
    /// <c>(CE(logits, targets) + CE(logitsᵀ, targetsᵀ)) / 2</c> with <c>logits = scale · imageᵀ·text</c> over
    /// normalized features. With <paramref name="captionIds"/>, pairs with the same id are positives of each other and
    /// each row's target is spread evenly over its positives; without, the target of row i is column i (CLIP's loss).
    /// </summary>
    /// <param name="imageFeatures">[B, D], L2-normalized.</param>
    /// <param name="textFeatures">[B, D], L2-normalized.</param>
    /// <param name="logitScale">The temperature <c>exp(logit_scale)</c>, a scalar tensor.</param>
    /// <param name="captionIds">Per pair, an id equal for identical captions; null for the plain loss.</param>
    /// <returns>The loss (scalar) and the image-to-text accuracy of the batch (a row is right when its argmax is a positive).</returns>
    public static (Tensor Loss, double Accuracy) Compute(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, long[]? captionIds)
    {
        using var scope = NewDisposeScope();
        long b = imageFeatures.shape[0];
        var logits = logitScale * imageFeatures.matmul(textFeatures.t());          // [B, B]
        Tensor loss;
        Tensor positives;
        if (captionIds is null)
        {
            var labels = torch.arange(b, device: logits.device);
            loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2;
            positives = torch.eye(b, device: logits.device, dtype: ScalarType.Bool);
        }
        else
        {
            if (captionIds.Length != b) throw new ArgumentException($"{captionIds.Length} caption ids for {b} pairs.", nameof(captionIds));
            var ids = torch.tensor(captionIds, device: logits.device);
            positives = ids.unsqueeze(1).eq(ids.unsqueeze(0));                     // [B, B], symmetric
            var targets = positives.to(logits.dtype);
            targets = targets / targets.sum(1, keepdim: true);
            var imageToText = -(targets * nn.functional.log_softmax(logits, 1)).sum(1).mean();
            var textToImage = -(targets * nn.functional.log_softmax(logits.t(), 1)).sum(1).mean();
            loss = (imageToText + textToImage) / 2;
        }
        double accuracy;
        using (torch.no_grad())
        {
            var best = logits.argmax(1);
            var hit = positives.gather(1, best.unsqueeze(1)).to(ScalarType.Float32);
            accuracy = hit.mean().item<float>();
        }
        return (scope.MoveToOuter(loss), accuracy);
    }
}
