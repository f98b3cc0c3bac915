using System.Text.Json.Nodes;
using Clip.MLNet.Tests.Indexing;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>What the benchmark reports holds together (speed itself is never asserted).</summary>
public class ClipBenchmarkTests
{
    private static ClipModel Tiny() => ClipModel.Create(ClipConfig.VisionTransformerConfig(32, 64, 32, 64, 1, 64, 1));

    private static ClipBenchmarkOptions Quick(int? textTokens = null, int runs = 1) => new()
    {
        BatchSize = 2, Seconds = 0, MinBatches = 2, WarmupBatches = 1, GemmSeconds = 0, TextTokens = textTokens, Runs = runs,
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
    public void RatesAreMediansOfTheRunsAndOneBatchIsSplitByPart()
    {
        using var model = Tiny();
        var r = ClipBenchmark.Run(model, Quick(textTokens: 10, runs: 3));
        Assert.Equal(3, r.Runs);
        Assert.Equal(6, r.ImageBatches);
        foreach (var runs in new[] { r.ImagesPerSecondRuns, r.TextsPerSecondRuns, r.TextsPerSecondPaddedRuns, r.Gemm1024GflopsRuns, r.Gemm2048GflopsRuns })
            Assert.Equal(3, runs.Count);
        Assert.Equal(r.ImagesPerSecondRuns.Order().ElementAt(1), r.ImagesPerSecond);
        Assert.Equal(r.TextsPerSecondRuns.Order().ElementAt(1), r.TextsPerSecond);
        Assert.Equal(r.TextsPerSecondPaddedRuns.Order().ElementAt(1), r.TextsPerSecondPadded);
        Assert.Equal(r.Gemm1024GflopsRuns.Order().ElementAt(1), r.Gemm1024Gflops);
        Assert.Equal(File.Exists("/proc/cpuinfo") && File.ReadAllText("/proc/cpuinfo").Contains(" amx_"), r.Amx);

        var image = Assert.IsType<ClipBenchmarkParts>(r.ImageParts);
        Assert.True(image.PatchEmbedding > 0 && image.Attention > 0 && image.Mlp > 0 && image.Norms > 0 && image.Rest >= 0);
        Assert.True(image.PatchEmbedding + image.Attention + image.Mlp + image.Norms <= image.Total * 1.0001 + 1e-6);
        var text = Assert.IsType<ClipBenchmarkParts>(r.TextParts);
        Assert.Equal(0, text.PatchEmbedding);
        Assert.True(text.Attention > 0 && text.Mlp > 0 && text.Norms > 0);
    }

    [Fact]
    public void PartTimersAreOffOutsideTheBenchmark()
    {
        // Without recording, a timer is the default value and stopping it changes nothing.
        using (Clip.MLNet.Modeling.PartTimes.Start(Clip.MLNet.Modeling.ModelPart.Mlp)) { }
        var seconds = Clip.MLNet.Modeling.PartTimes.Record(() =>
        {
            using (Clip.MLNet.Modeling.PartTimes.Start(Clip.MLNet.Modeling.ModelPart.Mlp))
            using (Clip.MLNet.Modeling.PartTimes.Start(Clip.MLNet.Modeling.ModelPart.Norm))
                Thread.Sleep(5);
        }, CPU);
        Assert.True(seconds[(int)Clip.MLNet.Modeling.ModelPart.Mlp] > 0.004);
        Assert.Equal(0, seconds[(int)Clip.MLNet.Modeling.ModelPart.Norm]);   // nested: the outer part owns the time
    }

    [Fact]
    public void BenchJsonHasAmxRunsAndParts()
    {
        var result = IndexCorpus.Cli(["bench", "--model", IndexCorpus.ModelPath, "--batch", "2", "--seconds", "0", "--runs", "3", "--text-tokens", "10", "--json"],
            new Dictionary<string, string?> { [Clip.MLNet.Modeling.CpuAttention.Variable] = "fused" });
        Assert.True(result.ExitCode == 0, result.Tail());
        var o = JsonNode.Parse(result.StdOut)!.AsObject();
        Assert.IsType<bool>(o["amx"]!.GetValue<bool>());
        foreach (var kind in new[] { "full", "causal" })   // the image tower's attention and the text tower's
        {
            Assert.Equal("fused", o["cpu_attention"]![kind]!["form"]!.GetValue<string>());
            Assert.Equal("override", o["cpu_attention"]![kind]!["source"]!.GetValue<string>());
        }
        var runs = o["runs"]!.AsObject();
        Assert.Equal(3, runs["count"]!.GetValue<int>());
        foreach (var rate in new[] { "images_per_s", "texts_per_s", "texts_per_s_padded", "gemm_gflops_1024", "gemm_gflops_2048" })
        {
            Assert.Equal(3, runs[rate]!["values"]!.AsArray().Count);
            Assert.True(runs[rate]!["median"]!.GetValue<double>() > 0);
        }
        Assert.Equal(o["images_per_s"]!.GetValue<double>(), runs["images_per_s"]!["median"]!.GetValue<double>());
        foreach (var tower in new[] { "image_parts_ms", "text_parts_ms" })
            foreach (var part in new[] { "patch_embedding", "attention", "mlp", "norms", "rest", "total" })
                Assert.True(o[tower]![part]!.GetValue<double>() >= 0, $"{tower}.{part}");
        Assert.True(o["image_parts_ms"]!["total"]!.GetValue<double>() > 0);

        var table = IndexCorpus.Cli(["bench", "--model", IndexCorpus.ModelPath, "--batch", "2", "--seconds", "0", "--runs", "2"]);
        Assert.True(table.ExitCode == 0, table.Tail());
        Assert.Contains("AMX", table.StdOut);
        Assert.Matches(@"attention  full (fused|explicit) \(\w+\), causal (fused|explicit) \(\w+\)", table.StdOut);
        Assert.Contains("each run:", table.StdOut);
        Assert.Contains("one batch, ms", table.StdOut);
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
