using Clip.MLNet.Tests.Families;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Training;

/// <summary>SigLIP's pairwise sigmoid loss against the formula computed by hand, and training with it.</summary>
public class SigmoidLossTests
{
    private static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));

    /// <summary>-Σᵢⱼ log σ(zᵢⱼ (scale · xᵢ·yⱼ + bias)) / B, in doubles.</summary>
    private static double ByHand(double[][] x, double[][] y, double scale, double bias, Func<int, int, bool> positive)
    {
        int b = x.Length;
        double sum = 0;
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++)
            {
                double dot = x[i].Zip(y[j], (p, q) => p * q).Sum();
                double z = positive(i, j) ? 1 : -1;
                sum += LogSigmoid(z * (scale * dot + bias));
            }
        return -sum / b;
    }

    private static double[][] Unit(params double[][] rows) =>
        rows.Select(r => { double n = Math.Sqrt(r.Sum(v => v * v)); return r.Select(v => v / n).ToArray(); }).ToArray();

    private static Tensor T(double[][] rows) =>
        torch.tensor(rows.SelectMany(r => r).Select(v => (float)v).ToArray(), new long[] { rows.Length, rows[0].Length });

    [Fact]
    public void MatchesTheFormulaOnASmallBatch()
    {
        var x = Unit([1, 0, 0], [0.6, 0.8, 0], [0, 0.3, 1]);
        var y = Unit([0.9, 0.1, 0], [0.5, 1, 0.2], [0.1, 0, 1]);
        using var scope = NewDisposeScope();
        var (loss, accuracy) = SigmoidLoss.Compute(T(x), T(y), torch.tensor(10f), torch.tensor(-10f), null);
        Assert.Equal(ByHand(x, y, 10, -10, (i, j) => i == j), loss.item<float>(), 4);
        Assert.Equal(1.0, accuracy);

        // Identical captions: pairs 0 and 2 are positives of each other as well.
        var (grouped, _) = SigmoidLoss.Compute(T(x), T(y), torch.tensor(3f), torch.tensor(0.5f), new long[] { 7, 8, 7 });
        Assert.Equal(ByHand(x, y, 3, 0.5, (i, j) => i == j || (i != 1 && j != 1)), grouped.item<float>(), 4);
    }

    [Fact]
    public void TheBiasAndTheTemperatureGetGradients()
    {
        var x = Unit([1, 2], [2, -1]);
        var y = Unit([1, 1.5], [1.5, -1]);
        using var scope = NewDisposeScope();
        var scale = torch.tensor(Math.Log(10)).requires_grad_(true);
        var bias = torch.tensor(-10.0).requires_grad_(true);
        var (loss, _) = SigmoidLoss.Compute(T(x).to(ScalarType.Float64), T(y).to(ScalarType.Float64), scale.exp(), bias, null);
        loss.backward();
        // d/d bias of -Σ log σ(z (s·d + b)) / B = -Σ z σ(-z (s·d + b)) / B.
        double expected = 0;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
            {
                double d = x[i].Zip(y[j], (p, q) => p * q).Sum(), z = i == j ? 1 : -1;
                expected -= z / (1 + Math.Exp(z * (10 * d - 10)));
            }
        Assert.Equal(expected / 2, bias.grad!.item<double>(), 6);
        Assert.NotEqual(0, scale.grad!.item<double>());
    }

    [Fact]
    public void TrainingASigLipModelMovesItsBias()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        float before = model.LogitBias!.Value;
        var data = ClipTrainingData.FromFiles(FamilyFixtures.ImagePaths, FamilyFixtures.Texts);
        var history = new ClipTrainer(model, model.RequireTokenizer(),
            new ClipTrainingOptions { Epochs = 2, BatchSize = 5, WarmupSteps = 1, LearningRate = 1e-2, Loss = ClipLoss.Sigmoid }).Train(data);
        Assert.All(history.StepLosses, l => Assert.True(double.IsFinite(l)));
        Assert.NotEqual(before, model.LogitBias!.Value);
    }

    [Fact]
    public void TheSigmoidLossNeedsALogitBias()
    {
        using var model = ClipModel.Create(ReferenceData.Vit.Config);
        var data = ClipTrainingData.FromFiles(FamilyFixtures.ImagePaths, FamilyFixtures.Texts);
        var e = Assert.Throws<InvalidOperationException>(() =>
            new ClipTrainer(model, ClipTokenizer.Load(Fixtures.Vocab), new ClipTrainingOptions { Epochs = 1, BatchSize = 5, Loss = ClipLoss.Sigmoid }).Train(data));
        Assert.Contains("logit_bias", e.Message);
    }

    [Fact]
    public void ANewModelWithABiasStartsWhereSigLipDoes()
    {
        using var model = ClipModel.Create(ReferenceData.Vit.Config with { HasLogitBias = true });
        Assert.Equal(-10f, model.LogitBias);
        Assert.Equal(10f, model.LogitScale, 4);
        Assert.Equal(ClipScoring.Sigmoid, model.Scoring);
    }
}
