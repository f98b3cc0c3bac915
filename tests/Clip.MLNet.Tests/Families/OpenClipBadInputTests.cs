using System.Text.Json.Nodes;
using Clip.MLNet.Weights;
using Microsoft.ML;

namespace Clip.MLNet.Tests.Families;

/// <summary>open_clip folders that cannot be used: each error names the file and the field or file that is wrong.</summary>
public class OpenClipBadInputTests
{
    private static ClipCheckpointException LoadFails(string folder) =>
        Assert.Throws<ClipCheckpointException>(() => ClipModel.Load(folder).Dispose());

    [Fact]
    public void UnknownTimmModelIsRefusedByName()
    {
        var folder = FamilyFixtures.CopyFolder("siglip");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["timm_model_name"] = "vit_made_up_patch16_224");
            var e = LoadFails(folder);
            Assert.Contains("open_clip_config.json", e.Message);
            Assert.Contains("timm_model_name", e.Message);
            Assert.Contains("vit_made_up_patch16_224", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void UnknownPoolTypeIsRefusedByName()
    {
        var folder = FamilyFixtures.CopyFolder("siglip");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["text_cfg"]!["pool_type"] = "middle");
            var e = LoadFails(folder);
            Assert.Contains("open_clip_config.json", e.Message);
            Assert.Contains("text_cfg.pool_type", e.Message);
            Assert.Contains("middle", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void UnknownTimmKeywordIsRefusedByName()
    {
        var folder = FamilyFixtures.CopyFolder("siglip");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["timm_model_kwargs"]!["qk_norm"] = true);
            var e = LoadFails(folder);
            Assert.Contains("timm_model_kwargs.qk_norm", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void ImageSizeThatTheTimmTowerDoesNotTakeIsRefused()
    {
        // open_clip does not pass image_size to timm: without timm_model_kwargs.img_size the tower takes its own 224.
        var folder = FamilyFixtures.CopyFolder("siglip");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["timm_model_kwargs"]!.AsObject().Remove("img_size"));
            var e = LoadFails(folder);
            Assert.Contains("model_cfg.vision_cfg.image_size", e.Message);
            Assert.Contains("224", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void ConfigWithoutWeightsNamesTheMissingFile()
    {
        var folder = FamilyFixtures.CopyFolder("siglip", "open_clip_model.safetensors");
        try
        {
            var e = LoadFails(folder);
            Assert.Contains(folder, e.Message);
            Assert.Contains("open_clip_model.safetensors", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void WeightsThatDoNotFitTheConfigAreListed()
    {
        var folder = FamilyFixtures.CopyFolder("siglip");
        try
        {
            FamilyFixtures.EditConfig(folder, root => root["model_cfg"]!["vision_cfg"]!["timm_model_kwargs"]!["depth"] = 3);
            var e = LoadFails(folder);
            Assert.Contains("visual.trunk.blocks.2", e.Message);
            Assert.Contains("open_clip config", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void FolderWithoutTokenizerLoadsAndFailsOnlyForText()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip2"));
        Assert.Null(model.Tokenizer);
        Assert.NotNull(model.MissingTokenizer);
        Assert.Contains("hf_tokenizer_name", model.MissingTokenizer);
        Assert.Contains("tokenizer.model", model.MissingTokenizer);
        var e = Assert.Throws<InvalidOperationException>(() => model.RequireTokenizer());
        Assert.Contains("open_clip_config.json", e.Message);
        var ml = new MLContext();
        var catalog = Assert.Throws<ArgumentException>(() => ml.Transforms.ClipZeroShot(model, new[] { "a", "b" }));
        Assert.Contains("tokenizer.model", catalog.Message);
        // Images still work.
        using var pixels = model.CreateImagePreprocessor().PreprocessBatch(FamilyFixtures.ImagePaths.Take(1).ToArray());
        using var features = model.EncodeImage(pixels);
        Assert.Equal(new long[] { 1, 64 }, features.shape);
    }
}
