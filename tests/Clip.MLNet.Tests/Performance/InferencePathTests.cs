using Clip.MLNet.Modeling;
using Clip.MLNet.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>
/// The inference shortcuts (fused QuickGELU, explicit CPU attention, in-place residuals, mixed-dtype
/// LayerNorm) compute what the plain formulas compute.
/// </summary>
public class InferencePathTests
{
    [Fact]
    public void NoGradForwardEqualsTheAutogradForward()
    {
        // With autograd on, the MLP and residual sums take their plain path (the reference formulas).
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"));
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        var tokens = Fixtures.Expected("text_tokens");
        var fast = model.EncodeImage(pixels);
        var fastText = model.EncodeText(tokens);
        Tensor plain, plainText;
        using (torch.enable_grad())
        {
            plain = model.Visual.forward(pixels).detach();
            plainText = model.Text.forward(tokens).detach();
        }
        Assert.InRange(Fixtures.RelativeError(fast, plain), 0, 1e-6);
        Assert.InRange(Fixtures.RelativeError(fastText, plainText), 0, 1e-6);
    }

    [Theory]
    [InlineData(false, 50)]
    [InlineData(true, 77)]
    [InlineData(true, 7)]
    [InlineData(true, 1)]
    public void ExplicitAttentionEqualsScaledDotProductAttention(bool causal, int length)
    {
        using var scope = NewDisposeScope();
        var g = new torch.Generator(7);
        var q = torch.randn(new long[] { 3, 2, length, 16 }, generator: g);
        var k = torch.randn(new long[] { 3, 2, length, 16 }, generator: g);
        var v = torch.randn(new long[] { 3, 2, length, 16 }, generator: g);
        var expected = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal);
        var actual = MultiheadSelfAttention.Attention(q, k, v, causal);
        Assert.InRange(Fixtures.RelativeError(actual, expected), 0, 1e-6);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void MixedDtypeLayerNormEqualsUpcastNormalizeDowncast(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var g = new torch.Generator(3);
        var x = (torch.randn(new long[] { 4, 50, 96 }, generator: g) * 3 + 1).to(dtype);
        var weight = torch.randn(new long[] { 96 }, generator: g);
        var bias = torch.randn(new long[] { 96 }, generator: g);
        var ln = new ClipLayerNorm(96);
        using (torch.no_grad())
        {
            ln.parameters().First().copy_(weight);
            ln.parameters().Last().copy_(bias);
        }
        var expected = nn.functional.layer_norm(x.to(ScalarType.Float32), new long[] { 96 }, weight, bias, 1e-5).to(dtype);
        var actual = ln.forward(x);
        Assert.Equal(dtype, actual.dtype);
        // Same fp32 statistics; at most one rounding step apart in the final cast.
        using var diff = (actual.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().max();
        using var scale = expected.to(ScalarType.Float32).abs().max();
        Assert.InRange(diff.item<float>(), 0, scale.item<float>() * (dtype == ScalarType.BFloat16 ? 1.0 / 128 : 1.0 / 1024));
    }
}

/// <summary>
/// The paths other devices take (fused scaled_dot_product_attention, LayerNorm upcast to fp32 and
/// back), run on CPU tensors: the same reference features in fp32, the same bf16 accuracy.
/// </summary>
public class OtherDevicePathTests
{
    [Theory]
    [InlineData("vit", "hf", "vit")]
    [InlineData("rn", "openai_state_dict.pt", "rn")]
    public void CudaPathsMatchTheReferenceInFp32(string folder, string file, string prefix)
    {
        using var model = ClipModel.Load(Fixtures.ReferencePath(folder, file));
        using var scope = NewDisposeScope();
        using var cuda = DeviceKernels.Assume(TorchSharp.DeviceType.CUDA);
        var image = model.EncodeImage(Fixtures.Expected("pixel_values_224"));
        var text = model.EncodeText(Fixtures.Expected("text_tokens"));
        Assert.InRange(Fixtures.RelativeError(image, Fixtures.Expected($"{prefix}.image_features")), 0, 1e-4);
        Assert.InRange(Fixtures.RelativeError(text, Fixtures.Expected($"{prefix}.text_features")), 0, 1e-4);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void CudaPathsInReducedPrecisionStayWithinCosine0999(ScalarType dtype)
    {
        var path = Fixtures.ReferencePath("vit", "hf");
        using var full = ClipModel.Load(path);
        using var reduced = ClipModel.Load(path, new ClipLoadOptions { Precision = dtype });
        using var scope = NewDisposeScope();
        var pixels = Fixtures.Expected("pixel_values_224");
        var tokens = Fixtures.Expected("text_tokens");
        var expectedImage = full.EncodeImage(pixels);
        var expectedText = full.EncodeText(tokens);
        using var cuda = DeviceKernels.Assume(TorchSharp.DeviceType.CUDA);
        var image = reduced.EncodeImage(pixels);
        var text = reduced.EncodeText(tokens);
        Assert.True(nn.functional.cosine_similarity(image, expectedImage, 1).min().item<float>() >= 0.999);
        Assert.True(nn.functional.cosine_similarity(text, expectedText, 1).min().item<float>() >= 0.999);
    }

    [Fact]
    public void AssumingADeviceIsPerThreadAndUndone()
    {
        using var t = torch.zeros(1);
        using (DeviceKernels.Assume(TorchSharp.DeviceType.CUDA))
        {
            Assert.Equal(TorchSharp.DeviceType.CUDA, DeviceKernels.PathOf(t));
            var other = TorchSharp.DeviceType.CUDA;
            var thread = new Thread(() => other = DeviceKernels.PathOf(t));
            thread.Start();
            thread.Join();
            Assert.Equal(TorchSharp.DeviceType.CPU, other);
        }
        Assert.Equal(TorchSharp.DeviceType.CPU, DeviceKernels.PathOf(t));
    }
}
