using Clip.MLNet.Tests.Support;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>Smoke tests of the existing paths with the EVA02 and CLIPA fixtures: bf16, and a saved ML.NET zero-shot pipeline.</summary>
public class Eva02ClipaPathsTests
{
    [Theory]
    [InlineData("eva02")]
    [InlineData("clipa")]
    public void BFloat16StaysCloseToTheReference(string family)
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder(family), new ClipLoadOptions { Precision = ScalarType.BFloat16 });
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(FamilyFixtures.Expected($"{family}.pixel_values"));
        var text = model.EncodeText(FamilyFixtures.Expected($"{family}.text_tokens"));
        Assert.True(Fixtures.RelativeError(image, FamilyFixtures.Expected($"{family}.image_features")) < 3e-2, "image features");
        Assert.True(Fixtures.RelativeError(text, FamilyFixtures.Expected($"{family}.text_features")) < 3e-2, "text features");
    }

    [Theory]
    [InlineData("eva02")]
    [InlineData("clipa")]
    public void SavedZeroShotPipelineGivesTheSameScores(string family)
    {
        var folder = FamilyFixtures.CopyFolder(family);
        var path = Path.Combine(Path.GetTempPath(), $"{family}-pipeline-{Guid.NewGuid():N}.zip");
        try
        {
            ClipLoadOptions options = new();
            if (family == "eva02") options.VocabularyPath = Fixtures.Vocab;
            else File.WriteAllLines(Path.Combine(folder, "vocab.txt"),
                ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "temple", "flower", "dog", "'", "s", "?", ".", "blur", "##ry"]);
            using var model = ClipModel.Load(folder, options);
            Assert.NotNull(model.Tokenizer);
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromEnumerable(FamilyFixtures.ImagePaths.Select(p => new ImageRow { Image = p }));
            using var zeroShot = ml.Transforms.ClipZeroShot(model, FamilyFixtures.Texts.Take(4).ToArray()).Fit(data);
            var before = zeroShot.Transform(data).GetColumn<float[]>("Score").ToArray();
            ml.Model.SaveClipPipeline(new TransformerChain<ITransformer>(zeroShot), data.Schema, path);
            using var loaded = ml.Model.LoadClipPipeline(path, out _);
            var after = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
            Assert.Equal(FamilyFixtures.ImagePaths.Count, after.Length);
            for (int i = 0; i < before.Length; i++)
            {
                Assert.True(before[i].Zip(after[i], (a, b) => Math.Abs(a - b)).Max() < 1e-5, $"row {i}");
                Assert.True(Math.Abs(after[i].Sum() - 1) < 1e-4, $"row {i}: a softmax");
            }
        }
        finally
        {
            File.Delete(path);
            Directory.Delete(folder, true);
        }
    }

    private sealed class ImageRow
    {
        public string Image { get; set; } = "";
    }
}
