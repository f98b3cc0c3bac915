using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Benchmarks;

/// <summary>
/// The pieces of one ViT-B/32 block at batch 32 (1600 tokens × 768): each inference shortcut beside
/// the plain formula it replaces. Every operation runs inside a dispose scope, as the model does.
/// </summary>
[SimpleJob(RuntimeMoniker.Net10_0, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class BlockBenchmarks
{
    private Tensor x = null!, w1 = null!, b1 = null!, w2 = null!, b2 = null!, q = null!, k = null!, v = null!, lnw = null!, lnb = null!;

    [Params("fp32", "bf16")]
    public string Precision { get; set; } = "fp32";

    private ScalarType Dtype => Precision == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;

    [GlobalSetup]
    public void Setup()
    {
        torch.set_grad_enabled(false);
        var g = new torch.Generator(1);
        x = torch.randn(new long[] { 1600, 768 }, generator: g).to(Dtype);
        w1 = (torch.randn(new long[] { 3072, 768 }, generator: g) * 0.02).to(Dtype);
        b1 = torch.zeros(3072).to(Dtype);
        w2 = (torch.randn(new long[] { 768, 3072 }, generator: g) * 0.02).to(Dtype);
        b2 = torch.zeros(768).to(Dtype);
        q = torch.randn(new long[] { 32, 12, 50, 64 }, generator: g).to(Dtype);
        k = torch.randn(new long[] { 32, 12, 50, 64 }, generator: g).to(Dtype);
        v = torch.randn(new long[] { 32, 12, 50, 64 }, generator: g).to(Dtype);
        lnw = torch.ones(768);
        lnb = torch.zeros(768);
    }

    [Benchmark(Description = "MLP, QuickGELU as x*sigmoid(1.702x)")]
    public void MlpPlain()
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.linear(x, w1, b1);
        var a = h * torch.sigmoid(h * 1.702);
        nn.functional.linear(a, w2, b2);
    }

    [Benchmark(Description = "MLP, QuickGELU fused (addmm alpha/beta + silu_)")]
    public void MlpFused()
    {
        using var scope = NewDisposeScope();
        var h = torch.addmm(b1, x, w1.t(), beta: 1.702f, alpha: 1.702f);
        nn.functional.silu(h, inplace: true);
        torch.addmm(b2, h, w2.t(), beta: 1, alpha: (float)(1 / 1.702));
    }

    [Benchmark(Description = "attention, scaled_dot_product_attention")]
    public void AttentionSdpa()
    {
        using var scope = NewDisposeScope();
        nn.functional.scaled_dot_product_attention(q, k, v);
    }

    [Benchmark(Description = "attention, explicit (bmm, softmax, bmm)")]
    public void AttentionExplicit()
    {
        using var scope = NewDisposeScope();
        var s = torch.matmul(q, k.transpose(-2, -1)).mul_(0.125);
        torch.matmul(s.softmax(-1), v);
    }

    [Benchmark(Description = "LayerNorm, upcast to fp32 and back")]
    public void LayerNormUpcast()
    {
        using var scope = NewDisposeScope();
        nn.functional.layer_norm(x.to(ScalarType.Float32), new long[] { 768 }, lnw, lnb).to(Dtype);
    }

    [Benchmark(Description = "LayerNorm, mixed dtype (fp32 parameters)")]
    public void LayerNormMixed()
    {
        using var scope = NewDisposeScope();
        nn.functional.layer_norm(x, new long[] { 768 }, lnw, lnb);
    }
}
