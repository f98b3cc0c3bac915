using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>clip bench</c>: images/s and texts/s of a model on random inputs, beside the GEMM rate of the same
/// dtype and thread count measured in the same run; a table, or one JSON object with <c>--json</c>.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The architectures <c>--arch</c> builds with random weights (OpenAI's configurations).</summary>
    internal static readonly IReadOnlyDictionary<string, Func<ClipConfig>> Architectures =
        new Dictionary<string, Func<ClipConfig>>(
            new Dictionary<string, Func<ClipConfig>>(StringComparer.OrdinalIgnoreCase)
            {
                ["ViT-B/32"] = () => ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 12, 512, 12),
                ["ViT-B/16"] = () => ClipConfig.VisionTransformerConfig(512, 224, 16, 768, 12, 512, 12),
                ["RN50"] = () => ClipConfig.ResNetConfig(1024, 224, new[] { 3, 4, 6, 3 }, 64, 512, 12),
            }.Concat(Weights.OpenClipConfig.PublishedSigLip),
            StringComparer.OrdinalIgnoreCase);

    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        model.Description = "Weights to time (any supported file or folder, or a registered name). Without it, --arch builds random weights.";
        var arch = new Option<string?>("--arch") { Description = "Architecture with random weights when no --model is given: ViT-B/32 (default), ViT-B/16, RN50, or an open_clip SigLIP/SigLIP2 config name (ViT-B-16-SigLIP, ViT-SO400M-14-SigLIP-384, ViT-B-16-SigLIP2-256, ViT-SO400M-16-SigLIP2-384, ...)." };
        var batch = CommonOptions.Batch();
        var precision = CommonOptions.Precision();
        var threads = CommonOptions.Threads();
        var seconds = new Option<double>("--seconds") { Description = "Seconds of timed batches per tower, after warm-up (at least 3 batches run).", DefaultValueFactory = _ => 10 };
        var runs = new Option<int>("--runs") { Description = "Times each rate is measured; the medians are reported (default 3).", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var textTokens = new Option<int?>("--text-tokens")
        {
            Description = "Token positions per benchmark text, start and end included (default: the context, 77). " +
                          "Shorter texts are also timed padded to the context with trimming off, for comparison.",
        };
        var device = CommonOptions.DeviceOption();
        var images = new Option<string[]>("--images")
        {
            Description = "Image files or folders: also time ClipImageEmbedding over them (paths, decoding and preprocessing included) and compare with the image tower alone.",
            AllowMultipleArgumentsPerToken = true,
        };
        var imageCount = new Option<int?>("--image-count") { Description = "Rows for the --images run, cycling through the files (default: one per file)." };
        var preprocessThreads = new Option<int>("--preprocess-threads") { Description = "Threads decoding and preprocessing in the --images run.", DefaultValueFactory = _ => 1 };
        var command = new Command("bench", "Time the image and text towers on random inputs, beside the machine's GEMM rate in the same dtype and threads.")
        {
            model, arch, batch, precision, threads, seconds, runs, json, textTokens, device, images, imageCount, preprocessThreads,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var modelPath = parse.GetValue(model);
            var archName = parse.GetValue(arch);
            if (modelPath is not null && archName is not null) throw new CliInputException("give --model or --arch, not both");
            var dtype = CommonOptions.ParsePrecision(parse.GetValue(precision)!);
            var batchSize = CommonOptions.CheckBatch(parse.GetValue(batch));
            double duration = parse.GetValue(seconds);
            if (!(duration >= 0) || double.IsInfinity(duration)) throw new CliInputException($"--seconds must be a non-negative number, got {duration}");
            int runCount = parse.GetValue(runs);
            if (runCount <= 0) throw new CliInputException($"--runs must be positive, got {runCount}");
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            var target = CommonOptions.ParseDevice(parse.GetValue(device));
            var files = ImageFiles(parse.GetValue(images) ?? Array.Empty<string>());
            int rows = parse.GetValue(imageCount) ?? files.Count;
            if (parse.GetValue(imageCount) is { } requested && (requested <= 0 || files.Count == 0))
                throw new CliInputException(files.Count == 0 ? "--image-count needs --images" : $"--image-count must be positive, got {requested}");
            int prepThreads = parse.GetValue(preprocessThreads);
            if (prepThreads <= 0) throw new CliInputException($"--preprocess-threads must be positive, got {prepThreads}");

            string name;
            ClipModel clip;
            if (modelPath is not null)
            {
                name = modelPath;
                clip = Pretrained.LoadModel(modelPath, new ClipLoadOptions { Precision = dtype, Device = target });   // a file, folder or registered name
            }
            else
            {
                name = archName ?? "ViT-B/32";
                if (!Architectures.TryGetValue(name, out var config))
                    throw new CliInputException($"--arch: unknown architecture '{name}' (expected {string.Join(", ", Architectures.Keys)})");
                name = Architectures.Keys.First(k => string.Equals(k, name, StringComparison.OrdinalIgnoreCase));
                clip = ClipModel.Create(config(), target).ToPrecision(dtype);
            }
            using (clip)
            {
                int? tokens = parse.GetValue(textTokens);
                if (tokens is { } t && (t < 2 || t > clip.ContextLength))
                    throw new CliInputException($"--text-tokens must be 2..{clip.ContextLength} (start and end tokens included), got {t}");
                var result = ClipBenchmark.Run(clip, new ClipBenchmarkOptions { BatchSize = batchSize, Seconds = duration, TextTokens = tokens, Runs = runCount },
                    line => Console.Error.WriteLine($"bench: {line}"));
                foreach (var note in result.CpuAttentionChoices.Select(c => c.Note).OfType<string>().Distinct())
                    Console.Error.WriteLine($"bench: {note}");
                ClipPipelineBenchmarkResult? pipeline = null;
                if (files.Count > 0)
                {
                    Console.Error.WriteLine($"bench: ClipImageEmbedding over {rows} rows of {files.Count} files, batch {batchSize}, {prepThreads} preprocessing thread{(prepThreads == 1 ? "" : "s")}");
                    pipeline = ClipPipelineBenchmark.Run(clip, files, rows, batchSize, prepThreads);
                }
                Console.Out.Write(parse.GetValue(json) ? Json(name, modelPath is null, result, pipeline) : Table(name, modelPath is null, result, pipeline));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>The files of <c>--images</c>: files as given, folders as their image files in name order.</summary>
    internal static IReadOnlyList<string> ImageFiles(IEnumerable<string> items)
    {
        var extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp" };
        var files = new List<string>();
        foreach (var item in items)
        {
            if (Directory.Exists(item))
            {
                var found = Directory.EnumerateFiles(item).Where(f => extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0) throw new CliInputException($"--images: {item}: the folder holds no image files");
                files.AddRange(found);
            }
            else if (File.Exists(item)) files.Add(item);
            else throw new CliInputException($"--images: {item}: no such file or folder");
        }
        return files;
    }

    internal static string Json(string model, bool randomWeights, ClipBenchmarkResult r, ClipPipelineBenchmarkResult? p = null)
    {
        static JsonNode Num(double v, int digits) => JsonValue.Create(Math.Round(v, digits))!;
        var o = new JsonObject
        {
            ["model"] = model,
            ["random_weights"] = randomWeights,
            ["images_per_s"] = Num(r.ImagesPerSecond, 3),
            ["images_per_s_mean"] = Num(r.ImagesPerSecondMean, 3),
            ["texts_per_s"] = Num(r.TextsPerSecond, 3),
            ["texts_per_s_padded"] = r.TextsPerSecondPadded is { } padded ? Num(padded, 3) : null,
            ["text_trim_speedup"] = r.TextsPerSecondPadded is { } q && q > 0 ? Num(r.TextsPerSecond / q, 3) : null,
            ["text_tokens"] = r.TextTokens,
            ["context_length"] = r.ContextLength,
            ["image_gflop_per_item"] = Num(r.ImageGflopPerItem, 4),
            ["text_gflop_per_item"] = Num(r.TextGflopPerItem, 4),
            ["gemm_gflops"] = Num(r.GemmGflops, 2),
            ["gemm_gflops_1024"] = Num(r.Gemm1024Gflops, 2),
            ["gemm_gflops_2048"] = Num(r.Gemm2048Gflops, 2),
            ["image_efficiency"] = Num(r.ImageEfficiency, 4),
            ["text_efficiency"] = Num(r.TextEfficiency, 4),
            ["precision"] = r.Precision,
            ["batch"] = r.Batch,
            ["threads"] = r.Threads,
            ["device"] = r.Device,
            ["omp_wait_policy"] = OpenMpWaitPolicy.Current,
            ["image_batches"] = r.ImageBatches,
            ["text_batches"] = r.TextBatches,
            ["amx"] = r.Amx,
            ["cpu_attention"] = CpuAttentionJson(r),
            ["runs"] = Runs(r),
            ["image_parts_ms"] = Parts(r.ImageParts),
            ["text_parts_ms"] = Parts(r.TextParts),
        };
        if (p is not null)
        {
            o["pipeline_images_per_s"] = Num(p.ImagesPerSecond, 3);
            o["pipeline_ratio"] = r.ImagesPerSecond > 0 ? Num(p.ImagesPerSecond / r.ImagesPerSecond, 4) : null;
            o["pipeline_images_per_s_mean"] = Num(p.ImagesPerSecondMean, 3);
            o["pipeline_images"] = p.Images;
            o["pipeline_seconds"] = Num(p.Seconds, 2);
            o["preprocess_threads"] = p.PreprocessThreads;
            o["rss_start_mib"] = Num(p.RssStartMiB, 1);
            o["peak_rss_mib"] = Num(p.PeakRssMiB, 1);
            o["rss_end_mib"] = Num(p.RssEndMiB, 1);
            o["rss_samples_mib"] = new JsonArray(p.RssSamplesMiB.Select(v => (JsonNode)Num(v, 1)).ToArray());
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + Environment.NewLine;
    }

    /// <summary>
    /// The CPU attention form by kind (<c>full</c>, <c>causal</c>) with where it came from (override, cache, measured,
    /// fallback) and the decision file; fp16 always takes the fused kernel; null on other devices.
    /// </summary>
    internal static JsonObject? CpuAttentionJson(ClipBenchmarkResult r)
    {
        if (!r.Device.StartsWith("cpu", StringComparison.Ordinal)) return null;
        var o = new JsonObject();
        foreach (var c in r.CpuAttentionChoices)
            o[c.Causal ? "causal" : "full"] = new JsonObject { ["form"] = c.FormName, ["source"] = c.SourceName, ["file"] = c.File };
        if (o.Count == 0 && r.Precision == "fp16") o["all"] = new JsonObject { ["form"] = "fused", ["source"] = "fp16" };
        return o;
    }

    /// <summary>The table's line: each kind's form and source.</summary>
    internal static string CpuAttentionLine(ClipBenchmarkResult r)
    {
        if (!r.Device.StartsWith("cpu", StringComparison.Ordinal)) return "fused (not the CPU)";
        if (r.CpuAttentionChoices.Count == 0) return r.Precision == "fp16" ? "fused (fp16)" : "not used";
        return string.Join(", ", r.CpuAttentionChoices.Select(c => $"{(c.Causal ? "causal" : "full")} {c.FormName} ({c.SourceName})"));
    }

    /// <summary>Every run's rates and their medians (the top-level rates).</summary>
    internal static JsonObject Runs(ClipBenchmarkResult r)
    {
        static JsonNode Num(double v, int digits) => JsonValue.Create(Math.Round(v, digits))!;
        JsonObject Rates(IReadOnlyList<double> values, int digits) => new()
        {
            ["values"] = new JsonArray(values.Select(v => (JsonNode)Num(v, digits)).ToArray()),
            ["median"] = Num(ClipBenchmark.Median(values), digits),
        };
        var o = new JsonObject { ["count"] = r.Runs };
        if (r.ImagesPerSecondRuns.Count > 0) o["images_per_s"] = Rates(r.ImagesPerSecondRuns, 3);
        if (r.TextsPerSecondRuns.Count > 0) o["texts_per_s"] = Rates(r.TextsPerSecondRuns, 3);
        if (r.TextsPerSecondPaddedRuns.Count > 0) o["texts_per_s_padded"] = Rates(r.TextsPerSecondPaddedRuns, 3);
        o["gemm_gflops_1024"] = Rates(r.Gemm1024GflopsRuns, 2);
        o["gemm_gflops_2048"] = Rates(r.Gemm2048GflopsRuns, 2);
        return o;
    }

    /// <summary>One batch by part, in milliseconds; null when not measured.</summary>
    internal static JsonObject? Parts(ClipBenchmarkParts? p)
    {
        if (p is null) return null;
        static JsonNode Ms(double seconds) => JsonValue.Create(Math.Round(seconds * 1000, 2))!;
        return new JsonObject
        {
            ["patch_embedding"] = Ms(p.PatchEmbedding),
            ["attention"] = Ms(p.Attention),
            ["mlp"] = Ms(p.Mlp),
            ["norms"] = Ms(p.Norms),
            ["rest"] = Ms(p.Rest),
            ["total"] = Ms(p.Total),
        };
    }

    internal static string Table(string model, bool randomWeights, ClipBenchmarkResult r, ClipPipelineBenchmarkResult? p = null)
    {
        var c = CultureInfo.InvariantCulture;
        var lines = new List<string>
        {
            $"model      {model}{(randomWeights ? " (random weights)" : "")}",
            $"precision  {r.Precision}   batch {r.Batch}   threads {r.Threads}   device {r.Device}   OMP_WAIT_POLICY {OpenMpWaitPolicy.Current}",
            $"CPU        AMX {(r.Amx ? "yes" : "no")}   rates are medians of {r.Runs} run{(r.Runs == 1 ? "" : "s")}",
            $"attention  {CpuAttentionLine(r)}",
            $"GEMM       {r.GemmGflops.ToString("F1", c)} GFLOP/s (best of 1024: {r.Gemm1024Gflops.ToString("F1", c)}, 2048: {r.Gemm2048Gflops.ToString("F1", c)})",
            "",
            $"{"tower",-28}{"items/s",10}{"GFLOP/item",12}{"GFLOP/s",10}{"of GEMM",9}",
        };
        void Row(string name, double rate, double gflop) =>
            lines.Add($"{name,-28}{rate.ToString("F2", c),10}{gflop.ToString("F3", c),12}{(rate * gflop).ToString("F1", c),10}{(rate * gflop / r.GemmGflops).ToString("F3", c),9}");
        if (r.ImageBatches > 0) Row("image", r.ImagesPerSecond, r.ImageGflopPerItem);
        if (r.TextBatches > 0)
        {
            Row($"text, {r.TextTokens} tokens", r.TextsPerSecond, r.TextGflopPerItem);
            if (r.TextsPerSecondPadded is { } padded)
            {
                Row($"text, padded to {r.ContextLength}", padded, r.TextGflopPerItemPadded ?? 0);
                lines.Add($"trimming speed-up           {(r.TextsPerSecond / padded).ToString("F2", c)}x");
            }
        }
        if (r.Runs > 1)
        {
            string List(IReadOnlyList<double> v) => string.Join(" ", v.Select(x => x.ToString("F2", c)));
            lines.Add("");
            lines.Add("each run:");
            if (r.ImagesPerSecondRuns.Count > 0) lines.Add($"  images/s        {List(r.ImagesPerSecondRuns)}");
            if (r.TextsPerSecondRuns.Count > 0) lines.Add($"  texts/s         {List(r.TextsPerSecondRuns)}");
            if (r.TextsPerSecondPaddedRuns.Count > 0) lines.Add($"  padded texts/s  {List(r.TextsPerSecondPaddedRuns)}");
            lines.Add($"  GEMM 1024       {List(r.Gemm1024GflopsRuns)}");
            lines.Add($"  GEMM 2048       {List(r.Gemm2048GflopsRuns)}");
        }
        if (r.ImageParts is not null || r.TextParts is not null)
        {
            lines.Add("");
            lines.Add($"{"one batch, ms",-16}{"patch",9}{"attention",11}{"MLP",9}{"norms",9}{"rest",9}{"total",9}");
            void PartRow(string name, ClipBenchmarkParts q) => lines.Add(
                $"{name,-16}{(q.PatchEmbedding * 1000).ToString("F1", c),9}{(q.Attention * 1000).ToString("F1", c),11}{(q.Mlp * 1000).ToString("F1", c),9}" +
                $"{(q.Norms * 1000).ToString("F1", c),9}{(q.Rest * 1000).ToString("F1", c),9}{(q.Total * 1000).ToString("F1", c),9}");
            if (r.ImageParts is { } ip) PartRow("image", ip);
            if (r.TextParts is { } tp) PartRow($"text, {r.TextTokens} tok", tp);
        }
        if (p is not null)
        {
            lines.Add("");
            lines.Add($"ClipImageEmbedding over files: {p.ImagesPerSecond.ToString("F2", c)} images/s ({p.Images} rows in {p.Seconds.ToString("F1", c)} s: {p.ImagesPerSecondMean.ToString("F2", c)}/s overall; " +
                      $"{p.PreprocessThreads} preprocessing threads), {(r.ImagesPerSecond > 0 ? (p.ImagesPerSecond / r.ImagesPerSecond).ToString("F3", c) : "-")} of the image tower alone");
            lines.Add($"resident memory: {p.RssStartMiB.ToString("F0", c)} MiB at start, peak {p.PeakRssMiB.ToString("F0", c)} MiB, {p.RssEndMiB.ToString("F0", c)} MiB at end");
            if (p.RssSamplesMiB.Count > 0)
                lines.Add($"  after each tenth of the rows: {string.Join(" ", p.RssSamplesMiB.Select(v => v.ToString("F0", c)))} MiB");
        }
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }
}
