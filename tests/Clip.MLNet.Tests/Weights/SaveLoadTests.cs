using Clip.MLNet.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Weights;

public class SaveLoadTests
{
    [Theory]
    [InlineData("vit/openai_jit.pt", "gelu")]
    [InlineData("rn/openai_state_dict.pt", "")]
    public void OwnFormatRoundTripsExactly(string fixture, string activation)
    {
        using var dir = new TempDir();
        using var original = ClipModel.Load(Fixtures.ReferencePath(fixture.Split('/')), new ClipLoadOptions { Activation = ClipActivationNames.TryParse(activation) });
        var path = dir.File("model.safetensors");
        original.Save(path);
        using var reloaded = ClipModel.Load(path);

        Assert.Equal(original.Config, reloaded.Config);
        Assert.Equal(original.Config.Activation, reloaded.Config.Activation);
        var a = original.state_dict();
        var b = reloaded.state_dict();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (k, v) in a) Assert.True(v.equal(b[k]).all().item<bool>(), $"{k} differs after the round trip");

        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        Assert.True(original.EncodeImage(pixels).equal(reloaded.EncodeImage(pixels)).all().item<bool>());
    }

    [Fact]
    public void ActivationOptionOverridesTheStoredOne()
    {
        using var dir = new TempDir();
        using var original = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"));
        var path = dir.File("model.safetensors");
        original.Save(path);
        using var gelu = ClipModel.Load(path, new ClipLoadOptions { Activation = ClipActivation.Gelu });
        Assert.Equal(ClipActivation.Gelu, gelu.Config.Activation);
    }

    [Fact]
    public void SavingOverAnExistingFileReplacesItWhole()
    {
        using var dir = new TempDir();
        var path = dir.File("model.safetensors");
        File.WriteAllText(path, "old contents");
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "open_clip_model.safetensors"));
        model.Save(path);
        using var reloaded = ClipModel.Load(path);
        Assert.Equal(model.Config, reloaded.Config);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void Bfloat16PrecisionLoadsAndStaysClose()
    {
        using var fp32 = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_jit.pt"));
        using var bf16 = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_jit.pt"), new ClipLoadOptions { Precision = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, bf16.ComputeType);
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        var a = ClipModel.Normalize(fp32.EncodeImage(pixels));
        var b = ClipModel.Normalize(bf16.EncodeImage(pixels));
        Assert.Equal(ScalarType.Float32, b.dtype);
        var cosine = (a * b).sum(1);
        Assert.True(cosine.min().item<float>() > 0.99f, $"min cosine {cosine.min().item<float>()}");
    }
}
