using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>The registered SigLIP/SigLIP2 checkpoints and the published configurations that <c>clip bench --arch</c> builds.</summary>
public class SigLipRegistryTests
{
    [Theory]
    [InlineData("timm/ViT-B-16-SigLIP", 224, "spiece.model")]
    [InlineData("timm/ViT-SO400M-14-SigLIP-384", 384, "spiece.model")]
    [InlineData("timm/ViT-B-16-SigLIP2-256", 256, "tokenizer.model")]
    [InlineData("hf-hub:timm/ViT-SO400M-16-SigLIP2-384", 384, "tokenizer.model")]
    public void SigLipCheckpointsAreRegisteredWithTheirTokenizerFile(string name, int size, string tokenizerFile)
    {
        var model = ClipModelRegistry.Default.Get(name);
        Assert.Equal(size, model.ImageSize);
        Assert.Equal(ClipPretrainedModel.SourceTokenizer, model.Tokenizer);
        Assert.Equal(new[] { 0.5f, 0.5f, 0.5f }, model.Mean);
        var source = Assert.Single(model.Sources);
        Assert.Equal("open_clip", source.Layout);
        Assert.Contains(source.Files, f => f.Path == tokenizerFile);
        Assert.Equal("open_clip_model.safetensors", source.Weights.Path);
    }

    [Fact]
    public void ASourceTokenizerNeedsATokenizerFileInEverySource()
    {
        var json = """{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {}, "models": [{"name": "x", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "source", "sources": [{"hub": "a/b", "layout": "open_clip"}]}]}""";
        var e = Assert.Throws<InvalidDataException>(() => ClipModelRegistry.Parse(json, "r.json"));
        Assert.Contains("spiece.model", e.Message);
    }

    /// <summary>open_clip's docs/openclip_results.csv "FLOPs (B)" (image at its size + text at its context), per config.</summary>
    [Theory]
    [InlineData("ViT-B-16-SigLIP", 46.44)]
    [InlineData("ViT-B-16-SigLIP-256", 57.84)]
    [InlineData("ViT-B-16-SigLIP-384", 123.15)]
    [InlineData("ViT-B-16-SigLIP-512", 227.26)]
    [InlineData("ViT-L-16-SigLIP-256", 201.62)]
    [InlineData("ViT-L-16-SigLIP-384", 422.91)]
    [InlineData("ViT-SO400M-14-SigLIP", 233.54)]
    [InlineData("ViT-SO400M-14-SigLIP-384", 723.48)]
    public void PublishedConfigsHaveOpenClipsFlops(string name, double gflop)
    {
        var config = OpenClipConfig.PublishedSigLip[name]();
        config.Validate();
        double total = ClipFlops.ImageGflop(config) + ClipFlops.TextGflop(config, config.ContextLength);
        Assert.InRange(total, gflop * 0.995, gflop * 1.005);
    }

    [Fact]
    public void PublishedConfigsBuildOnTheMetaDevice()
    {
        foreach (var (name, make) in OpenClipConfig.PublishedSigLip)
        {
            using var model = ClipModel.Create(make(), torch.META);
            Assert.Equal(ClipScoring.Sigmoid, model.Scoring);
            Assert.False(model.TrimText, name);
        }
    }
}
