using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Clip.MLNet.Evaluation;

/// <summary>The results of one dataset (see <see cref="ClipEvaluator"/>).</summary>
public sealed class DatasetEvaluation
{
    /// <summary>The dataset's name.</summary>
    public string Name { get; }

    /// <summary>Where its rows came from.</summary>
    public string Source { get; }

    /// <summary>Rows evaluated.</summary>
    public int Count { get; }

    /// <summary>Distinct images among them.</summary>
    public int ImageCount { get; }

    /// <summary>Number of classes, for labelled datasets.</summary>
    public int? ClassCount { get; }

    /// <summary>Zero-shot accuracy, when run.</summary>
    public ClassificationResult? ZeroShot { get; }

    /// <summary>Prompt templates ensembled for zero-shot (0 when not run).</summary>
    public int ZeroShotTemplates { get; }

    /// <summary>Linear-probe accuracy and its L2 search, when run.</summary>
    public LinearProbeResult? LinearProbe { get; }

    /// <summary>Retrieval recall, when run.</summary>
    public RetrievalResult? Retrieval { get; }

    /// <summary>Wall-clock time of the dataset's evaluation.</summary>
    public double Seconds { get; }

    /// <summary>What a reader of the numbers should know: subsampling, how the probe was split.</summary>
    public IReadOnlyList<string> Notes { get; }

    internal DatasetEvaluation(string name, string source, int count, int imageCount, int? classCount, ClassificationResult? zeroShot, int zeroShotTemplates,
        LinearProbeResult? linearProbe, RetrievalResult? retrieval, double seconds, IReadOnlyList<string> notes)
    {
        Name = name;
        Source = source;
        Count = count;
        ImageCount = imageCount;
        ClassCount = classCount;
        ZeroShot = zeroShot;
        ZeroShotTemplates = zeroShotTemplates;
        LinearProbe = linearProbe;
        Retrieval = retrieval;
        Seconds = seconds;
        Notes = notes;
    }
}

/// <summary>One number of a report, in long form: one CSV row.</summary>
/// <param name="Dataset">The dataset's name.</param>
/// <param name="Task">zero-shot, linear-probe or retrieval.</param>
/// <param name="Metric">top1, top5, mean_per_class, image_to_text_R@K or text_to_image_R@K.</param>
/// <param name="Value">A fraction between 0 and 1.</param>
/// <param name="Count">The items it is a fraction of.</param>
public sealed record EvaluationMetric(string Dataset, string Task, string Metric, double Value, int Count);

