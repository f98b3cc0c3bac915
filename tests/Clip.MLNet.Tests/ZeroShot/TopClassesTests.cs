using TorchSharp;

namespace Clip.MLNet.Tests.ZeroShot;

public class TopClassesTests
{
    [Fact]
    public void Each_row_lists_its_highest_scores_best_first()
    {
        using var probabilities = torch.tensor(new float[] { 0.1f, 0.7f, 0.2f, 0.5f, 0.2f, 0.3f }).reshape(2, 3);

        var (classes, scores) = ZeroShotClassifier.TopClasses(probabilities, 2);

        Assert.Equal(new[] { 1, 2, 0, 2 }, classes);
        Assert.Equal(new[] { 0.7f, 0.2f, 0.5f, 0.3f }, scores);
    }

    [Fact]
    public void K_beyond_the_class_count_gives_every_class()
    {
        using var probabilities = torch.tensor(new float[] { 0.25f, 0.75f }).reshape(1, 2);

        var (classes, scores) = ZeroShotClassifier.TopClasses(probabilities, 5);

        Assert.Equal(new[] { 1, 0 }, classes);
        Assert.Equal(new[] { 0.75f, 0.25f }, scores);
    }

    [Fact]
    public void A_bad_k_or_shape_is_refused()
    {
        using var probabilities = torch.ones(2, 3);
        using var vector = torch.ones(3);

        Assert.Throws<ArgumentOutOfRangeException>(() => ZeroShotClassifier.TopClasses(probabilities, 0));
        Assert.Contains("[N, C]", Assert.Throws<ArgumentException>(() => ZeroShotClassifier.TopClasses(vector, 1)).Message);
    }
}
