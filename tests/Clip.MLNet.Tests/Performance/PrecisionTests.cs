using Clip.MLNet.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>bf16 and fp16 inference on the CPU: embeddings of real photos and captions within cosine 0.999 of fp32.</summary>
[Collection(GlobalRngCollection.Name)]
public class PrecisionTests(ITestOutputHelper output)
{
    private void AssertCosine(Tensor reduced, Tensor full, double minimum)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(ScalarType.Float32, reduced.dtype);
        var cos = nn.functional.cosine_similarity(reduced, full, 1);
        var worst = cos.min().item<float>();
        output.WriteLine($"worst cosine to fp32: {worst:F6}");
        Assert.True(worst >= minimum, $"worst cosine {worst:F6} < {minimum}");
    }

    [Theory]
    [InlineData("vit", "hf", ScalarType.BFloat16)]
    [InlineData("vit", "hf", ScalarType.Float16)]
    [InlineData("rn", "openai_state_dict.pt", ScalarType.BFloat16)]
    [InlineData("rn", "openai_state_dict.pt", ScalarType.Float16)]
    public void ReferenceModelsStayWithinCosine0999OfFp32(string folder, string file, ScalarType dtype)
    {
        var path = Fixtures.ReferencePath(folder, file);
        using var full = ClipModel.Load(path);
        using var reduced = ClipModel.Load(path, new ClipLoadOptions { Precision = dtype });
        Assert.Equal(dtype, reduced.ComputeType);
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");      // the reference photos and their variants
        var tokens = Fixtures.Expected("text_tokens");
        AssertCosine(reduced.EncodeImage(pixels), full.EncodeImage(pixels), 0.999);
        AssertCosine(reduced.EncodeText(tokens), full.EncodeText(tokens), 0.999);
    }

    [Fact]
    public void VitB32SizedModelInBf16StaysWithinCosine0999OfFp32()
    {
        // Twelve 768-wide blocks accumulate more rounding than the two-block reference model.
        var config = ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 12, 512, 12);
        torch.manual_seed(11);
        using var full = ClipModel.Create(config);
        using var reduced = ClipModel.Create(config);
        reduced.load_state_dict(full.state_dict());
        reduced.ToPrecision(ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        var tokens = Fixtures.Expected("text_tokens");
        AssertCosine(reduced.EncodeImage(pixels), full.EncodeImage(pixels), 0.999);
        AssertCosine(reduced.EncodeText(tokens), full.EncodeText(tokens), 0.999);
    }

    [Fact]
    public void LayerNormParametersStayFp32()
    {
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"), new ClipLoadOptions { Precision = ScalarType.BFloat16 });
        var dtypes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.dtype);
        Assert.All(dtypes.Where(kv => kv.Key.Contains("ln_")), kv => Assert.Equal(ScalarType.Float32, kv.Value));
        Assert.Equal(ScalarType.BFloat16, dtypes["visual.transformer.resblocks.0.mlp.c_fc.weight"]);
    }
}
