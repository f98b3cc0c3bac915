using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>What the benchmark reports holds together (speed itself is never asserted).</summary>
public class ClipBenchmarkTests
{
    private static ClipModel Tiny() => ClipModel.Create(ClipConfig.VisionTransformerConfig(32, 64, 32, 64, 1, 64, 1));

    private static ClipBenchmarkOptions Quick(int? textTokens = null) => new()
    {
        BatchSize = 2, Seconds = 0, MinBatches = 2, WarmupBatches = 1, GemmSeconds = 0, TextTokens = textTokens,
    };

    [Fact]
    public void ReportsRatesFlopsAndEfficiencyConsistently()
    {
        using var model = Tiny();
        var r = ClipBenchmark.Run(model, Quick());
        Assert.True(r.ImagesPerSecond > 0 && r.TextsPerSecond > 0 && r.GemmGflops > 0);
        Assert.Equal(Math.Max(r.Gemm1024Gflops, r.Gemm2048Gflops), r.GemmGflops);
        Assert.Equal(ClipFlops.ImageGflop(model.Config), r.ImageGflopPerItem);
        Assert.Equal(r.ImagesPerSecond * r.ImageGflopPerItem / r.GemmGflops, r.ImageEfficiency, 12);
        Assert.Equal(r.TextsPerSecond * r.TextGflopPerItem / r.GemmGflops, r.TextEfficiency, 12);
        Assert.Equal(77, r.TextTokens);
        Assert.Null(r.TextsPerSecondPadded);
        Assert.Equal("fp32", r.Precision);
        Assert.Equal(2, r.Batch);
        Assert.Equal(torch.get_num_threads(), r.Threads);
        Assert.Equal("cpu", r.Device.ToLowerInvariant());
        Assert.Equal(2, r.ImageBatches);
    }

    [Fact]
    public void ShortTextsAreAlsoTimedPaddedAndTrimmingIsRestored()
    {
        using var model = Tiny();
        model.TrimText = true;
        var r = ClipBenchmark.Run(model, Quick(textTokens: 10));
        Assert.Equal(10, r.TextTokens);
        Assert.NotNull(r.TextsPerSecondPadded);
        Assert.Equal(ClipFlops.TextGflop(model.Config, 10), r.TextGflopPerItem);
        Assert.Equal(ClipFlops.TextGflop(model.Config, 77), r.TextGflopPerItemPadded);
        Assert.True(model.TrimText);
    }

    [Fact]
    public void ReducedPrecisionIsTimedWithItsOwnGemm()
    {
        using var model = Tiny().ToPrecision(ScalarType.BFloat16);
        var r = ClipBenchmark.Run(model, Quick());
        Assert.Equal("bf16", r.Precision);
        Assert.True(r.GemmGflops > 0);
    }

    [Fact]
    public void RandomTokensEndWithTheLargestIdAndArePadded()
    {
        using var tokens = ClipBenchmark.RandomTokens(3, 5, 77, 49408, 0);
        var ids = tokens.data<long>().ToArray();
        for (int r = 0; r < 3; r++)
        {
            Assert.Equal(49406, ids[r * 77]);
            Assert.Equal(49407, ids[r * 77 + 4]);
            Assert.All(ids.Skip(r * 77 + 1).Take(3), id => Assert.InRange(id, 1, 49405));
            Assert.All(ids.Skip(r * 77 + 5).Take(72), id => Assert.Equal(0, id));
        }
    }

    [Fact]
    public void BadSettingsAreRefused()
    {
        using var model = Tiny();
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipBenchmark.Run(model, new ClipBenchmarkOptions { BatchSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipBenchmark.Run(model, new ClipBenchmarkOptions { TextTokens = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipBenchmark.Run(model, new ClipBenchmarkOptions { TextTokens = 78 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipModel.IntraOpThreads = 0);
    }
}

/// <summary>The ML.NET pipeline benchmark embeds every row it is asked for and reports memory.</summary>
public class ClipPipelineBenchmarkTests
{
    [Fact]
    public void EmbedsTheRowsCyclingThroughTheFiles()
    {
        using var model = ClipModel.Create(ClipConfig.VisionTransformerConfig(32, 64, 32, 64, 1, 64, 1));
        var files = Support.ReferenceData.ImagePaths.Take(3).ToArray();
        var r = ClipPipelineBenchmark.Run(model, files, 10, batchSize: 4, preprocessThreads: 2);
        Assert.Equal(10, r.Images);
        Assert.Equal(4, r.Batch);
        Assert.Equal(2, r.PreprocessThreads);
        Assert.True(r.ImagesPerSecond > 0 && r.ImagesPerSecondMean > 0 && r.Seconds > 0);
        if (OperatingSystem.IsLinux())
        {
            Assert.True(r.PeakRssMiB >= r.RssStartMiB && r.RssStartMiB > 0);
            Assert.Equal(10, r.RssSamplesMiB.Count);
        }
        Assert.Throws<ArgumentException>(() => ClipPipelineBenchmark.Run(model, Array.Empty<string>(), 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipPipelineBenchmark.Run(model, files, 0));
    }
}
