using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.MLNet;

/// <summary>The ML.NET transforms against the reference outputs: zero-shot, image and text embeddings.</summary>
public class ZeroShotPipelineTests
{
    private static IReadOnlyList<string> Labels => ReferenceData.Captions.Where(c => c.Length > 0).ToArray();

    /// <summary>softmax over the non-empty captions' columns of the reference logits.</summary>
    private static float[][] ExpectedProbabilities(IReadOnlyList<int> rows)
    {
        var logits = Fixtures.Expected("vit.logits_per_image");
        var columns = ReferenceData.Captions.Select((c, i) => (c, i)).Where(x => x.c.Length > 0).Select(x => (long)x.i).ToArray();
        using var scope = NewDisposeScope();
        var p = logits.index_select(1, torch.tensor(columns)).softmax(1);
        return rows.Select(r => ReferenceData.Row(p, r)).ToArray();
    }

    private static float[][] Scores(IDataView predictions) => ReferenceData.Column(predictions, "Score");

    private static uint[] Predicted(IDataView predictions) =>
        predictions.GetColumn<uint>("PredictedLabel").ToArray();

    [Fact]
    public void ImagePathsReproduceTheReferenceProbabilities()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        using var zeroShot = ml.Transforms.ClipZeroShot(ReferenceData.Vit, Labels).Fit(data);
        var predictions = zeroShot.Transform(data);
        var scores = Scores(predictions);
        var predicted = Predicted(predictions);
        var expected = ExpectedProbabilities(Enumerable.Range(0, 8).ToArray());
        for (int i = 0; i < 8; i++)
        {
            var maxDiff = scores[i].Zip(expected[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff <= 1e-3, $"{ReferenceData.ImageNames[i]}: max |diff| {maxDiff}");
            Assert.Equal(Array.IndexOf(expected[i], expected[i].Max()) + 1, (int)predicted[i]);
        }
    }

    [Fact]
    public void MLImagesFromLoadImagesReproduceTheReferenceExceptThePaletteGif()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 8).Where(i => !ReferenceData.ImageNames[i].EndsWith(".gif", StringComparison.Ordinal)).ToArray();
        var data = ReferenceData.ImageView(ml, rows.Select(i => ReferenceData.ImagePaths[i]));
        var pipeline = ml.Transforms.LoadImages("Picture", imageFolder: null, inputColumnName: "Image")
            .Append(ml.Transforms.ClipZeroShot(ReferenceData.Vit, Labels, inputColumnName: "Picture"));
        using var model = pipeline.Fit(data);
        var scores = Scores(model.Transform(data));
        var expected = ExpectedProbabilities(rows);
        for (int i = 0; i < rows.Length; i++)
        {
            var maxDiff = scores[i].Zip(expected[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff <= 1e-3, $"{ReferenceData.ImageNames[rows[i]]}: max |diff| {maxDiff}");
        }
    }

    [Fact]
    public void PredictedLabelKeysAreTheClassNamesInOrderAndScoreHasThemAsSlotNames()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        var classes = new[] { "cat", "flower", "cat", "wall" };   // repeated names stay distinct classes
        using var zeroShot = ml.Transforms.ClipZeroShot(ReferenceData.Vit, classes).Fit(data);
        var schema = zeroShot.GetOutputSchema(data.Schema);
        var keyType = Assert.IsType<KeyDataViewType>(schema["PredictedLabel"].Type);
        Assert.Equal((ulong)classes.Length, keyType.Count);
        var keyValues = default(VBuffer<ReadOnlyMemory<char>>);
        schema["PredictedLabel"].GetKeyValues(ref keyValues);
        Assert.Equal(classes, keyValues.DenseValues().Select(v => v.ToString()));
        var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
        schema["Score"].GetSlotNames(ref slotNames);
        Assert.Equal(classes, slotNames.DenseValues().Select(v => v.ToString()));
        Assert.Equal(classes.Length, ((VectorDataViewType)schema["Score"].Type).Size);
    }

    [Fact]
    public void EmbeddingsReproduceTheNormalizedReferenceFeatures()
    {
        var ml = new MLContext(seed: 1);
        var images = ReferenceData.ImageView(ml);
        using var imageEmbedding = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(images);
        var imageRows = ReferenceData.Column(imageEmbedding.Transform(images), "Features");

        var texts = ml.Data.LoadFromEnumerable(ReferenceData.Captions.Select(c => new ReferenceData.TextRow { Text = c }));
        using var textEmbedding = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit).Fit(texts);
        var textRows = ReferenceData.Column(textEmbedding.Transform(texts), "Features");

        using var scope = NewDisposeScope();
        var expectedImages = ClipModel.Normalize(Fixtures.Expected("vit.image_features"));
        var expectedTexts = ClipModel.Normalize(Fixtures.Expected("vit.text_features"));
        for (int i = 0; i < 8; i++)
            Assert.InRange(ReferenceData.RelativeError(imageRows[i], ReferenceData.Row(expectedImages, i)), 0, 1e-3);
        for (int i = 0; i < 6; i++)
            Assert.InRange(ReferenceData.RelativeError(textRows[i], ReferenceData.Row(expectedTexts, i)), 0, 1e-3);
        Assert.All(imageRows, r => Assert.InRange(Math.Sqrt(r.Sum(x => (double)x * x)), 0.9999, 1.0001));
    }

    [Fact]
    public void PromptEnsemblingAveragesNormalizedTemplateEmbeddings()
    {
        var templates = new[] { "a photo of a {}.", "itap of a {}.", "a {} in the wild" };
        var prompts = new ZeroShotPrompts(new[] { new[] { "flower", "blossom" }, new[] { "wall" } }, templates);
        using var classifier = ZeroShotClassifier.Create(ReferenceData.Vit, ReferenceData.Vit.Tokenizer!, prompts);
        using var scope = NewDisposeScope();
        // By hand: every prompt of class 0 (2 synonyms × 3 templates), normalized, averaged, normalized.
        var texts = new[] { "flower", "blossom" }.SelectMany(n => templates.Select(t => t.Replace("{}", n))).ToList();
        var f = ClipModel.Normalize(ReferenceData.Vit.EncodeText(ReferenceData.Vit.Tokenizer!.Tokenize(texts)));
        var mean = f.mean(new long[] { 0 });
        var expected = mean / mean.norm();
        Assert.True((classifier.Weights[0] - expected).abs().max().item<float>() < 1e-5);
        Assert.Equal(new[] { "flower", "wall" }, classifier.ClassNames);
        Assert.Equal(ReferenceData.Vit.LogitScale, classifier.LogitScale);
    }
}
