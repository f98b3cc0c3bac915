using Clip.MLNet.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>
/// Running a text batch only up to its longest sequence gives the features of the padded 77-position
/// run: the mask is causal and pooling reads the end-of-text position, so later positions never count.
/// </summary>
public class TextTrimmingTests
{
    private static void AssertSameFeatures(ClipModel model, Tensor tokens)
    {
        using var scope = NewDisposeScope();
        model.TrimText = false;
        var padded = model.EncodeText(tokens);
        model.TrimText = true;
        var trimmed = model.EncodeText(tokens);
        var maxRef = padded.abs().max().item<float>();
        var maxDiff = (trimmed - padded).abs().max().item<float>();
        Assert.True(maxRef > 0);
        Assert.InRange(maxDiff, 0, 1e-5 * maxRef);
    }

    [Theory]
    [InlineData("vit", "hf")]
    [InlineData("rn", "openai_state_dict.pt")]
    public void ReferenceCaptionsGiveTheSameFeaturesTrimmed(string folder, string file)
    {
        using var model = ClipModel.Load(Fixtures.ReferencePath(folder, file));
        Assert.True(model.TrimText, "trimming is the default");
        // The six reference captions, the empty one included: the longest has 11 positions.
        AssertSameFeatures(model, Fixtures.Expected("text_tokens"));
    }

    [Fact]
    public void VitB32SizedTextTowerGivesTheSameFeaturesForShortTexts()
    {
        var config = ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 1, 512, 12);
        using var model = ClipModel.Create(config);
        using var scope = NewDisposeScope();
        // Texts of 2..10 positions (start, words, end), zero padded to 77, as the tokenizer writes them.
        var rows = new long[16 * 77];
        var random = new Random(5);
        for (int r = 0; r < 16; r++)
        {
            int length = 2 + r % 9;
            rows[r * 77] = 49406;
            for (int i = 1; i < length - 1; i++) rows[r * 77 + i] = random.Next(1, 49406);
            rows[r * 77 + length - 1] = 49407;
        }
        AssertSameFeatures(model, torch.tensor(rows, new long[] { 16, 77 }));
    }

    [Fact]
    public void TrimmingIsPerBatchAndEachRowKeepsItsFeatures()
    {
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"));
        using var scope = NewDisposeScope();
        var tokens = Fixtures.Expected("text_tokens");
        var together = model.EncodeText(tokens);
        for (int i = 0; i < tokens.shape[0]; i++)
        {
            var alone = model.EncodeText(tokens.narrow(0, i, 1));
            Assert.InRange(Fixtures.RelativeError(alone, together.narrow(0, i, 1)), 0, 1e-5);
        }
    }
}
