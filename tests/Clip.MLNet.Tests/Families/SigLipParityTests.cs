using Clip.MLNet.Tests.Support;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>SigLIP and SigLIP2 open_clip hub folders against open_clip's and timm's own outputs (1e-4 relative, fp32).</summary>
public class SigLipParityTests
{
    public static TheoryData<string> Families => new() { "siglip", "siglip2" };

    [Theory]
    [MemberData(nameof(Families))]
    public void FeaturesAndLogitsMatchTheReference(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family));
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(FamilyFixtures.Expected($"{family}.pixel_values"));
        var text = model.EncodeText(FamilyFixtures.Expected($"{family}.text_tokens"));
        var (logits, _) = model.Logits(FamilyFixtures.Expected($"{family}.pixel_values"), FamilyFixtures.Expected($"{family}.text_tokens"));
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected($"{family}.image_features")) < 1e-4, "image features");
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected($"{family}.text_features")) < 1e-4, "text features");
        Assert.True(Fixtures.RelativeError(logits, FamilyFixtures.Expected($"{family}.logits_per_image")) < 1e-4, "logits (forward)");
        var fromFeatures = model.LogitsFromFeatures(image, text);
        Assert.True(Fixtures.RelativeError(fromFeatures, FamilyFixtures.Expected($"{family}.logits_per_image")) < 1e-4, "logits (from features)");
        Assert.Equal(ClipScoring.Sigmoid, model.Scoring);
        Assert.NotNull(model.LogitBias);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TextTrimmingIsOffForTheNonCausalLastPooledTower(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family));
        model.TrimText = true;
        Assert.False(model.TrimText);
        using var scope = NewDisposeScope();
        var text = model.EncodeText(FamilyFixtures.Expected($"{family}.text_tokens"));
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected($"{family}.text_features")) < 1e-4);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void PreprocessingFollowsTheConfig(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family));
        Assert.Equal(ClipResizeMode.Squash, model.ImagePreprocessing.ResizeMode);
        Assert.Equal(new[] { 0.5f, 0.5f, 0.5f }, model.ImagePreprocessing.Mean);
        using var pixels = model.CreateImagePreprocessor().PreprocessBatch(FamilyFixtures.ImagePaths);
        var expected = FamilyFixtures.Expected($"{family}.pixel_values");
        Assert.Equal(expected.shape, pixels.shape);
        for (int i = 0; i < pixels.shape[0]; i++)
        {
            using var diff = (pixels[i] - expected[i]).abs();
            double max = diff.max().item<float>(), mean = diff.mean().item<float>();
            Assert.True(max <= 0.02 && mean <= 0.002, $"{FamilyFixtures.ImagePaths[i]}: max {max}, mean {mean}");
        }
    }

    [Fact]
    public void SigLipTokenizerGivesTheManifestIds()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        var tokenizer = model.RequireTokenizer();
        Assert.True(tokenizer.IsSentencePiece);
        Assert.Equal(64, tokenizer.ContextLength);
        var cases = FamilyFixtures.Manifest["siglip_tokenizer"]!["cases"]!.AsArray();
        Assert.True(cases.Count >= 40);
        foreach (var c in cases)
        {
            var text = (string)c!["text"]!;
            var expected = c["ids"]!.AsArray().Select(n => (int)n!).ToArray();
            Assert.True(expected.SequenceEqual(tokenizer.Encode(text)), $"\"{text}\": got [{string.Join(",", tokenizer.Encode(text))}]");
        }
        // The fixture's text tokens are the manifest's texts tokenized the same way.
        using var tokens = tokenizer.Tokenize(FamilyFixtures.Texts);
        Assert.True(tokens.equal(FamilyFixtures.Expected("siglip.text_tokens")).all().item<bool>());
    }

    [Fact]
    public void ZeroShotGivesEachClassItsSigmoid()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        var texts = FamilyFixtures.Texts;
        using var classifier = ZeroShotClassifier.Create(model, model.RequireTokenizer(), new ZeroShotPrompts(texts, new[] { "{}" }));
        Assert.Equal(ClipScoring.Sigmoid, classifier.Scoring);
        using var scope = NewDisposeScope();
        var features = model.EncodeImage(FamilyFixtures.Expected("siglip.pixel_values"));
        var probabilities = classifier.Probabilities(features);
        var expected = torch.sigmoid(FamilyFixtures.Expected("siglip.logits_per_image"));
        Assert.True((probabilities - expected).abs().max().item<float>() < 1e-4);

        // The ML.NET transform on the image files (the model's own preprocessing) gives the same scores.
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(FamilyFixtures.ImagePaths.Select(p => new ImageRow { Image = p }));
        using var zeroShot = ml.Transforms.ClipZeroShot(model, texts).Fit(data);
        var scores = zeroShot.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < scores.Length; i++)
        {
            var row = expected[i].data<float>().ToArray();
            var maxDiff = scores[i].Zip(row, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff < 1e-3, $"image {i}: max |diff| {maxDiff}");
        }
    }

    [Fact]
    public void OpenAIModelsKeepSoftmax()
    {
        Assert.Equal(ClipScoring.Softmax, ReferenceData.Vit.Scoring);
        Assert.Null(ReferenceData.Vit.LogitBias);
    }

    [Fact]
    public void SavedSigLipModelLoadsBackWithItsPreprocessingAndTokenizer()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("siglip"));
        var path = Path.Combine(Path.GetTempPath(), $"siglip-{Guid.NewGuid():N}.safetensors");
        try
        {
            model.Save(path);
            using var again = ClipModel.Load(path);
            Assert.Equal(model.Config, again.Config);
            Assert.Equal(model.ImagePreprocessing, again.ImagePreprocessing);
            Assert.Equal(model.LogitBias, again.LogitBias);
            Assert.Equal(model.Tokenizer!.Encode("a photo of a temple."), again.RequireTokenizer().Encode("a photo of a temple."));
            using var scope = NewDisposeScope();
            var text = again.EncodeText(FamilyFixtures.Expected("siglip.text_tokens"));
            Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected("siglip.text_features")) < 1e-4);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class ImageRow
    {
        public string Image { get; set; } = "";
    }
}
