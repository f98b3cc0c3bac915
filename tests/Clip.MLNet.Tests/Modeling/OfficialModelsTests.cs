using System.Text.Json.Nodes;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Modeling;

/// <summary>The nine published OpenAI models: config inferred from their key shapes, and the built model has exactly their keys and shapes.</summary>
public class OfficialModelsTests
{
    private static JsonObject Models => JsonNode.Parse(File.ReadAllText(Fixtures.ReferencePath("official_models.json")))!.AsObject();

    public static TheoryData<string> Names => new() { "RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px" };

    [Theory]
    [MemberData(nameof(Names))]
    public void InfersTheConfigAndBuildsEveryKeyAndShape(string name)
    {
        var entry = Models[name]!;
        var published = entry["state_dict"]!.AsObject()
            .ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(x => x!.GetValue<long>()).ToArray());
        var shapes = published.ToDictionary(kv => OpenAILayout.ToClipKey(kv.Key), kv => kv.Value);

        var config = ClipConfig.InferFromShapes(shapes);
        var expected = entry["config"]!;
        Assert.Equal(expected["embed_dim"]!.GetValue<int>(), config.EmbedDim);
        Assert.Equal(expected["image_resolution"]!.GetValue<int>(), config.ImageResolution);
        Assert.Equal(expected["vision_width"]!.GetValue<int>(), config.VisionWidth);
        Assert.Equal(expected["context_length"]!.GetValue<int>(), config.ContextLength);
        Assert.Equal(expected["vocab_size"]!.GetValue<int>(), config.VocabSize);
        Assert.Equal(expected["transformer_width"]!.GetValue<int>(), config.TextWidth);
        Assert.Equal(expected["transformer_heads"]!.GetValue<int>(), config.TextHeads);
        Assert.Equal(expected["transformer_layers"]!.GetValue<int>(), config.TextLayers);
        if (expected["vision_patch_size"] is JsonNode patch)
        {
            Assert.Equal(VisionArchitecture.VisionTransformer, config.VisionArchitecture);
            Assert.Equal(patch.GetValue<int>(), config.VisionPatchSize);
            Assert.Equal(new[] { expected["vision_layers"]!.GetValue<int>() }, config.VisionLayers);
            Assert.Equal(config.VisionWidth / 64, config.VisionHeads);
        }
        else
        {
            Assert.Equal(VisionArchitecture.ModifiedResNet, config.VisionArchitecture);
            Assert.Null(config.VisionPatchSize);
            Assert.Equal(expected["vision_layers"]!.AsArray().Select(x => x!.GetValue<int>()), config.VisionLayers);
            Assert.Equal(config.VisionWidth * 32 / 64, config.VisionHeads);
        }

        // Shapes only (meta device): the largest published models would otherwise need gigabytes here.
        using var model = ClipModel.Create(config, new Device(DeviceType.META));
        var built = model.state_dict().ToDictionary(kv => OpenAILayout.FromClipKey(kv.Key), kv => kv.Value.shape);
        var publishedWeights = published.Where(kv => !OpenAILayout.IsHarmlessExtra(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(publishedWeights.Keys.Order(StringComparer.Ordinal), built.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in publishedWeights)
            Assert.True(shape.SequenceEqual(built[key]), $"{name} {key}: published [{string.Join(",", shape)}], built [{string.Join(",", built[key])}]");
        // The published count covers every float tensor of the state dict (BatchNorm statistics included).
        Assert.Equal(entry["parameters"]!.GetValue<long>(),
            model.state_dict().Where(kv => !kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal)).Sum(kv => kv.Value.numel()));
    }

    [Fact]
    public void ARandomlyInitialisedSmallModelRunsBothTowers()
    {
        var config = ClipConfig.VisionTransformerConfig(embedDim: 32, imageResolution: 32, patchSize: 8, visionWidth: 64, visionLayers: 2, textWidth: 64, textLayers: 2, contextLength: 16, vocabSize: 100);
        using var model = ClipModel.Create(config);
        using var scope = NewDisposeScope();
        var pixels = torch.randn(3, 3, 32, 32);
        var tokens = torch.tensor(new long[,] { { 98, 5, 99, 0 }, { 98, 99, 0, 0 } });
        var image = model.EncodeImage(pixels);
        var text = model.EncodeText(tokens);
        Assert.Equal(new long[] { 3, 32 }, image.shape);
        Assert.Equal(new long[] { 2, 32 }, text.shape);
        Assert.False(image.isnan().any().item<bool>());
        Assert.NotEqual(0f, text.abs().sum().item<float>());
    }
}
