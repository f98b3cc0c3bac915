using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Registry;

/// <summary>The built-in registry's data, and the registry format's checks.</summary>
public class ModelRegistryTests
{
    private static readonly ClipModelRegistry Default = ClipModelRegistry.Default;

    private static readonly string[] OpenAINames = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"];

    [Fact]
    public void TheNineOpenAIModelsComeFirst_WithOpenAIsSpelling_QuickGeluAndClipBpe()
    {
        Assert.Equal(OpenAINames, Default.Models.Take(9).Select(m => m.Name));
        foreach (var m in Default.Models.Take(9))
        {
            Assert.Equal(ClipActivation.QuickGelu, m.Activation);
            Assert.Equal("clip-bpe", m.Tokenizer);
            Assert.Equal(ClipImagePreprocessor.OpenAIMean, m.Mean);
            Assert.Equal(ClipImagePreprocessor.OpenAIStd, m.Std);
        }
        Assert.Equal(336, Default.Get("ViT-L/14@336px").ImageSize);
        Assert.Equal(448, Default.Get("RN50x64").ImageSize);
    }

    [Fact]
    public void EachOpenAIUrlsPathHashEqualsItsSha256()
    {
        var urlSources = Default.Models.SelectMany(m => m.Sources).Where(s => s.Kind == ClipSourceKind.Url && s.Url!.Host == "openaipublic.azureedge.net").ToList();
        Assert.Equal(9, urlSources.Count);
        foreach (var s in urlSources)
        {
            var segments = s.Url!.AbsolutePath.Split('/');
            Assert.Equal(segments[^2], s.Weights.Sha256);
            Assert.Equal(segments[^1], s.Weights.Path);
        }
    }

    [Fact]
    public void TheOpenAIEntriesAgreeWithTheSharedListOfOfficialCheckpoints()
    {
        var official = JsonNode.Parse(File.ReadAllText(Fixtures.Require(Path.Combine(Fixtures.Data, "openai_models.json"))))!["models"]!.AsArray();
        Assert.Equal(OpenAINames, official.Select(o => (string)o!["name"]!));
        foreach (var o in official)
        {
            var m = Default.Get((string)o!["name"]!);
            var hub = m.Sources.Where(s => s.Kind == ClipSourceKind.HuggingFaceHub).ToList();
            // The hub sources first (the original addresses were reported dead), open_clip layout before transformers.
            Assert.Equal((string)o["open_clip_hf_hub"]!, hub[0].Repository);
            Assert.Equal("open_clip", hub[0].Layout);
            Assert.Equal((string?)o["transformers_hf_hub"], hub.ElementAtOrDefault(1)?.Repository);
            var url = m.Sources[^1];
            Assert.Equal(ClipSourceKind.Url, url.Kind);
            Assert.Equal((string)o["url"]!, url.Url!.ToString());
            Assert.Equal((string)o["sha256"]!, url.Weights.Sha256);
        }
    }

    [Fact]
    public void TheVocabularyIsTheOfficialFile_PinnedToItsHash()
    {
        var vocab = Default.Vocabularies["clip-bpe"];
        Assert.Equal("https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz", vocab.Url!.ToString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Fixtures.Vocab))), vocab.Weights.Sha256);
    }

    [Fact]
    public void HubRepositoriesAreRegisteredByTheirIds_WithTheirActivation()
    {
        Assert.Equal(ClipActivation.Gelu, Default.Get("laion/CLIP-ViT-B-32-laion2B-s34B-b79K").Activation);
        Assert.Equal(ClipActivation.Gelu, Default.Get("hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K").Activation);
        var hf = Default.Get("openai/clip-vit-large-patch14");
        Assert.Equal(ClipActivation.QuickGelu, hf.Activation);
        Assert.Equal("transformers", hf.Sources[0].Layout);
        Assert.Equal(new Uri("https://huggingface.co/openai/clip-vit-large-patch14/resolve/main/model.safetensors"), hf.Sources[0].FileUrl(hf.Sources[0].Weights));
        Assert.Same(Default.Get("ViT-B/32"), Default.Get("vit-b-32"));
    }

    [Fact]
    public void EveryHashInTheRegistryIsPinnedOnlyWhereItIsKnown()
    {
        // Hub files' hashes are not known here: they stay unpinned (recorded at first download), never guessed.
        foreach (var s in Default.Models.SelectMany(m => m.Sources).Where(s => s.Kind == ClipSourceKind.HuggingFaceHub))
        {
            Assert.All(s.Files, f => Assert.Null(f.Sha256));
            Assert.Null(s.Revision);
        }
    }

    [Fact]
    public void ClosestNamesSuggestTheMeantModel()
    {
        Assert.Equal("ViT-B/32", Default.ClosestNames("ViT-B/33")[0]);
        Assert.Equal("ViT-L/14@336px", Default.ClosestNames("vit-l-14-336")[0]);
        Assert.Equal("RN50x4", Default.ClosestNames("rn50-x4")[0]);
        var e = Assert.Throws<ClipUnknownModelException>(() => Default.Get("ViT-B/33"));
        Assert.Contains("ViT-B/32", e.Message);
    }

    [Theory]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 2, "models": []}""", "version")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {}, "models": [{"name": "x", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "clip-bpe", "sources": [{"url": "https://e.org/x.pt"}]}]}""", "clip-bpe")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {"v": {"url": "https://e.org/v.gz"}}, "models": [{"name": "x", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "v", "sources": [{"url": "https://e.org/x.pt", "sha256": "abc"}]}]}""", "64 hex")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {"v": {"url": "https://e.org/v.gz"}}, "models": [{"name": "x", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "v", "sources": [{"hub": "a/b", "layout": "open_clip", "files": ["../x"]}]}]}""", "relative")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {"v": {"url": "https://e.org/v.gz"}}, "models": [{"name": "x", "image_size": 224, "mean": [0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "v", "sources": [{"url": "https://e.org/x.pt"}]}]}""", "three numbers")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {"v": {"url": "https://e.org/v.gz"}}, "models": [{"name": "x", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "relu", "tokenizer": "v", "sources": [{"url": "https://e.org/x.pt"}]}]}""", "activation")]
    [InlineData("""{"format": "clip.mlnet.registry", "version": 1, "vocabularies": {"v": {"url": "https://e.org/v.gz"}}, "models": [{"name": "x", "aliases": ["Y"], "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "v", "sources": [{"url": "https://e.org/x.pt"}]}, {"name": "y", "image_size": 224, "mean": [0,0,0], "std": [1,1,1], "activation": "gelu", "tokenizer": "v", "sources": [{"url": "https://e.org/y.pt"}]}]}""", "used by two models")]
    public void AnInvalidRegistryIsRefusedWithItsReason(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => ClipModelRegistry.Parse(json, "my-registry.json"));
        Assert.StartsWith("my-registry.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
