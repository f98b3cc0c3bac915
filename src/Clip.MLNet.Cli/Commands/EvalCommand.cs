using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Clip.MLNet.Data;
using Clip.MLNet.Evaluation;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>clip eval</c>: zero-shot, linear-probe and retrieval results of a model on datasets, printed as a Markdown table
/// and written as Markdown, CSV and JSON. The work is <see cref="ClipEvaluator"/>'s; this is the command line around it.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var vocab = CommonOptions.Vocab();
        var datasets = new Option<string[]>("--dataset")
        {
            Description = "Datasets to evaluate, each " + DatasetSpec.Grammar +
                " Examples: fashion-mnist:/usr/share/datasets/fashion-mnist  pets=imagefolder:/data/pets  flickr=csv:/data/captions.csv;caption=sentence",
            AllowMultipleArgumentsPerToken = true,
            Required = true,
        };
        var train = new Option<string[]>("--train")
        {
            Description = "Training splits for the linear probe, as --dataset specs; each goes with the --dataset of the same NAME " +
                "(or with the only one). A folder location reads its train split. Without one, the probe is fitted on half of the evaluated rows.",
            AllowMultipleArgumentsPerToken = true,
        };
        var tasks = new Option<string[]>("--tasks")
        {
            Description = "Tasks: zero-shot, linear-probe, retrieval (default: every task that applies to each dataset).",
            AllowMultipleArgumentsPerToken = true,
        };
        var templates = new Option<string?>("--templates") { Description = "A UTF-8 file with one prompt template per line, {} where the class name goes (default: {}). With --prompts, replaces the file's templates." };
        var prompts = new Option<string?>("--prompts") { Description = "A prompts JSON ({\"datasets\": {NAME: {\"classes\", \"templates\"}}}) giving each dataset's classes and templates, looked up by the dataset's NAME or its prompts= key." };
        var maxItems = new Option<int?>("--max-items") { Description = "Evaluate at most N rows of each dataset (images, for captioned sets), drawn at random." };
        var maxTrain = new Option<int?>("--max-train-items") { Description = "Fit the linear probe on at most N training rows, drawn at random." };
        var probeL2 = new Option<double[]>("--probe-l2")
        {
            Description = "L2 strengths for the linear probe (default: the CLIP paper's search from 1e-6 to 1e6; one value skips the search).",
            AllowMultipleArgumentsPerToken = true,
        };
        var probeIterations = new Option<int>("--probe-iterations") { Description = "L-BFGS iterations at most per probe fit.", DefaultValueFactory = _ => 1000 };
        var seed = new Option<int>("--seed") { Description = "Seed of row sampling and probe splits.", DefaultValueFactory = _ => 0 };
        var outputDir = new Option<string>("--output-dir") { Description = "Folder for results.md, results.csv and results.json.", DefaultValueFactory = _ => "clip-eval-results" };
        var batch = CommonOptions.Batch();
        var precision = CommonOptions.Precision();
        var activation = CommonOptions.Activation();
        var command = new Command("eval",
            "Evaluate a model on datasets: zero-shot top-1/top-5/mean per-class accuracy, a logistic-regression linear probe, " +
            "image-text recall@1/5/10. Prints a Markdown table; writes Markdown, CSV and JSON to --output-dir; progress on stderr.")
        {
            model, vocab, datasets, train, tasks, templates, prompts, maxItems, maxTrain, probeL2, probeIterations, seed, outputDir, batch, precision, activation,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var options = new EvaluationOptions
            {
                Tasks = ParseTasks(parse.GetValue(tasks)),
                MaxItems = Positive(parse.GetValue(maxItems), "--max-items"),
                MaxTrainItems = Positive(parse.GetValue(maxTrain), "--max-train-items"),
                BatchSize = CommonOptions.CheckBatch(parse.GetValue(batch)),
                Seed = parse.GetValue(seed),
                LinearProbe = new LinearProbeOptions
                {
                    L2Values = parse.GetValue(probeL2) is { Length: > 0 } l2 ? l2 : null,
                    MaximumIterations = Positive(parse.GetValue(probeIterations), "--probe-iterations")!.Value,
                    Seed = parse.GetValue(seed),
                },
            };
            var templateList = parse.GetValue(templates) is { } t ? ZeroShotCommand.ReadTemplates(t) : null;
            options.Templates = templateList;
            var promptsFile = parse.GetValue(prompts);
            if (promptsFile is not null && !File.Exists(promptsFile)) throw new CliInputException($"--prompts {promptsFile}: no such file");

            var specs = Parse(parse.GetValue(datasets)!, "--dataset");
            var trainSpecs = Parse(parse.GetValue(train) ?? Array.Empty<string>(), "--train");
            var pairs = Pair(specs, trainSpecs);

            // Datasets are read before the model so that a bad path fails at once.
            var entries = new List<EvaluationDataset>();
            foreach (var (test, trainSpec) in pairs)
            {
                Console.Error.WriteLine($"reading {test.Name} ({test.Text}){(trainSpec is null ? "" : $" with training split {trainSpec.Text}")}");
                entries.Add(EvaluationDataset.Load(test, trainSpec, promptsFile, templateList));
            }

            var modelPath = parse.GetValue(model)!;
            using var clip = CommonOptions.LoadModel(modelPath, parse.GetValue(precision)!, parse.GetValue(activation), parse.GetValue(vocab));
            var tokenizer = parse.GetValue(vocab) is { } v ? ClipTokenizer.Load(v, clip.ContextLength) : null;

            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true;   // stop at the next batch, then exit with the cancelled code
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            try
            {
                var report = new ClipEvaluator(clip, tokenizer).Evaluate(entries, options, new StderrProgress(), cancel.Token, modelPath);
                Console.Out.Write(report.ToMarkdown());
                var dir = parse.GetValue(outputDir)!;
                var written = report.WriteFiles(dir);
                Console.Error.WriteLine($"wrote {string.Join(", ", written)}");
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static List<DatasetSpec> Parse(string[] values, string flag) =>
        values.Select(v =>
        {
            try { return DatasetSpec.Parse(v); }
            catch (FormatException e) { throw new CliInputException($"{flag}: {e.Message}", e); }
        }).ToList();

    /// <summary>Each --train spec with the --dataset of its name (or the only --dataset).</summary>
    private static List<(DatasetSpec Test, DatasetSpec? Train)> Pair(List<DatasetSpec> tests, List<DatasetSpec> trains)
    {
        var duplicate = tests.GroupBy(s => s.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new CliInputException($"--dataset: two datasets are named '{duplicate.Key}'; give them names (NAME=KIND:...)");
        var byName = new Dictionary<string, DatasetSpec>(StringComparer.Ordinal);
        foreach (var t in trains)
        {
            var match = tests.Count == 1 && trains.Count == 1 ? tests[0] : tests.FirstOrDefault(s => s.Name == t.Name)
                ?? throw new CliInputException($"--train {t.Text}: no --dataset named '{t.Name}' (datasets: {string.Join(", ", tests.Select(s => s.Name))})");
            if (!byName.TryAdd(match.Name, t)) throw new CliInputException($"--train: two training splits for '{match.Name}'");
        }
        return tests.Select(s => (s, byName.GetValueOrDefault(s.Name))).ToList();
    }

    private static EvaluationTasks ParseTasks(string[]? values)
    {
        if (values is null || values.Length == 0) return EvaluationTasks.All;
        var tasks = EvaluationTasks.None;
        foreach (var v in values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
            tasks |= v.ToLowerInvariant() switch
            {
                "zero-shot" or "zeroshot" => EvaluationTasks.ZeroShot,
                "linear-probe" or "probe" => EvaluationTasks.LinearProbe,
                "retrieval" => EvaluationTasks.Retrieval,
                "all" => EvaluationTasks.All,
                _ => throw new CliInputException($"--tasks: unknown task '{v}' (zero-shot, linear-probe, retrieval)"),
            };
        return tasks;
    }

    private static int? Positive(int? value, string flag) =>
        value is null or > 0 ? value : throw new CliInputException($"{flag} must be positive, got {value}");

    /// <summary>Progress lines on stderr: rewritten in place on a terminal, otherwise at most one per second per step.</summary>
    private sealed class StderrProgress : IProgress<EvaluationProgress>
    {
        private readonly bool terminal = !Console.IsErrorRedirected;
        private readonly Stopwatch clock = Stopwatch.StartNew();
        private readonly Stopwatch stepClock = new();
        private string? step;
        private double lastPrint = double.NegativeInfinity;
        private bool openLine;

        public void Report(EvaluationProgress p)
        {
            var key = p.Dataset + "\0" + p.Step;
            bool newStep = key != step;
            if (newStep)
            {
                if (openLine) Console.Error.WriteLine();
                openLine = false;
                step = key;
                stepClock.Restart();
            }
            bool done = p.Total is { } total && p.Done >= total;
            double now = clock.Elapsed.TotalSeconds;
            if (!newStep && !done && now - lastPrint < (terminal ? 0.2 : 1.0)) return;
            lastPrint = now;
            var line = $"[{p.Dataset}] {p.Step}";
            if (p.Total is { } n)
            {
                line += $" {p.Done}/{n}";
                double seconds = stepClock.Elapsed.TotalSeconds;
                if (p.Done > 0 && seconds > 0.5) line += $" ({(p.Done / seconds).ToString("0.0", CultureInfo.InvariantCulture)}/s)";
            }
            if (terminal && p.Total is not null)
            {
                Console.Error.Write("\r" + line.PadRight(70));
                openLine = !done;
                if (done) Console.Error.WriteLine();
            }
            else
            {
                Console.Error.WriteLine(line);
            }
        }
    }
}
