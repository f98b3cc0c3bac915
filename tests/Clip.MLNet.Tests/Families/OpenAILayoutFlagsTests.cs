using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>
/// open_clip configs of OpenAI's layout whose flags the weights cannot show: CLIPA (no ln_pre, average pooling with
/// ln_post after it, text without causal mask pooled at the last position, bilinear squash preprocessing) and the
/// QuickGELU/head_width ViT. CLIPA's BERT tokenizer (a vocab.txt in the folder) is tested in WordPieceTokenizerTests.
/// </summary>
public class OpenAILayoutFlagsTests
{
    public static TheoryData<string> Families => new() { "clipa", "quickgelu" };

    [Theory]
    [MemberData(nameof(Families))]
    public void FeaturesAndLogitsMatchTheReference(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family));
        using var scope = NewDisposeScope();
        var pixels = FamilyFixtures.Expected($"{family}.pixel_values");
        var tokens = FamilyFixtures.Expected($"{family}.text_tokens");
        var image = model.EncodeImage(pixels);
        var text = model.EncodeText(tokens);
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected($"{family}.image_features")) < 1e-4, "image features");
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected($"{family}.text_features")) < 1e-4, "text features");
        Assert.True(Fixtures.RelativeError(model.LogitsFromFeatures(image, text), FamilyFixtures.Expected($"{family}.logits_per_image")) < 1e-4, "logits");
        Assert.Equal(ClipScoring.Softmax, model.Scoring);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void PreprocessingFollowsTheConfig(string family)
    {
        var preprocessing = OpenClipConfig.ReadFolderPreprocessing(FamilyFixtures.Folder(family));
        using var pixels = preprocessing.CreatePreprocessor().PreprocessBatch(FamilyFixtures.ImagePaths);
        var expected = FamilyFixtures.Expected($"{family}.pixel_values");
        for (int i = 0; i < pixels.shape[0]; i++)
        {
            using var diff = (pixels[i] - expected[i]).abs();
            Assert.True(diff.max().item<float>() <= 0.02 && diff.mean().item<float>() <= 0.002, FamilyFixtures.ImagePaths[i]);
        }
    }

    [Fact]
    public void ClipaIsBilinearSquashAndItsTextTowerIsNotTrimmed()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("clipa"));
        Assert.Equal(ClipInterpolation.Bilinear, model.ImagePreprocessing.Interpolation);
        Assert.Equal(ClipResizeMode.Squash, model.ImagePreprocessing.ResizeMode);
        Assert.False(model.Config.VisionLnPre);
        Assert.Equal("avg", model.Config.VisionPool);
        Assert.False(model.TrimText);
        Assert.Null(model.Tokenizer);
        Assert.Contains("BERT", model.MissingTokenizer);
    }

    [Fact]
    public void UnsupportedTowerFlagsAreRefusedByName()
    {
        var folder = FamilyFixtures.CopyFolder("clipa");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["attentional_pool"] = true);
            var e = Assert.Throws<ClipCheckpointException>(() => ClipModel.Load(folder).Dispose());
            Assert.Contains("model_cfg.vision_cfg.attentional_pool", e.Message);
            Assert.Contains("open_clip_config.json", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }
}
