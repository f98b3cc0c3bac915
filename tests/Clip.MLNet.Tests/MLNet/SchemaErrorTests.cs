using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;

namespace Clip.MLNet.Tests.MLNet;

public class SchemaErrorTests
{
    private sealed class NumberRow
    {
        public float Image { get; set; }
        public string Text { get; set; } = "";
    }

    [Fact]
    public void MissingColumnIsNamedAtFitAndInGetOutputSchema()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        var estimator = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, inputColumnName: "Photo");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        Assert.Contains("'Photo'", e.Message);
        var shape = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(SchemaShapeOf(ml, data)));
        Assert.Contains("'Photo'", shape.Message);
    }

    [Fact]
    public void WrongColumnTypeNamesTheColumnAndTheAcceptedTypes()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new NumberRow { Image = 1, Text = "x" } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data));
        Assert.Contains("'Image'", e.Message);
        Assert.Contains("file paths", e.Message);
        Assert.Contains("Single", e.Message);

        var t = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, inputColumnName: "Image").Fit(data));
        Assert.Contains("expected text", t.Message);
    }

    [Fact]
    public void EstimatorChainReportsTheOutputShape()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        var pipeline = ml.Transforms.ClipZeroShot(ReferenceData.Vit, new[] { "a", "b" })
            .Append(ml.Transforms.CopyColumns("Copy", "Score"));
        var shape = pipeline.GetOutputSchema(SchemaShapeOf(ml, data));
        Assert.Contains(shape, c => c.Name == "Score");
        Assert.Contains(shape, c => c.Name == "PredictedLabel" && c.IsKey);
        Assert.Contains(shape, c => c.Name == "Copy");
    }

    [Fact]
    public void MlNetModelSaveNamesTheSupportedWay()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
        using var dir = new TempDir();
        var e = Assert.ThrowsAny<Exception>(() => ml.Model.Save(t, data.Schema, dir.File("model.zip")));
        var messages = string.Join(" | ", Flatten(e).Select(x => x.Message));
        Assert.Contains("SaveClipPipeline", messages);
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException) yield return x;
    }

    internal static SchemaShape SchemaShapeOf(MLContext ml, IDataView data) =>
        // ML.NET makes SchemaShape from a DataViewSchema only internally; an empty estimator chain does it publicly.
        new Microsoft.ML.Data.EstimatorChain<ITransformer>().GetOutputSchema(
            (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .Invoke(null, new object[] { data.Schema })!);
}
