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
