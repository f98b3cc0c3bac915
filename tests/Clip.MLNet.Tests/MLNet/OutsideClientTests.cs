using Clip.MLNet.Tests.Support;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.MLNet;

/// <summary>Rough edges an outside ML.NET client met with the transforms (issue: no setup step, part 4).</summary>
public sealed class OutsideClientTests
{
    private sealed class PhotoAndCaption
    {
        public string Image { get; set; } = "";
        public string Text { get; set; } = "";
    }

    private static IDataView Pairs(MLContext ml) => ml.Data.LoadFromEnumerable(
        ReferenceData.ImagePaths.Take(2).Select((p, i) => new PhotoAndCaption { Image = p, Text = ReferenceData.Captions[i] }));

    [Fact]
    public void Two_embedding_stages_on_their_default_output_fail_instead_of_hiding_one()
    {
        var ml = new MLContext(seed: 1);
        var data = Pairs(ml);
        var pipeline = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Append(ml.Transforms.ClipTextEmbedding(ReferenceData.Vit));

        var fit = Assert.Throws<InvalidOperationException>(() => pipeline.Fit(data));
        Assert.Contains("ClipTextEmbedding", fit.Message);
        Assert.Contains("'Features'", fit.Message);
        Assert.Contains("another CLIP stage", fit.Message);
        Assert.Contains("outputColumnName", fit.Message);
        var shape = Assert.Throws<InvalidOperationException>(() => pipeline.GetOutputSchema(SchemaErrorTests.SchemaShapeOf(ml, data)));
        Assert.Contains("'Features'", shape.Message);

        // Fitted apart and chained by hand, the transformers refuse too.
        using var image = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
        using var text = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit).Fit(data);
        var chained = Assert.Throws<InvalidOperationException>(() => text.GetOutputSchema(image.GetOutputSchema(data.Schema)));
        Assert.Contains("that ClipImageEmbedding wrote", chained.Message);

        // Distinct names work, and both columns are there.
        var named = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, "ImageFeatures")
            .Append(ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, "TextFeatures"));
        var view = named.Fit(data).Transform(data);
        Assert.Equal(2, ReferenceData.Column(view, "ImageFeatures").Length);
        Assert.Equal(2, ReferenceData.Column(view, "TextFeatures").Length);
        // Replacing a column that no CLIP stage wrote is still allowed.
        var plain = ml.Transforms.Text.FeaturizeText("Features", "Text").Append(ml.Transforms.ClipImageEmbedding(ReferenceData.Vit));
        Assert.Equal(2, ReferenceData.Column(plain.Fit(data).Transform(data), "Features").Length);
    }

    [Fact]
    public void A_bad_batch_size_names_the_parameter_or_the_option()
    {
        var ml = new MLContext(seed: 1);
        Assert.Equal("batchSize", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, batchSize: 0)).ParamName);
        Assert.Equal("batchSize", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, batchSize: -1)).ParamName);
        Assert.Equal("batchSize", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.ClipZeroShot(ReferenceData.Vit, ["a", "b"], batchSize: 0)).ParamName);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { BatchSize = 0 }));
        Assert.Contains("Options.BatchSize", e.Message);
        Assert.Contains("Options.PreprocessThreads", Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.ClipImageEmbedding(ReferenceData.Vit, new ClipImageEmbeddingEstimator.Options { PreprocessThreads = 0 })).Message);
    }

    [Fact]
    public void An_empty_path_says_so_and_a_bad_row_read_twice_is_skipped_once()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml, [ReferenceData.ImagePaths[0], "", ReferenceData.ImagePaths[1]], ["a", "b", "c"]);
        using var strict = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit).Fit(data);
        var e = Assert.Throws<ClipRowException>(() => ReferenceData.Column(strict.Transform(data), "Features"));
        Assert.Contains("row 1: ", e.Message);
        Assert.DoesNotContain("()", e.Message);
        Assert.Contains("empty", e.Message);

        using var lenient = ml.Transforms.ClipImageEmbedding(ReferenceData.Vit,
            new ClipImageEmbeddingEstimator.Options { BadRows = BadRowHandling.Skip }).Fit(data);
        var view = lenient.Transform(data);
        for (int read = 0; read < 3; read++)
        {
            var rows = ReferenceData.Column(view, "Features");
            Assert.True(float.IsNaN(rows[1][0]));
        }
        Assert.Equal(1, lenient.SkippedRows);
    }

    [Fact]
    public void Text_embedding_takes_image_embedding_parameter_order_and_a_tokenizer_in_its_options()
    {
        var ml = new MLContext(seed: 1);
        var data = Pairs(ml);
        // (model, output, input, normalize, batchSize), as ClipImageEmbedding.
        using var raw = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, "Raw", "Text", false, 1).Fit(data);
        using var normalized = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, "Normalized", "Text", normalize: true).Fit(data);
        var r = ReferenceData.Column(raw.Transform(data), "Raw");
        var n = ReferenceData.Column(normalized.Transform(data), "Normalized");
        Assert.True(Math.Abs(Norm(r[0]) - 1) > 1e-3);
        Assert.Equal(1, Norm(n[0]), 4);

        // The tokenizer goes in the options; a model without one needs it there.
        var tokenizer = ReferenceData.Vit.Tokenizer!;
        var options = new ClipTextEmbeddingEstimator.Options { Tokenizer = tokenizer, OutputColumnName = "T" };
        using var withOptions = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, options).Fit(data);
        Assert.Same(tokenizer, withOptions.Tokenizer);
        Assert.Equal(n[0], ReferenceData.Column(withOptions.Transform(data), "T")[0]);
        // The first release's order still compiles and gives the same embeddings.
#pragma warning disable CS0618
        using var old = ml.Transforms.ClipTextEmbedding(ReferenceData.Vit, "Old", "Text", tokenizer, true, 8).Fit(data);
#pragma warning restore CS0618
        Assert.Equal(n[0], ReferenceData.Column(old.Transform(data), "Old")[0]);
    }

    [Fact]
    public void Saved_pipelines_keep_weights_in_the_precision_they_were_loaded_in()
    {
        var ml = new MLContext(seed: 1);
        var data = ReferenceData.ImageView(ml);
        using var dir = new TempDir();
        var fp16File = Fixtures.ReferencePath("rn", "open_clip_model.safetensors");
        using var model = ClipModel.Load(fp16File);
        using var fitted = ml.Transforms.ClipImageEmbedding(model).Fit(data);
        var path = dir.File("pipeline.zip");
        ml.Model.SaveClipPipeline(fitted, data.Schema, path);
        // The fp16 checkpoint's weights take as many bytes in the pipeline as in the file (not twice as many).
        Assert.InRange(new FileInfo(path).Length, 0, (long)(new FileInfo(fp16File).Length * 1.1));
        using var loaded = ml.Model.LoadClipPipeline(path, out _);
        Assert.Equal(ReferenceData.Column(fitted.Transform(data), "Features"), ReferenceData.Column(loaded.Transform(data), "Features"));

        // A weight changed so that fp16 cannot hold it keeps float32: saving never loses what training did.
        using (TorchSharp.torch.no_grad())
            model.parameters().First().view(-1)[0].add_(1e-6f);
        var tuned = dir.File("tuned.safetensors");
        model.Save(tuned);
        using var reloaded = ClipModel.Load(tuned);
        Assert.Equal(model.parameters().First().view(-1)[0].item<float>(), reloaded.parameters().First().view(-1)[0].item<float>());
        Assert.True(new FileInfo(tuned).Length < new FileInfo(fp16File).Length * 1.1);
    }

    private static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));
}
