using Clip.MLNet.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Weights;

/// <summary>Every weight format of the reference models computes the reference's features and logits (fp32, 1e-4 relative).</summary>
public class ReferenceParityTests
{
    public static TheoryData<string, string, string> Cases => new()
    {
        { "vit", "vit/openai_state_dict.pt", "" },
        { "vit", "vit/openai_jit.pt", "" },
        { "vit", "vit/open_clip_model.safetensors", "" },
        { "vit", "vit/hf", "" },
        { "vit_gelu", "vit/hf-gelu", "" },
        { "vit_gelu", "vit/open_clip_model.safetensors", "gelu" },
        { "rn", "rn/openai_state_dict.pt", "" },
        { "rn", "rn/openai_jit.pt", "" },
        { "rn", "rn/open_clip_model.safetensors", "" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FeaturesAndLogitsMatchTheReference(string expectedPrefix, string file, string activation)
    {
        var options = new ClipLoadOptions { Activation = ClipActivationNames.TryParse(activation) };
        using var model = ClipModel.Load(Fixtures.ReferencePath(file.Split('/')), options);
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        var tokens = Fixtures.Expected("text_tokens");

        var image = model.EncodeImage(pixels);
        var text = model.EncodeText(tokens);
        var (logits, logitsPerText) = model.Logits(pixels, tokens);

        Assert.InRange(Fixtures.RelativeError(image, Fixtures.Expected($"{expectedPrefix}.image_features")), 0, 1e-4);
        Assert.InRange(Fixtures.RelativeError(text, Fixtures.Expected($"{expectedPrefix}.text_features")), 0, 1e-4);
        Assert.InRange(Fixtures.RelativeError(logits, Fixtures.Expected($"{expectedPrefix}.logits_per_image")), 0, 1e-4);
        Assert.InRange(Fixtures.RelativeError(logitsPerText, Fixtures.Expected($"{expectedPrefix}.logits_per_image").t()), 0, 1e-4);
    }

    [Fact]
    public void QuickGeluAndGeluGiveDifferentFeatures()
    {
        // Guards the activation switch itself: the same weights with the other activation must differ.
        using var quick = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"));
        using var gelu = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"), new ClipLoadOptions { Activation = ClipActivation.Gelu });
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        Assert.Equal(ClipActivation.QuickGelu, quick.Config.Activation);
        Assert.Equal(ClipActivation.Gelu, gelu.Config.Activation);
        Assert.True(Fixtures.RelativeError(quick.EncodeImage(pixels), gelu.EncodeImage(pixels)) > 1e-3);
    }
}
