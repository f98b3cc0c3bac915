using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.MLNet;

/// <summary>Batching is invisible: same rows, same order, lazy, and the usual ML.NET ways to read rows work.</summary>
public class BatchingTests
{
    private static string[] ManyImages(int count) =>
        Enumerable.Range(0, count).Select(i => ReferenceData.ImagePaths[(i * 5) % 8]).ToArray();

    [Fact]
    public void BatchSizesOneSevenAndThirtyTwoGiveTheSameRowsInOrder()
    {
        var ml = new MLContext(seed: 1);
        var paths = ManyImages(19);
        var data = ReferenceData.ImageView(ml, paths, paths.Select((_, i) => $"row{i}"));
        float[][] Run(int batch)
        {
            using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { BatchSize = batch, InputColumnName = "Image" }).Fit(data);
            var view = t.Transform(data);
            Assert.Equal(paths.Select((_, i) => $"row{i}"), view.GetColumn<string>("Label"));   // passthrough order
            return ReferenceData.Column(view, "Features");
        }
        var one = Run(1);
        foreach (var b in new[] { 7, 32 })
        {
            var other = Run(b);
            Assert.Equal(one.Length, other.Length);
            for (int i = 0; i < one.Length; i++)
                Assert.True(one[i].Zip(other[i], (a, c) => Math.Abs(a - c)).Max() <= 1e-5, $"batch {b}, row {i}");
        }
        // Rows of the same image agree, and different images differ: the rows really are per-row results.
        Assert.True(one[0].Zip(one[8], (a, c) => Math.Abs(a - c)).Max() <= 1e-5);
        Assert.True(one[0].Zip(one[1], (a, c) => Math.Abs(a - c)).Max() > 1e-3);
    }

    [Fact]
    public void TransformIsLazyAndABadRowNamesItselfWhenRead()
    {
        using var dir = new TempDir();
        var broken = dir.File("broken.jpg");
        File.WriteAllBytes(broken, File.ReadAllBytes(ReferenceData.ImagePaths[0]).AsSpan(0, 300).ToArray());
        var ml = new MLContext(seed: 1);
        var paths = new[] { ReferenceData.ImagePaths[0], ReferenceData.ImagePaths[1], broken, ReferenceData.ImagePaths[2] };
        var data = ReferenceData.ImageView(ml, paths);
        using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
        var view = t.Transform(data);   // nothing is read yet, so no error here

        using var cursor = view.GetRowCursor(view.Schema);
        var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Features"]);
        var value = default(VBuffer<float>);
        Assert.True(cursor.MoveNext()); getter(ref value);
        Assert.True(cursor.MoveNext()); getter(ref value);
        var e = Assert.Throws<ClipRowException>(() => cursor.MoveNext());
        Assert.Contains("row 2", e.Message);
        Assert.Contains("broken.jpg", e.Message);
        Assert.Contains("'Image'", e.Message);
    }

    [Fact]
    public void SkipModeGivesMissingOutputsAndCountsTheRow()
    {
        using var dir = new TempDir();
        var broken = dir.File("broken.png");
        File.WriteAllText(broken, "not an image");
        var ml = new MLContext(seed: 1);
        var paths = new[] { ReferenceData.ImagePaths[0], broken, ReferenceData.ImagePaths[1] };
        var data = ReferenceData.ImageView(ml, paths);
        using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit,
            new ClipImageEmbeddingEstimator.Options { BadRows = BadRowHandling.Skip }).Fit(data);
        var rows = ReferenceData.Column(t.Transform(data), "Features");
        Assert.Equal(3, rows.Length);
        Assert.All(rows[1], v => Assert.True(float.IsNaN(v)));
        Assert.DoesNotContain(rows[0], float.IsNaN);
        Assert.DoesNotContain(rows[2], float.IsNaN);
        Assert.Equal(1, t.SkippedRows);
    }

    [Fact]
    public void PredictionEnginePreviewAndCursorSetsWork()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        using var t = ml.Transforms.ClipZeroShot(ReferenceData.Vit, new[] { "a photo of a great wall of china", "a photo of a flower" }).Fit(data);
        var batched = ReferenceData.Column(t.Transform(data), "Score");

        var engine = ml.Model.CreatePredictionEngine<ReferenceData.ImageRow, ZeroShotOutput>(t);
        for (int i = 0; i < 8; i++)
        {
            var p = engine.Predict(new ReferenceData.ImageRow { Image = ReferenceData.ImagePaths[i] });
            Assert.True(p.Score.Zip(batched[i], (a, b) => Math.Abs(a - b)).Max() <= 1e-5, $"row {i}");
            Assert.Equal(Array.IndexOf(batched[i], batched[i].Max()) + 1, (int)p.PredictedLabel);
        }

        var preview = t.Transform(data).Preview(maxRows: 3);
        Assert.Equal(3, preview.RowView.Length);

        var view = t.Transform(data);
        var cursors = view.GetRowCursorSet(view.Schema.Where(c => c.Name == "Score"), 4);
        Assert.NotEmpty(cursors);
        int total = 0;
        foreach (var c in cursors)
        {
            using (c) while (c.MoveNext()) total++;
        }
        Assert.Equal(8, total);
    }

    [Fact]
    public void PredictionEngineTreatsAnUpstreamFailureAsABadRow()
    {
        // LoadImages fails on a missing file when the CLIP stage reads its input: that is this row's error (or skip).
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        var missing = Path.Combine(Path.GetTempPath(), $"no-such-image-{Guid.NewGuid():N}.jpg");
        ITransformer Fit(BadRowHandling badRows) => ml.Transforms.LoadImages("Picture", imageFolder: null, inputColumnName: "Image")
            .Append(ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { InputColumnName = "Picture", BadRows = badRows }))
            .Fit(data);

        var strict = ml.Model.CreatePredictionEngine<ReferenceData.ImageRow, EmbeddingOutput>(Fit(BadRowHandling.Error));
        var error = Assert.Throws<ClipRowException>(() => strict.Predict(new ReferenceData.ImageRow { Image = missing }));
        Assert.Contains("Column 'Picture', row", error.Message);

        var lenient = ml.Model.CreatePredictionEngine<ReferenceData.ImageRow, EmbeddingOutput>(Fit(BadRowHandling.Skip));
        Assert.All(lenient.Predict(new ReferenceData.ImageRow { Image = missing }).Features, v => Assert.True(float.IsNaN(v)));
        var good = lenient.Predict(new ReferenceData.ImageRow { Image = ReferenceData.ImagePaths[0] }).Features;
        Assert.Equal(ReferenceData.Vit.Config.EmbedDim, good.Length);
        Assert.All(good, v => Assert.True(float.IsFinite(v)));
    }

    private sealed class EmbeddingOutput
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ZeroShotOutput
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    [Fact]
    public void OneTransformerServesSeveralThreadsAtOnce()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { BatchSize = 3 }).Fit(data);
        var expected = ReferenceData.Column(t.Transform(data), "Features");
        var results = new float[4][][];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, k => results[k] = ReferenceData.Column(t.Transform(data), "Features"));
        foreach (var r in results)
            for (int i = 0; i < expected.Length; i++)
                Assert.True(r[i].Zip(expected[i], (a, b) => Math.Abs(a - b)).Max() <= 1e-5);
    }

    [Fact]
    public void ReadingOnlyPassthroughColumnsComputesNothing()
    {
        using var dir = new TempDir();
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml, new[] { dir.File("missing.jpg") }, new[] { "x" });
        using var t = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
        // The image does not exist, but nobody asks for Features: no error.
        Assert.Equal(new[] { "x" }, t.Transform(data).GetColumn<string>("Label"));
    }
}
