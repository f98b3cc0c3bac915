using Clip.MLNet.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Modeling;

/// <summary>The activations' faster formulations compute the reference formulas.</summary>
public class GeluModulesTests
{
    [Fact]
    public void TanhGeluMatchesTheTanhFormula()
    {
        using var scope = NewDisposeScope();
        var x = torch.linspace(-8, 8, 4001, ScalarType.Float64);
        var expected = x.pow(3).mul(0.044715).add(x).mul(Math.Sqrt(2 / Math.PI)).tanh().add(1).mul(x).mul(0.5);
        var actual = new TanhGelu().forward(x);
        Assert.True(actual.allclose(expected, rtol: 1e-12, atol: 1e-12));
        var single = new TanhGelu().forward(x.to(ScalarType.Float32)).to(ScalarType.Float64);
        Assert.True(single.allclose(expected, rtol: 1e-5, atol: 1e-6));
    }
}

/// <summary>The CPU attention kernel chosen by measurement computes the same as both forms.</summary>
public class AttentionKernelTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MeasuredChoiceIsRecordedAndBothFormsAgree(bool causal)
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var g = new torch.Generator(7);
        var q = torch.randn(new long[] { 2, 3, 11, 8 }, generator: g);
        var k = torch.randn(new long[] { 2, 3, 11, 8 }, generator: g);
        var v = torch.randn(new long[] { 2, 3, 11, 8 }, generator: g);
        var fused = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal);
        var explicitForm = MultiheadSelfAttention.Attention(q, k, v, causal);
        Assert.True(fused.allclose(explicitForm, rtol: 1e-5, atol: 1e-6));
        if (AttentionKernel.CpuFused is null)
        {
            var chosen = AttentionKernel.Run(q, k, v, causal);
            Assert.True(AttentionKernel.Choices.ContainsKey((ScalarType.Float32, 11L, 11L, 8L, 3L, causal)));
            Assert.True(chosen.allclose(explicitForm, rtol: 1e-5, atol: 1e-6));
        }
    }
}
