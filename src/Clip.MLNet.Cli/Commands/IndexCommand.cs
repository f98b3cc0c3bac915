using System.CommandLine;
using System.Globalization;
using Clip.MLNet.Indexing;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>clip index</c>: embeds a whole collection into clip-retrieval's layout, in deterministic, resumable partitions
/// that any scheduler can run one at a time (see <see cref="ClipIndexer"/>).
/// </summary>
internal static class IndexCommand
{
    public static Command Create()
    {
        var run = new ModelRunOptions();
        var images = new Option<string[]>("--images") { Description = "Image files and folders (walked recursively; files sorted by ordinal path).", AllowMultipleArgumentsPerToken = true };
        var manifest = new Option<string?>("--manifest") { Description = "A .csv, .tsv or .parquet manifest with an image_path column (relative to the manifest's folder) and an optional caption column." };
        var webdataset = new Option<string?>("--webdataset") { Description = "WebDataset tar shards, with brace ranges: shards/{0000..0099}.tar (KEY.jpg/.png/.webp with an optional KEY.txt caption)." };
        var pathColumn = new Option<string>("--path-column") { Description = "The manifest's column of image paths.", DefaultValueFactory = _ => "image_path" };
        var captionColumn = new Option<string?>("--caption-column") { Description = "The manifest's column of captions (default: caption, when there is one)." };
        var output = new Option<string>("--output") { Description = "The index folder.", Required = true };
        var partitions = new Option<int?>("--partitions") { Description = "N: cut the ordered items into N contiguous partitions (default 1)." };
        var partition = new Option<int[]>("--partition") { Description = "Run only these partitions (0 to N-1; requires --partitions).", AllowMultipleArgumentsPerToken = true };
        var fromEnv = new Option<bool>("--partition-from-env") { Description = "Run the partition of JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN (Slurm array)." };
        var strict = new Option<bool>("--strict") { Description = "Make the first unreadable item an error (default: skip it and list it in failed/failed_{i}.json)." };
        var quiet = new Option<bool>("--quiet") { Description = "No progress on stderr." };

        var command = new Command("index", "Embed a collection into clip-retrieval's layout (img_emb/, text_emb/, metadata/, index.json) in resumable partitions.")
        {
            images, manifest, webdataset, pathColumn, captionColumn, output, partitions, partition, fromEnv, strict, quiet,
        };
        run.AddTo(command);
        var cluster = new Option<string?>("--cluster") { Description = "Run the job on a cluster of `clip worker`s: redis://HOST:PORT. Waits until every partition is complete; the output folder must be on a filesystem every worker sees." };
        command.Options.Add(cluster);
        command.SetAction((parse, cancellation) => Task.FromResult(CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var images0 = parse.GetValue(images) ?? [];
            Source(images0, parse.GetValue(manifest), parse.GetValue(webdataset), parse.GetValue(pathColumn)!, parse.GetValue(captionColumn)); // checks the choice
            var batchSize = run.BatchSize(parse);
            var count = parse.GetValue(partitions);
            if (count is <= 0) throw new CliInputException($"--partitions must be positive, got {count}");
            var selected = Selected(parse.GetValue(partition) ?? [], parse.GetValue(fromEnv), count);
            int n = count ?? 1;
            foreach (var p in selected ?? [])
                if (p < 0 || p >= n)
                    throw new CliInputException(parse.GetValue(fromEnv)
                        ? $"--partition-from-env: partition {p} ({EnvironmentSource()}) is out of range for --partitions {n} (0 to {n - 1})"
                        : $"--partition {p}: out of range for --partitions {n} (0 to {n - 1})");
            var job = new IndexJob
            {
                Model = parse.GetValue(run.Model)!,
                Vocab = parse.GetValue(run.Vocab),
                Images = images0,
                Manifest = parse.GetValue(manifest),
                WebDataset = parse.GetValue(webdataset),
                PathColumn = parse.GetValue(pathColumn)!,
                CaptionColumn = parse.GetValue(captionColumn),
                Output = parse.GetValue(output)!,
                Partitions = n,
                Batch = parse.GetResult(run.Batch) is { Implicit: false } ? batchSize : null,
                Precision = parse.GetValue(run.Precision)!,
                Activation = parse.GetValue(run.Activation),
                Threads = parse.GetValue(run.Threads),
                Device = parse.GetValue(run.Device),
                PreprocessThreads = parse.GetValue(run.PreprocessThreads),
                Strict = parse.GetValue(strict),
            };
            bool showProgress = !parse.GetValue(quiet);
            if (parse.GetValue(cluster) is { } connection)
            {
                if (selected is not null) throw new CliInputException("--cluster runs every partition of the job: give no --partition or --partition-from-env");
                return ClusterSubmit.Run(connection, job.WithFullPaths(), showProgress, parse.GetValue(CommonOptions.Verbose), cancellation);
            }
            CommonOptions.ApplyThreads(job.Threads);
            if (showProgress) Console.Error.WriteLine($"listing {job.Describe()} ...");
            var (clip, indexer) = Open(job, batchSize, cancellation);
            using (clip)
            {
                var printer = showProgress ? new ProgressPrinter() : null;
                var results = indexer.Run(selected, printer, cancellation);
                printer?.Finish();
                if (showProgress)
                {
                    long rows = results.Sum(r => r.Rows), failed = results.Sum(r => r.Failed);
                    int written = results.Count(r => r.Written), skipped = results.Count - written;
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{indexer.Layout.Root}: {written} partition(s) written ({rows} images, {failed} unreadable), {skipped} already complete; {indexer.Info.Items} items in {n} partition(s)"));
                }
            }
            return ExitCodes.Ok;
        })));
        return command;
    }

    /// <summary>
    /// Loads the job's model and opens its index (creating or checking <c>index.json</c>): the local run, the cluster's
    /// submitter and its workers all open an index this one way.
    /// </summary>
    internal static (ClipModel Model, ClipIndexer Indexer) Open(IndexJob job, int batchSize, CancellationToken cancellation)
    {
        var source = Source(job.Images, job.Manifest, job.WebDataset, job.PathColumn, job.CaptionColumn);
        var clip = CommonOptions.LoadModel(job.Model, job.Precision, job.Activation, job.Vocab, job.Device);
        try
        {
            var (name, sha) = Identity(job.Model, job.Vocab);
            var tokenizer = job.Vocab is { } v ? ClipTokenizer.Load(v, clip.ContextLength) : null;
            var indexer = ClipIndexer.Open(clip, source, new ClipIndexOptions
            {
                OutputFolder = job.Output,
                ModelName = name,
                ModelSha256 = sha,
                Partitions = job.Partitions,
                BatchSize = batchSize,
                Strict = job.Strict,
                PreprocessThreads = CommonOptions.ResolvePreprocessThreads(job.PreprocessThreads, clip),
                Tokenizer = tokenizer,
            }, cancellation);
            return (clip, indexer);
        }
        catch
        {
            clip.Dispose();
            throw;
        }
    }

    private static ClipIndexSource Source(string[] images, string? manifest, string? webdataset, string pathColumn, string? captionColumn)
    {
        int given = (images.Length > 0 ? 1 : 0) + (manifest is not null ? 1 : 0) + (webdataset is not null ? 1 : 0);
        if (given != 1) throw new CliInputException("give exactly one of --images, --manifest or --webdataset");
        if (images.Length > 0) return ClipIndexSource.FromImages(images);
        if (manifest is not null) return ClipIndexSource.FromManifest(manifest, pathColumn, captionColumn);
        return ClipIndexSource.FromWebDataset(webdataset!);
    }

    /// <summary>The partitions to run: <c>--partition</c>, the scheduler's index, or null for all.</summary>
    private static int[]? Selected(int[] partitions, bool fromEnv, int? count)
    {
        if (partitions.Length > 0 && fromEnv) throw new CliInputException("give --partition or --partition-from-env, not both");
        if ((partitions.Length > 0 || fromEnv) && count is null)
            throw new CliInputException($"{(fromEnv ? "--partition-from-env" : "--partition")} requires --partitions N (the partition count every job of the index uses)");
        if (partitions.Length > 0) return partitions;
        if (!fromEnv) return null;
        if (Environment.GetEnvironmentVariable("JOB_COMPLETION_INDEX") is { Length: > 0 } k8s)
            return [ParseEnv("JOB_COMPLETION_INDEX", k8s)];
        if (Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID") is { Length: > 0 } slurm)
        {
            int id = ParseEnv("SLURM_ARRAY_TASK_ID", slurm);
            int min = Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_MIN") is { Length: > 0 } m ? ParseEnv("SLURM_ARRAY_TASK_MIN", m) : 0;
            return [id - min];
        }
        throw new CliInputException("--partition-from-env: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is set");
    }

    private static string EnvironmentSource() =>
        Environment.GetEnvironmentVariable("JOB_COMPLETION_INDEX") is { Length: > 0 } k8s ? $"JOB_COMPLETION_INDEX={k8s}"
            : $"SLURM_ARRAY_TASK_ID={Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")} minus SLURM_ARRAY_TASK_MIN={Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_MIN") ?? "0"}";

    private static int ParseEnv(string name, string value) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) ? v
            : throw new CliInputException($"--partition-from-env: {name}='{value}' is not an integer");

    /// <summary>The model's name for index.json (a full path, or the registered name) and the SHA-256 of its weights.</summary>
    internal static (string Name, string Sha256) Identity(string model, string? vocab)
    {
        if (Pretrained.IsPath(model)) return (Path.GetFullPath(model), ClipIndexer.ModelSha256(model));
        // A registered name: the model is loaded first (downloaded with progress if needed), so its files are in the cache.
        var files = ClipPretrained.Download(model, new ClipPretrainedOptions { VocabularyPath = vocab });
        return (model, ClipIndexer.ModelSha256(files.ModelPath));
    }

    /// <summary>Progress on stderr: images/s and time left, rewritten in place on a terminal, a line every 10 s otherwise.</summary>
    private sealed class ProgressPrinter : IProgress<ClipIndexProgress>
    {
        private readonly bool terminal = !Console.IsErrorRedirected;
        private readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
        private TimeSpan? last;
        private ClipIndexProgress? latest;
        private bool pending;

        public void Report(ClipIndexProgress value)
        {
            latest = value;
            pending = true;
            var interval = terminal ? TimeSpan.FromSeconds(0.5) : TimeSpan.FromSeconds(10);
            if (last is { } l && clock.Elapsed - l < interval && value.ItemsDone < value.ItemsTotal) return;
            last = clock.Elapsed;
            Print(value);
        }

        private void Print(ClipIndexProgress p)
        {
            pending = false;
            var eta = p.Remaining is { } r ? $"{(int)r.TotalHours}:{r.Minutes:00}:{r.Seconds:00}" : "?";
            var line = string.Create(CultureInfo.InvariantCulture,
                $"partition {p.Partition}: {p.ItemsDone}/{p.ItemsTotal} images ({p.Failed} unreadable), {p.ImagesPerSecond:F1} images/s, ETA {eta}");
            if (terminal) Console.Error.Write("\r" + line.PadRight(100));
            else Console.Error.WriteLine(line);
        }

        public void Finish()
        {
            if (pending && latest is not null) Print(latest);
            if (terminal && latest is not null) Console.Error.WriteLine();
        }
    }
}
