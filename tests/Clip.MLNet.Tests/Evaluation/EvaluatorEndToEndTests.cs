using System.Globalization;
using System.Text.Json.Nodes;
using Clip.MLNet.Data;
using Clip.MLNet.Evaluation;
using Clip.MLNet.Tests.Data;
using Clip.MLNet.Tests.Support;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Clip.MLNet.Tests.Evaluation;

/// <summary>
/// A <c>clip eval</c> run through the library: dataset specs, the evaluator, the report and its files, with the
/// reference ViT on tiny datasets written here. Its accuracy is near chance (random weights); what is checked is that
/// the numbers are the ones the model's own predictions give, counted independently.
/// </summary>
public class EvaluatorEndToEndTests
{
    private static readonly string[] Colours = { "red", "green", "blue" };
    private static readonly SKColor[] Skia = { SKColors.Red, SKColors.Green, SKColors.Blue };
    private static readonly SKColor[] Marks = { SKColors.White, SKColors.Black, SKColors.Yellow, SKColors.Cyan, SKColors.Magenta };

    private static void WriteColourFolder(string root, int perClass, int offset)
    {
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < perClass; i++)
                DatasetFiles.WritePng(Path.Combine(root, Colours[c], $"{i}.png"), Skia[c], 40 + 8 * i, Marks[(i + offset + c) % Marks.Length]);
    }

    [Fact]
    public void ReportNumbersAreTheModelsOwnPredictionsCounted()
    {
        using var dir = new TempDir();
        WriteColourFolder(dir.File("test"), 4, 0);
        WriteColourFolder(dir.File("train"), 4, 2);
        for (int i = 0; i < 4; i++) DatasetFiles.WritePng(dir.File($"pairs/{i}.png"), Skia[i % 3], 48, Marks[i]);
        File.WriteAllText(dir.File("pairs/captions.csv"),
            "image,caption\n0.png,a red square\n1.png,a green square\n1.png,\"green, with a black corner\"\n2.png,a blue square\n3.png,a red square again\n0.png,red and white\n");
        var templates = new[] { "a photo of a {} square.", "{}" };

        var datasets = new[]
        {
            EvaluationDataset.Load(DatasetSpec.Parse($"colours=imagefolder:{dir.File("test")}"), DatasetSpec.Parse($"imagefolder:{dir.File("train")}")),
            EvaluationDataset.Load(DatasetSpec.Parse($"csv:{dir.File("pairs/captions.csv")}")),
        };
        var options = new EvaluationOptions
        {
            Templates = templates,
            BatchSize = 5,   // batches that do not divide the sets
            LinearProbe = new LinearProbeOptions { L2Values = new[] { 1e-2, 1.0 } },
        };
        var steps = new List<EvaluationProgress>();
        var model = ReferenceData.Vit;
        var report = new ClipEvaluator(model).Evaluate(datasets, options, new InlineProgress(steps.Add), modelDescription: "reference ViT");

        Assert.Equal(new[] { "colours", "captions" }, report.Datasets.Select(d => d.Name));
        var colours = report.Datasets[0];
        Assert.Equal(12, colours.Count);
        Assert.Equal(3, colours.ClassCount);
        Assert.Equal(2, colours.ZeroShotTemplates);
        Assert.Null(colours.Retrieval);

        // Zero-shot, counted from the ClipZeroShot transform's PredictedLabel against the dataset's Label key.
        var ml = new MLContext(seed: 1);
        var view = datasets[0].Test.ToDataView(ml);
        Assert.Equal(new[] { "blue", "green", "red" }, datasets[0].Test.ClassNames);   // sorted folder names
        using var zeroShot = ml.Transforms.ClipZeroShot(model, datasets[0].Test.ClassNames!, templates).Fit(view);
        var predictions = zeroShot.Transform(view);
        var predicted = predictions.GetColumn<uint>("PredictedLabel").ToArray();
        var truth = predictions.GetColumn<uint>(ImageDataset.LabelColumnName).ToArray();
        int correct = predicted.Zip(truth).Count(p => p.First == p.Second);
        Assert.Equal((double)correct / 12, colours.ZeroShot!.Top1);
        Assert.Equal(predicted.Select(p => (int)p - 1), colours.ZeroShot.Predicted);
        var perClass = Enumerable.Range(1, 3).Select(k => predicted.Zip(truth).Where(p => p.Second == k).Average(p => p.First == p.Second ? 1.0 : 0.0));
        Assert.Equal(perClass.Average(), colours.ZeroShot.MeanPerClass, 12);
        Assert.Null(colours.ZeroShot.Top5);
        // ML.NET's own evaluator agrees on top-1.
        var mlMetrics = ml.MulticlassClassification.Evaluate(predictions, ImageDataset.LabelColumnName, "Score", "PredictedLabel");
        Assert.Equal(mlMetrics.MicroAccuracy, colours.ZeroShot.Top1, 12);

        // The probe: fitted on the 12 training images (two L2 values tried on a validation split), scored on the 12 test images.
        var probe = colours.LinearProbe!;
        Assert.Equal(12, probe.Test.Count);
        Assert.Equal(12, probe.TrainCount + probe.ValidationCount);
        Assert.Equal(new[] { 1e-2, 1.0 }, probe.Sweep.Select(t => t.L2));
        Assert.Contains(probe.L2, new[] { 1e-2, 1.0 });

        // Retrieval: four images (the CSV's six rows), image→text R@1 counted from the embedding transforms.
        var captions = report.Datasets[1];
        Assert.Null(captions.ZeroShot);
        Assert.Equal(6, captions.Count);
        Assert.Equal(4, captions.ImageCount);
        var retrieval = captions.Retrieval!;
        var imagePaths = Enumerable.Range(0, 4).Select(i => dir.File($"pairs/{i}.png")).ToArray();
        var imageView = ml.Data.LoadFromEnumerable(imagePaths.Select(p => new ReferenceData.ImageRow { Image = p }));
        using var imageEmbedding = ml.Transforms.ClipImageEmbedding(model).Fit(imageView);
        var imageFeatures = ReferenceData.Column(imageEmbedding.Transform(imageView), "Features");
        var captionTexts = datasets[1].Test.Captions!;
        var textView = ml.Data.LoadFromEnumerable(captionTexts.Select(c => new ReferenceData.TextRow { Text = c }));
        using var textEmbedding = ml.Transforms.ClipTextEmbedding(model).Fit(textView);
        var textFeatures = ReferenceData.Column(textEmbedding.Transform(textView), "Features");
        var imageOfText = new[] { 0, 1, 1, 2, 3, 0 };
        int found = 0;
        for (int i = 0; i < 4; i++)
        {
            var sims = textFeatures.Select(t => t.Zip(imageFeatures[i], (a, b) => (double)a * b).Sum()).ToArray();
            int top = Array.IndexOf(sims, sims.Max());
            if (imageOfText[top] == i) found++;
        }
        Assert.Equal(found / 4.0, retrieval.ImageToText[0]);
        Assert.Equal(new[] { 1, 5, 10 }, retrieval.Ks);
        Assert.Equal(1.0, retrieval.ImageToText[1]);   // 6 texts: every image has a caption in the top 5? at worst rank 5 of 6
        Assert.Equal(1.0, retrieval.TextToImage[2]);   // 4 images: always within the top 10

        // The table, the CSV and the JSON carry the same numbers.
        var markdown = report.ToMarkdown();
        var colourRow = markdown.Split('\n').Single(l => l.StartsWith("| colours |", StringComparison.Ordinal));
        Assert.Contains(EvaluationReport.FormatPercent((double)correct / 12), colourRow);
        Assert.Contains("zero-shot top-1", markdown);
        Assert.Contains("I→T R@1", markdown);
        Assert.Contains("| captions | 6 |", markdown);

        var csvRows = report.ToCsv().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("dataset,task,metric,value,count", csvRows[0]);
        var zsRow = csvRows.Single(r => r.StartsWith("colours,zero-shot,top1,", StringComparison.Ordinal)).Split(',');
        Assert.Equal((double)correct / 12, double.Parse(zsRow[3], CultureInfo.InvariantCulture));
        Assert.Equal("12", zsRow[4]);
        Assert.Single(csvRows, r => r.StartsWith("captions,retrieval,text_to_image_R@5,", StringComparison.Ordinal));

        var files = report.WriteFiles(dir.File("out"));
        Assert.All(files, f => Assert.True(File.Exists(f)));
        var json = JsonNode.Parse(File.ReadAllText(dir.File("out/results.json")))!;
        Assert.Equal("reference ViT", (string)json["model"]!);
        var jsonColours = json["datasets"]!.AsArray().Single(d => (string)d!["name"]! == "colours")!;
        Assert.Equal((double)correct / 12, (double)jsonColours["zero_shot"]!["top1"]!);
        Assert.Equal(probe.L2, (double)jsonColours["linear_probe"]!["l2"]!);
        Assert.Equal(2, jsonColours["linear_probe"]!["sweep"]!.AsArray().Count);
        Assert.Equal(File.ReadAllText(dir.File("out/results.md")), markdown);

        // Progress went through each step, and image progress reached the totals.
        Assert.Contains(steps, s => s.Dataset == "colours" && s.Step == "images" && s.Done == 12 && s.Total == 12);
        Assert.Contains(steps, s => s.Dataset == "colours" && s.Step == "training images" && s.Done == 12);
        Assert.Contains(steps, s => s.Dataset == "captions" && s.Step == "captions" && s.Done == 6);
        Assert.Contains(steps, s => s.Step.StartsWith("linear probe", StringComparison.Ordinal));
    }

    [Fact]
    public void RawPixelDatasetsRunThroughTheSameTransformsAndLimitsSampleAtRandom()
    {
        // Gray idx images go through PNG bytes into ClipImageEmbedding; with no training split the probe takes half.
        using var dir = new TempDir();
        var labels = Enumerable.Range(0, 30).Select(i => (byte)(i % 3)).ToArray();
        var (images, lab) = DatasetFiles.WriteMnistPair(dir.Path, "t10k", 30, 28, 28, labels, gzip: true);
        var dataset = EvaluationDataset.Load(DatasetSpec.Parse($"digits=mnist:{images},{lab}"));
        var options = new EvaluationOptions { MaxItems = 20, Seed = 7, LinearProbe = new LinearProbeOptions { L2Values = new[] { 1.0 } } };

        var result = new ClipEvaluator(ReferenceData.Vit).Evaluate(dataset, options);

        Assert.Equal(20, result.Count);
        Assert.Equal(10, result.ClassCount);
        Assert.Equal(10, result.LinearProbe!.TrainCount);
        Assert.Equal(10, result.LinearProbe.Test.Count);
        Assert.Contains(result.Notes, n => n.Contains("20 of 30 rows", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.Contains("no training split", StringComparison.Ordinal));
        // The labels evaluated are those of the sampled rows.
        var sample = dataset.Test.Sample(20, 7);
        Assert.Equal(20, result.ZeroShot!.Count);
        Assert.Equal(sample.Labels!.GroupBy(l => l).Select(g => g.Count()).OrderBy(c => c),
            result.ZeroShot.PerClassCount.Where(c => c > 0).OrderBy(c => c));
    }

    [Fact]
    public void PromptsMustMatchTheClassesAndATaskMustApply()
    {
        using var dir = new TempDir();
        WriteColourFolder(dir.File("test"), 1, 0);
        var data = ImageFolderReader.Read(dir.File("test"));
        var evaluator = new ClipEvaluator(ReferenceData.Vit);
        var wrong = new EvaluationDataset(data, prompts: new ZeroShotPrompts(new[] { "red", "green" }));
        var e = Assert.Throws<InvalidDataException>(() => evaluator.Evaluate(wrong, new EvaluationOptions { Tasks = EvaluationTasks.ZeroShot }));
        Assert.Contains("2 classes, the dataset 3", e.Message);

        e = Assert.Throws<InvalidDataException>(() => evaluator.Evaluate(new EvaluationDataset(data), new EvaluationOptions { Tasks = EvaluationTasks.Retrieval }));
        Assert.Contains("none of the tasks", e.Message);

        var noTokenizer = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_jit.pt"));
        try
        {
            var ex = Assert.Throws<ArgumentException>(() => new ClipEvaluator(noTokenizer).Evaluate(new EvaluationDataset(data), new EvaluationOptions { Tasks = EvaluationTasks.ZeroShot }));
            Assert.Contains("tokenizer", ex.Message);
        }
        finally
        {
            noTokenizer.Dispose();
        }
    }

    [Fact]
    public void PromptsComeFromAPromptsFileByTheSpecsName()
    {
        using var dir = new TempDir();
        WriteColourFolder(dir.File("c"), 1, 0);
        File.WriteAllText(dir.File("prompts.json"),
            "{\"datasets\": {\"Colours\": {\"classes\": [\"crimson\", [\"lime\", \"green\"], \"navy\"], \"templates\": [\"a {} tile\"]}, \"Other\": {\"classes\": [\"x\"]}}}");
        var loaded = EvaluationDataset.Load(DatasetSpec.Parse($"imagefolder:{dir.File("c")};prompts=colours"), promptsFile: dir.File("prompts.json"));
        Assert.Equal(new[] { "crimson", "lime", "navy" }, loaded.Prompts!.ClassNames);
        Assert.Equal(new[] { "a {} tile" }, loaded.Prompts.Templates);
        var replaced = EvaluationDataset.Load(DatasetSpec.Parse($"colours=imagefolder:{dir.File("c")}"), promptsFile: dir.File("prompts.json"), templates: new[] { "{}!" });
        Assert.Equal(new[] { "{}!" }, replaced.Prompts!.Templates);
        var e = Assert.Throws<InvalidDataException>(() => EvaluationDataset.Load(DatasetSpec.Parse($"imagefolder:{dir.File("c")}"), promptsFile: dir.File("prompts.json")));
        Assert.Contains("no dataset 'c'", e.Message);
    }

    private sealed class InlineProgress(Action<EvaluationProgress> report) : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value) => report(value);
    }
}
