using Clip.MLNet.Tests.Support;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Registry;

/// <summary>open_clip's hub layout: head counts come from the config's head_width and heads, as open_clip builds them.</summary>
public class OpenClipConfigTests
{
    private static string Folder(TempDir temp, string visionExtra, string textHeads)
    {
        var folder = temp.File("model");
        Directory.CreateDirectory(folder);
        File.Copy(Fixtures.ReferencePath("vit", "open_clip_model.safetensors"), Path.Combine(folder, "open_clip_model.safetensors"));
        File.WriteAllText(Path.Combine(folder, "open_clip_config.json"), """
            {"model_cfg": {"embed_dim": 64, "quick_gelu": true,
              "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32@VISION@},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64@TEXT@, "layers": 2}}}
            """.Replace("@VISION@", visionExtra).Replace("@TEXT@", textHeads));
        return folder;
    }

    [Fact]
    public void VisionHeadsAreWidthOverHeadWidth_SixtyFourByDefault()
    {
        using var temp = new TempDir();
        using var model = ClipModel.Load(Folder(temp, "", ", \"heads\": 1"));
        Assert.Equal(2, model.Config.VisionHeads);
        Assert.Equal(1, model.Config.TextHeads);
        using var scope = NewDisposeScope();
        Assert.InRange(Fixtures.RelativeError(model.EncodeImage(Fixtures.Expected("pixel_values_224")), Fixtures.Expected("vit.image_features")), 0, 1e-4);
    }

    [Fact]
    public void AnotherHeadWidthGivesAnotherHeadCount()
    {
        // ViT-H/14's rule (width 1280, head_width 80: 16 heads), here on the reference's width of 128.
        using var temp = new TempDir();
        using var model = ClipModel.Load(Folder(temp, ", \"head_width\": 32", ", \"heads\": 2"));
        Assert.Equal(4, model.Config.VisionHeads);
        Assert.Equal(2, model.Config.TextHeads);
        using var scope = NewDisposeScope();
        Assert.True(Fixtures.RelativeError(model.EncodeImage(Fixtures.Expected("pixel_values_224")), Fixtures.Expected("vit.image_features")) > 1e-3);
    }

    [Fact]
    public void TextHeadsDefaultToOpenClipsEight()
    {
        using var temp = new TempDir();
        using var model = ClipModel.Load(Folder(temp, "", ""));
        Assert.Equal(8, model.Config.TextHeads);
    }

    [Fact]
    public void ResNetsPoolWithWidthTimes32OverHeadWidthHeads()
    {
        using var temp = new TempDir();
        var folder = temp.File("rn");
        Directory.CreateDirectory(folder);
        File.Copy(Fixtures.ReferencePath("rn", "open_clip_model.safetensors"), Path.Combine(folder, "open_clip_model.safetensors"));
        File.WriteAllText(Path.Combine(folder, "open_clip_config.json"), """
            {"model_cfg": {"embed_dim": 64, "quick_gelu": true,
              "vision_cfg": {"image_size": 224, "layers": [1, 2, 1, 1], "width": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}}
            """);
        using var model = ClipModel.Load(folder);
        Assert.Equal(4, model.Config.VisionHeads);
        using var scope = NewDisposeScope();
        Assert.InRange(Fixtures.RelativeError(model.EncodeImage(Fixtures.Expected("pixel_values_224")), Fixtures.Expected("rn.image_features")), 0, 1e-4);
    }
}
