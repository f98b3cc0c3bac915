using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Clip.MLNet.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip zero-shot</c>: CSV of the top classes of each image, from the same classifier the ML.NET transform uses.</summary>
internal static class ZeroShotCommand
{
    public static Command Create()
    {
        var run = new ModelRunOptions();
        var labels = new Option<string?>("--labels") { Description = "Class names, comma-separated." };
        var labelsFile = new Option<string?>("--labels-file") { Description = "A UTF-8 file with one class name per line." };
        var templates = new Option<string?>("--templates") { Description = "A UTF-8 file with one prompt template per line, {} where the class name goes (default: {})." };
        var top = new Option<int>("--top") { Description = "Rows per image: the K most probable classes.", DefaultValueFactory = _ => 1 };
        var images = new Option<string[]>("--images") { Description = "Image files to classify.", AllowMultipleArgumentsPerToken = true, Required = true };
        var command = new Command("zero-shot", "Zero-shot classification: prints CSV 'image,rank,label,probability', K rows per image.")
        {
            labels, labelsFile, templates, top, images,
        };
        run.AddTo(command);
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var classNames = ReadLabels(parse.GetValue(labels), parse.GetValue(labelsFile));
            var templateList = parse.GetValue(templates) is { } t ? ReadTemplates(t) : ZeroShotPrompts.NameOnly;
            int k = parse.GetValue(top);
            if (k <= 0) throw new CliInputException($"--top must be positive, got {k}");
            k = Math.Min(k, classNames.Count);
            var batchSize = run.BatchSize(parse);
            var paths = parse.GetValue(images)!;

            ZeroShotPrompts prompts;
            try { prompts = new ZeroShotPrompts(classNames, templateList); }
            catch (ArgumentException e) { throw new CliInputException(e.Message, e); }
            using var clip = run.LoadModel(parse);
            var tokenizer = EmbedFiles.Tokenizer(clip, parse.GetValue(run.Vocab));
            using var classifier = ZeroShotClassifier.Create(clip, tokenizer, prompts);
            var preprocessor = clip.CreateImagePreprocessor();
            Console.Error.WriteLine(classifier.Scoring == ClipScoring.Sigmoid
                ? $"scoring: sigmoid (the model has a logit_bias): each class's own probability sigmoid({clip.LogitScale:0.####} * cos {(clip.LogitBias < 0 ? '-' : '+')} {Math.Abs(clip.LogitBias ?? 0):0.####}), not summing to 1"
                : "scoring: softmax over the classes");

            var stdout = Console.Out;
            stdout.WriteLine("image,rank,label,probability");
            // Decoding and preprocessing run on a background thread one batch ahead of the forward pass.
            using var prefetcher = new ImageBatchPrefetcher(preprocessor, paths, batchSize, prefetch: 1,
                threads: run.PreprocessThreadsFor(parse, clip));
            try
            {
                foreach (var (start, pixels) in prefetcher.Batches())
                {
                    using var scope = NewDisposeScope();
                    var (classes, scores) = ZeroShotClassifier.TopClasses(classifier.Probabilities(clip.EncodeImage(pixels)), k);
                    for (int i = 0; i < pixels.shape[0]; i++)
                        for (int r = 0; r < k; r++)
                            stdout.WriteLine(string.Join(',', Csv(paths[start + i]), (r + 1).ToString(CultureInfo.InvariantCulture),
                                Csv(classifier.ClassNames[classes[i * k + r]]), scores[i * k + r].ToString("0.########", CultureInfo.InvariantCulture)));
                }
            }
            catch (ClipImageException e) when (e.Index is { } i)
            {
                throw new CliInputException($"--images item {i + 1} ({e.Input}): {e.Problem}", e);
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static IReadOnlyList<string> ReadLabels(string? inline, string? file)
    {
        if ((inline is null) == (file is null)) throw new CliInputException("give exactly one of --labels and --labels-file");
        var names = inline is not null
            ? inline.Split(',').Select(s => s.Trim()).ToList()
            : TextLines.ReadFile(file!).Select(s => s.Trim()).ToList();
        // A trailing blank line in a labels file is not a class; blank names elsewhere are an error.
        while (names.Count > 0 && names[^1].Length == 0) names.RemoveAt(names.Count - 1);
        if (names.Count == 0) throw new CliInputException($"{(file ?? "--labels")}: no class names");
        int blank = names.FindIndex(n => n.Length == 0);
        if (blank >= 0) throw new CliInputException(file is null ? "--labels has an empty class name" : $"{file}, line {blank + 1}: empty class name");
        return names;
    }

    internal static IReadOnlyList<string> ReadTemplates(string file)
    {
        var lines = TextLines.ReadFile(file).Where(l => l.Trim().Length > 0).ToList();
        if (lines.Count == 0) throw new CliInputException($"{file}: no templates");
        int bad = lines.FindIndex(l => !l.Contains("{}", StringComparison.Ordinal));
        if (bad >= 0) throw new CliInputException($"{file}: the template \"{lines[bad]}\" has no {{}} where the class name goes");
        return lines;
    }

    private static string Csv(string field) =>
        field.IndexOfAny(new[] { ',', '"', '\n', '\r' }) < 0 ? field : "\"" + field.Replace("\"", "\"\"") + "\"";
}