/// <summary>
/// The results of an evaluation: per dataset, as a Markdown table (<see cref="ToMarkdown"/>), CSV in long form
/// (<see cref="ToCsv"/>: <c>dataset,task,metric,value,count</c>) and JSON with every detail (<see cref="ToJson"/>).
/// </summary>
public sealed class EvaluationReport
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    internal EvaluationReport(string model, EvaluationTasks tasks, IReadOnlyList<DatasetEvaluation> datasets)
    {
        Model = model;
        Tasks = tasks;
        Datasets = datasets;
        Created = DateTimeOffset.UtcNow;
    }

    /// <summary>Puts evaluations made separately (for example with different tasks per dataset) into one report.</summary>
    public static EvaluationReport Combine(string model, IReadOnlyList<DatasetEvaluation> datasets)
    {
        var tasks = EvaluationTasks.None;
        foreach (var d in datasets)
        {
            if (d.ZeroShot is not null) tasks |= EvaluationTasks.ZeroShot;
            if (d.LinearProbe is not null) tasks |= EvaluationTasks.LinearProbe;
            if (d.Retrieval is not null) tasks |= EvaluationTasks.Retrieval;
        }
        return new EvaluationReport(model, tasks, datasets);
    }

    /// <summary>The model evaluated (its path, or a description).</summary>
    public string Model { get; }

    /// <summary>The tasks asked for.</summary>
    public EvaluationTasks Tasks { get; }

    /// <summary>When the report was made (UTC).</summary>
    public DateTimeOffset Created { get; }

    /// <summary>Results per dataset, in the order evaluated.</summary>
    public IReadOnlyList<DatasetEvaluation> Datasets { get; }

    /// <summary>Every number, one per row: dataset, task, metric, value (a fraction), count.</summary>
    public IReadOnlyList<EvaluationMetric> Metrics => Datasets.SelectMany(MetricsOf).ToArray();

    private static IEnumerable<EvaluationMetric> MetricsOf(DatasetEvaluation d)
    {
        if (d.ZeroShot is { } z)
        {
            yield return new(d.Name, "zero-shot", "top1", z.Top1, z.Count);
            if (z.Top5 is { } t5) yield return new(d.Name, "zero-shot", "top5", t5, z.Count);
            yield return new(d.Name, "zero-shot", "mean_per_class", z.MeanPerClass, z.Count);
        }
        if (d.LinearProbe is { } p)
        {
            yield return new(d.Name, "linear-probe", "top1", p.Test.Top1, p.Test.Count);
            yield return new(d.Name, "linear-probe", "mean_per_class", p.Test.MeanPerClass, p.Test.Count);
        }
        if (d.Retrieval is { } r)
        {
            for (int i = 0; i < r.Ks.Count; i++) yield return new(d.Name, "retrieval", $"image_to_text_R@{r.Ks[i]}", r.ImageToText[i], r.ImageCount);
            for (int i = 0; i < r.Ks.Count; i++) yield return new(d.Name, "retrieval", $"text_to_image_R@{r.Ks[i]}", r.TextToImage[i], r.TextCount);
        }
    }

    /// <summary>The heading of a metric's column in the Markdown table.</summary>
    private static string Heading(EvaluationMetric m) => (m.Task, m.Metric) switch
    {
        ("zero-shot", "top1") => "zero-shot top-1",
        ("zero-shot", "top5") => "zero-shot top-5",
        ("zero-shot", "mean_per_class") => "zero-shot mean/class",
        ("linear-probe", "top1") => "probe top-1",
        ("linear-probe", "mean_per_class") => "probe mean/class",
        (_, var metric) when metric.StartsWith("image_to_text_", StringComparison.Ordinal) => "I→T " + metric["image_to_text_".Length..],
        (_, var metric) when metric.StartsWith("text_to_image_", StringComparison.Ordinal) => "T→I " + metric["text_to_image_".Length..],
        _ => m.Task + " " + m.Metric,
    };

    /// <summary>A value as the table shows it: a percentage with two decimals.</summary>
    public static string FormatPercent(double fraction) =>
        double.IsNaN(fraction) ? "n/a" : (100 * fraction).ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>
    /// A Markdown table, one row per dataset and one column per metric that any dataset has (values in %), followed by
    /// the notes (subsampling, probe splits and chosen L2).
    /// </summary>
    public string ToMarkdown()
    {
        var metrics = Metrics;
        var headings = metrics.Select(Heading).Distinct().ToList();
        var sb = new StringBuilder();
        sb.Append("| dataset | n | ").AppendJoin(" | ", headings).AppendLine(" |");
        sb.Append("|---|---:|").Append(string.Concat(headings.Select(_ => "---:|"))).AppendLine();
        foreach (var d in Datasets)
        {
            var mine = metrics.Where(m => m.Dataset == d.Name).ToDictionary(Heading, m => m.Value);
            sb.Append("| ").Append(EscapeCell(d.Name)).Append(" | ").Append(d.Count.ToString(CultureInfo.InvariantCulture)).Append(" | ")
              .AppendJoin(" | ", headings.Select(h => mine.TryGetValue(h, out var v) ? FormatPercent(v) : "—")).AppendLine(" |");
        }
        var notes = new List<string>();
        foreach (var d in Datasets)
        {
            var parts = new List<string>(d.Notes);
            if (d.ZeroShot is not null) parts.Add($"zero-shot with {d.ZeroShotTemplates} template(s)");
            if (d.LinearProbe is { } p) parts.Add($"probe L2 = {p.L2.ToString("0.###e+0", CultureInfo.InvariantCulture)}" + (p.Sweep.Count > 0 ? $", chosen on {p.ValidationCount} validation rows" : ""));
            if (parts.Count > 0) notes.Add($"- {d.Name}: {string.Join("; ", parts)}.");
        }
        sb.AppendLine();
        sb.AppendLine($"Values in %. Model: {Model}.");
        foreach (var n in notes) sb.AppendLine(n);
        return sb.ToString();
    }

    /// <summary>CSV in long form: a header <c>dataset,task,metric,value,count</c>, then one row per number (value a fraction).</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder("dataset,task,metric,value,count\n");
        foreach (var m in Metrics)
            sb.Append(Csv(m.Dataset)).Append(',').Append(m.Task).Append(',').Append(m.Metric).Append(',')
              .Append(m.Value.ToString("R", CultureInfo.InvariantCulture)).Append(',').Append(m.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// JSON: the model, the tasks, the time, the metrics in long form, and per dataset every result (the probe's L2 search
    /// included). Property names in snake_case; fractions, not percentages.
    /// </summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        Model,
        Tasks = Tasks.ToString(),
        Created,
        Metrics,
        Datasets,
    }, JsonOptions);

    /// <summary>Writes <c>results.md</c>, <c>results.csv</c> and <c>results.json</c> into <paramref name="directory"/> (created if needed).</summary>
    /// <returns>The paths written.</returns>
    public IReadOnlyList<string> WriteFiles(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        var files = new[]
        {
            (Path.Combine(directory, "results.md"), ToMarkdown()),
            (Path.Combine(directory, "results.csv"), ToCsv()),
            (Path.Combine(directory, "results.json"), ToJson()),
        };
        foreach (var (path, text) in files) File.WriteAllText(path, text, new UTF8Encoding(false));
        return files.Select(f => f.Item1).ToArray();
    }

    private static string Csv(string field) =>
        field.IndexOfAny(new[] { ',', '"', '\n', '\r' }) < 0 ? field : "\"" + field.Replace("\"", "\"\"") + "\"";

    private static string EscapeCell(string text) => text.Replace("|", "\\|");
}
