using Clip.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Training;

public class ContrastiveLossTests
{
    [Fact]
    public void PlainLossIsTheMeanOfBothCrossEntropiesComputedByHand()
    {
        using var scope = NewDisposeScope();
        var image = ClipModel.Normalize(torch.tensor(new float[] { 1, 0, 0.6f, 0.8f }, new long[] { 2, 2 }));
        var text = ClipModel.Normalize(torch.tensor(new float[] { 0.8f, 0.6f, 0, 1 }, new long[] { 2, 2 }));
        var (loss, accuracy) = ContrastiveLoss.Compute(image, text, torch.tensor(10f), null);
        // logits = 10 * [[0.8, 0], [0.96, 0.8]]
        double[,] l = { { 8, 0 }, { 9.6, 8 } };
        double Ce(double a, double b) => -a + Math.Log(Math.Exp(a) + Math.Exp(b));
        double i2t = (Ce(l[0, 0], l[0, 1]) + Ce(l[1, 1], l[1, 0])) / 2;
        double t2i = (Ce(l[0, 0], l[1, 0]) + Ce(l[1, 1], l[0, 1])) / 2;
        Assert.Equal((i2t + t2i) / 2, loss.item<float>(), 4);
        Assert.Equal(0.5, accuracy, 6);   // row 1's argmax is column 0
    }

    [Fact]
    public void IdenticalCaptionsShareTheTarget()
    {
        using var scope = NewDisposeScope();
        var image = ClipModel.Normalize(torch.randn(3, 4));
        var text = ClipModel.Normalize(torch.randn(3, 4));
        text[1] = text[0];   // pairs 0 and 1 have the same caption, hence the same text features
        var scale = torch.tensor(5f);
        var (soft, _) = ContrastiveLoss.Compute(image, text, scale, new long[] { 0, 0, 1 });
        var logits = (image.matmul(text.t()) * 5).to(ScalarType.Float64);
        var t = torch.tensor(new double[,] { { 0.5, 0.5, 0 }, { 0.5, 0.5, 0 }, { 0, 0, 1 } });
        var byHand = (-(t * logits.log_softmax(1)).sum(1).mean() - (t * logits.t().log_softmax(1)).sum(1).mean()) / 2;
        Assert.Equal(byHand.item<double>(), soft.item<float>(), 4);
        // Identical captions have identical features, so spreading the target over them leaves the loss (and its
        // gradient) as CLIP's plain loss has it; what changes is which answers count as right.
        var (plain, _) = ContrastiveLoss.Compute(image, text, scale, null);
        Assert.Equal(plain.item<float>(), soft.item<float>(), 4);
    }

    [Fact]
    public void AccuracyCountsAnyIdenticalCaptionAsRight()
    {
        using var scope = NewDisposeScope();
        var text = ClipModel.Normalize(torch.tensor(new float[] { 1, 0, 1, 0, 0, 1 }, new long[] { 3, 2 }));   // captions 0 and 1 identical
        var image = ClipModel.Normalize(torch.tensor(new float[] { 1, 0.1f, 1, 0.1f, 0.1f, 1 }, new long[] { 3, 2 }));
        var (_, plain) = ContrastiveLoss.Compute(image, text, torch.tensor(10f), null);
        var (_, withIds) = ContrastiveLoss.Compute(image, text, torch.tensor(10f), new long[] { 0, 0, 1 });
        Assert.Equal(2.0 / 3, plain, 6);     // image 1's argmax ties onto caption 0
        Assert.Equal(1.0, withIds, 6);
    }

    [Fact]
    public void ScheduleWarmsUpLinearlyThenDecaysAsACosine()
    {
        Assert.Equal(0.1, LearningRateSchedule.At(0, 110, 10, 1.0), 9);
        Assert.Equal(1.0, LearningRateSchedule.At(9, 110, 10, 1.0), 9);
        Assert.Equal(1.0, LearningRateSchedule.At(10, 110, 10, 1.0), 9);
        Assert.Equal(0.5, LearningRateSchedule.At(60, 110, 10, 1.0), 9);
        Assert.Equal(0.0, LearningRateSchedule.At(110, 110, 10, 1.0), 9);
    }
}
