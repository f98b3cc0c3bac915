using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>
/// EVA02-CLIP from its open_clip hub folder: timm's Eva tower (rotary embeddings, SwiGLU, inner LayerNorms, timm's head
/// as the projection) and a custom causal text tower with CLIP's BPE tokenizer.
/// </summary>
public class Eva02ParityTests
{
    [Fact]
    public void FeaturesAndLogitsMatchTheReference()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("eva02"));
        Assert.Equal("eva02", model.Config.VisionTimmFamily);
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(FamilyFixtures.Expected("eva02.pixel_values"));
        var text = model.EncodeText(FamilyFixtures.Expected("eva02.text_tokens"));
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected("eva02.image_features")) < 1e-4, "image features");
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected("eva02.text_features")) < 1e-4, "text features");
        Assert.True(Fixtures.RelativeError(model.LogitsFromFeatures(image, text), FamilyFixtures.Expected("eva02.logits_per_image")) < 1e-4, "logits");
        Assert.Equal(ClipScoring.Softmax, model.Scoring);
        // A causal tower pooled at the end token: trimming stays on and changes nothing.
        Assert.True(model.TrimText);
    }

    [Fact]
    public void RotaryEmbeddingFollowsTimmsLayout()
    {
        // grid 2, reference 16: positions 0 and 8 on each axis; head_dim 8: 2 frequencies (1 and 0.01), each twice.
        using var rope = EvaVisionTransformerAccess.Rope(2, 16, 8);
        Assert.Equal(new long[] { 4, 16 }, rope.shape);
        var row3 = rope[3].data<float>().ToArray();   // (row 8, column 8)
        Assert.Equal(MathF.Sin(8f), row3[0], 5);
        Assert.Equal(MathF.Sin(8f), row3[1], 5);
        Assert.Equal(MathF.Sin(0.08f), row3[2], 5);
        Assert.Equal(MathF.Cos(8f), row3[8], 5);
        var row1 = rope[1].data<float>().ToArray();   // (row 0, column 8)
        Assert.Equal(0f, row1[0], 6);
        Assert.Equal(MathF.Sin(8f), row1[4], 5);
    }

    [Theory]
    [InlineData("eva02")]
    [InlineData("quickgelu")]
    public void ClipBpeTokensAndPreprocessingMatchTheReference(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family), new ClipLoadOptions { VocabularyPath = Fixtures.Vocab });
        using var tokens = model.RequireTokenizer().Tokenize(FamilyFixtures.Texts);
        Assert.True(tokens.equal(FamilyFixtures.Expected($"{family}.text_tokens")).all().item<bool>());
        using var pixels = model.CreateImagePreprocessor().PreprocessBatch(FamilyFixtures.ImagePaths);
        var expected = FamilyFixtures.Expected($"{family}.pixel_values");
        for (int i = 0; i < pixels.shape[0]; i++)
        {
            using var diff = (pixels[i] - expected[i]).abs();
            Assert.True(diff.max().item<float>() <= 0.02 && diff.mean().item<float>() <= 0.002, FamilyFixtures.ImagePaths[i]);
        }
    }

    [Fact]
    public void EvaTowersNeedTimmsHeadAsProjection()
    {
        var folder = FamilyFixtures.CopyFolder("eva02");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["timm_proj"] = "none");
            var e = Assert.Throws<ClipCheckpointException>(() => ClipModel.Load(folder).Dispose());
            Assert.Contains("model_cfg.vision_cfg.timm_proj", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    private static class EvaVisionTransformerAccess
    {
        public static Tensor Rope(int grid, int reference, long headDim) =>
            Clip.MLNet.Modeling.EvaVisionTransformer.RotaryEmbedding(grid, reference, headDim, null);
    }
}
