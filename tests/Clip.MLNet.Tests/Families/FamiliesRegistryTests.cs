namespace Clip.MLNet.Tests.Families;

/// <summary>
/// The DFN, MetaCLIP, EVA02 and CLIPA checkpoints that open_clip's pretrained.py lists with hf_hub: registered with
/// open_clip's preprocessing constants, activation and tokenizer. That the hub folders hold these files was not
/// checked here (no network in the tests).
/// </summary>
public class FamiliesRegistryTests
{
    private static readonly float[] OpenAIMean = [0.48145466f, 0.4578275f, 0.40821073f];
    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];

    [Theory]
    [InlineData("apple/DFN2B-CLIP-ViT-B-16", 224, "quick_gelu")]
    [InlineData("apple/DFN2B-CLIP-ViT-L-14", 224, "quick_gelu")]
    [InlineData("apple/DFN2B-CLIP-ViT-L-14-39B", 224, "gelu")]
    [InlineData("apple/DFN5B-CLIP-ViT-H-14", 224, "quick_gelu")]
    [InlineData("hf-hub:apple/DFN5B-CLIP-ViT-H-14-378", 378, "quick_gelu")]
    [InlineData("timm/vit_base_patch32_clip_224.metaclip_400m", 224, "quick_gelu")]
    [InlineData("timm/vit_base_patch32_clip_224.metaclip_2pt5b", 224, "quick_gelu")]
    [InlineData("timm/vit_base_patch16_clip_224.metaclip_400m", 224, "quick_gelu")]
    [InlineData("timm/vit_base_patch16_clip_224.metaclip_2pt5b", 224, "quick_gelu")]
    [InlineData("timm/vit_large_patch14_clip_224.metaclip_400m", 224, "quick_gelu")]
    [InlineData("timm/vit_large_patch14_clip_224.metaclip_2pt5b", 224, "quick_gelu")]
    [InlineData("timm/vit_huge_patch14_clip_224.metaclip_2pt5b", 224, "quick_gelu")]
    [InlineData("timm/vit_huge_patch14_clip_224.metaclip_altogether", 224, "gelu")]
    [InlineData("timm/vit_gigantic_patch14_clip_224.metaclip_2pt5b", 224, "quick_gelu")]
    [InlineData("timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k", 224, "gelu")]
    [InlineData("timm/eva02_large_patch14_clip_224.merged2b_s4b_b131k", 224, "gelu")]
    [InlineData("timm/eva02_large_patch14_clip_336.merged2b_s6b_b61k", 336, "gelu")]
    public void OpenAITokenizerCheckpointsAreRegistered(string name, int size, string activation)
    {
        var model = ClipModelRegistry.Default.Get(name);
        Assert.Equal(size, model.ImageSize);
        Assert.Equal(activation == "quick_gelu" ? ClipActivation.QuickGelu : ClipActivation.Gelu, model.Activation);
        Assert.Equal("clip-bpe", model.Tokenizer);
        Assert.Equal(OpenAIMean, model.Mean);
        AssertOpenClipSources(model);
    }

    [Theory]
    [InlineData("UCSC-VLAA/ViT-L-14-CLIPA-datacomp1B", 224)]
    [InlineData("UCSC-VLAA/ViT-L-14-CLIPA-336-datacomp1B", 336)]
    [InlineData("UCSC-VLAA/ViT-H-14-CLIPA-datacomp1B", 224)]
    [InlineData("UCSC-VLAA/ViT-H-14-CLIPA-336-laion2B", 336)]
    [InlineData("UCSC-VLAA/ViT-H-14-CLIPA-336-datacomp1B", 336)]
    [InlineData("UCSC-VLAA/ViT-bigG-14-CLIPA-datacomp1B", 224)]
    [InlineData("hf-hub:UCSC-VLAA/ViT-bigG-14-CLIPA-336-datacomp1B", 336)]
    public void ClipaCheckpointsAreRegisteredWithBertsVocabulary(string name, int size)
    {
        var model = ClipModelRegistry.Default.Get(name);
        Assert.Equal(size, model.ImageSize);
        Assert.Equal(ClipActivation.Gelu, model.Activation);
        Assert.Equal(ImageNetMean, model.Mean);
        Assert.Equal("bert-base-uncased", model.Tokenizer);
        var vocab = ClipModelRegistry.Default.Vocabularies[model.Tokenizer];
        Assert.EndsWith("/bert-base-uncased/resolve/main/vocab.txt", vocab.FileUrl(vocab.Weights).ToString());
        AssertOpenClipSources(model);
    }

    private static void AssertOpenClipSources(ClipPretrainedModel model)
    {
        Assert.Equal(2, model.Sources.Count);
        Assert.All(model.Sources, s => Assert.Equal("open_clip", s.Layout));
        Assert.All(model.Sources, s => Assert.Contains(s.Files, f => f.Path == "open_clip_config.json"));
        Assert.Equal("open_clip_model.safetensors", model.Sources[0].Weights.Path);
        Assert.Equal("open_clip_pytorch_model.bin", model.Sources[1].Weights.Path);
        Assert.Equal(model.Name, model.Sources[0].Repository);
    }

    /// <summary>EVA02-E (a different block, not built here) is left out rather than registered to fail after a 20 GB download.</summary>
    [Theory]
    [InlineData("timm/eva02_enormous_patch14_clip_224.laion2b_s4b_b115k")]
    [InlineData("timm/eva02_enormous_patch14_plus_clip_224.laion2b_s9b_b144k")]
    public void Eva02EnormousIsNotRegistered(string name) =>
        Assert.Throws<ClipUnknownModelException>(() => ClipModelRegistry.Default.Get(name));

    /// <summary>A CLIPA name asked for its tokenizer alone is refused before any download: the BERT rule lives in the model's config.</summary>
    [Fact]
    public void ClipaTokenizerAloneIsRefusedWithTheWayToGetIt()
    {
        var e = Assert.Throws<NotSupportedException>(() => ClipTokenizer.FromPretrained("UCSC-VLAA/ViT-L-14-CLIPA-datacomp1B",
            options: new ClipPretrainedOptions { CacheFolder = Path.Combine(Path.GetTempPath(), $"clip-no-cache-{Guid.NewGuid():N}"), Offline = true }));
        Assert.Contains("WordPiece", e.Message);
        Assert.Contains("FromWordPiece", e.Message);
    }

    /// <summary>The registry hands a CLIPA model the downloaded vocab.txt as its vocabulary path: the config's BERT rule applies.</summary>
    [Fact]
    public void ClipaFolderGivenAVocabularyPathUsesItAsWordPiece()
    {
        var folder = FamilyFixtures.CopyFolder("clipa");
        var vocabFolder = Path.Combine(Path.GetTempPath(), $"clip-bert-vocab-{Guid.NewGuid():N}");
        Directory.CreateDirectory(vocabFolder);
        try
        {
            var vocab = Path.Combine(vocabFolder, "vocab.txt");
            File.WriteAllLines(vocab, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog"]);
            using var model = ClipModel.Load(folder, new ClipLoadOptions { VocabularyPath = vocab });
            var tokenizer = Assert.IsType<ClipTokenizer>(model.Tokenizer);
            Assert.True(tokenizer.IsWordPiece);
            int[] expected = [2, 5, 6, .. new int[29]];   // [CLS] a dog, [SEP] stripped, padding
            Assert.Equal(expected, tokenizer.Encode("A dog"));
        }
        finally
        {
            Directory.Delete(folder, true);
            Directory.Delete(vocabFolder, true);
        }
    }
}
