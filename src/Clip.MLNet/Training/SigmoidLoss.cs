using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Training;

/// <summary>Which loss <see cref="ClipTrainer"/> optimizes.</summary>
public enum ClipLoss
{
    /// <summary>CLIP's symmetric cross-entropy over the batch (<see cref="ContrastiveLoss"/>).</summary>
    Contrastive,
    /// <summary>SigLIP's pairwise sigmoid loss with a learned bias (<see cref="SigmoidLoss"/>); the model needs a <c>logit_bias</c>.</summary>
    Sigmoid,
}

/// <summary>
/// SigLIP's pairwise sigmoid loss (Zhai et al. 2023; open_clip's <c>SigLipLoss</c>): every image-text pair of the batch is
/// a binary problem, positive for matching pairs and negative for the others:
/// <c>-Σᵢⱼ log σ(zᵢⱼ · (scale · xᵢ·yⱼ + bias)) / B</c> with <c>zᵢⱼ = 1</c> for positives and <c>-1</c> otherwise.
/// </summary>
public static class SigmoidLoss
{
    /// <summary>Computes the loss over normalized features.</summary>
    /// <param name="imageFeatures">[B, D], L2-normalized.</param>
    /// <param name="textFeatures">[B, D], L2-normalized.</param>
    /// <param name="logitScale">The temperature <c>exp(logit_scale)</c>, a scalar tensor (SigLIP starts at 10).</param>
    /// <param name="logitBias">The bias, a scalar tensor (SigLIP starts at -10).</param>
    /// <param name="captionIds">Per pair, an id equal for identical captions (those pairs are positives of each other); null: only the diagonal.</param>
    /// <returns>The loss (scalar) and the image-to-text accuracy of the batch (a row is right when its argmax is a positive).</returns>
    public static (Tensor Loss, double Accuracy) Compute(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, Tensor logitBias, long[]? captionIds)
    {
        using var scope = NewDisposeScope();
        long b = imageFeatures.shape[0];
        var logits = logitScale * imageFeatures.matmul(textFeatures.t()) + logitBias;   // [B, B]
        Tensor positives;
        if (captionIds is null) positives = torch.eye(b, device: logits.device, dtype: ScalarType.Bool);
        else
        {
            if (captionIds.Length != b) throw new ArgumentException($"{captionIds.Length} caption ids for {b} pairs.", nameof(captionIds));
            var ids = torch.tensor(captionIds, device: logits.device);
            positives = ids.unsqueeze(1).eq(ids.unsqueeze(0));
        }
        var signs = positives.to(logits.dtype) * 2 - 1;
        var loss = -nn.functional.logsigmoid(signs * logits).sum() / b;
        double accuracy;
        using (torch.no_grad())
        {
            var best = logits.argmax(1);
            accuracy = positives.gather(1, best.unsqueeze(1)).to(ScalarType.Float32).mean().item<float>();
        }
        return (scope.MoveToOuter(loss), accuracy);
    }
}
