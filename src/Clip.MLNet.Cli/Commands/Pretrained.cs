using System.Globalization;
using Clip.MLNet.Registry;
using Spectre.Console;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>--model</c> as a path or a registered name: a path that exists wins, then a registry name
/// (downloaded into the cache with a progress bar on stderr), otherwise an error naming the closest names.
/// </summary>
internal static class Pretrained
{
    public static bool IsPath(string value) => ClipModelResolver.IsPath(value);

    /// <summary>The model at a path, or the registered model of that name (ClipModelResolver decides, as in the library).</summary>
    public static ClipModel LoadModel(string pathOrName, ClipLoadOptions load, string flag = "--model")
    {
        if (IsPath(pathOrName)) return ClipModelResolver.Load(pathOrName, new ClipPretrainedOptions { Load = load });
        CheckRegistered(pathOrName, flag);
        return WithProgress(progress => ClipModelResolver.Load(pathOrName, new ClipPretrainedOptions { Load = load, Progress = progress }));
    }

    /// <summary>The tokenizer of a registered model (its vocabulary only is downloaded).</summary>
    public static ClipTokenizer LoadTokenizer(string name, int contextLength, string flag = "--model")
    {
        CheckRegistered(name, flag);
        return WithProgress(progress => ClipTokenizer.FromPretrained(name, contextLength, new ClipPretrainedOptions { Progress = progress }));
    }

    private static void CheckRegistered(string name, string flag)
    {
        var registry = ClipPretrained.ResolveRegistry();
        if (registry.Find(name) is null)
            throw new CliInputException(
                $"{flag}: {name}: no such file or folder, and not a registered model name (closest: {string.Join(", ", registry.ClosestNames(name))}; 'clip models' lists them all)");
    }

    /// <summary>
    /// Runs <paramref name="work"/> with download progress shown on stderr: a live progress bar when stderr is a
    /// terminal, one line per file otherwise (stdout stays for the command's output).
    /// </summary>
    private static T WithProgress<T>(Func<IProgress<ClipDownloadProgress>, T> work)
    {
        if (Console.IsErrorRedirected || ClipPretrained.ResolveOffline()) return work(new LineProgress());
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(context => work(new BarProgress(context)));
    }

    /// <summary>One progress task per file, created when its download starts.</summary>
    private sealed class BarProgress(ProgressContext context) : IProgress<ClipDownloadProgress>
    {
        private readonly Dictionary<Uri, ProgressTask> tasks = new();

        public void Report(ClipDownloadProgress value)
        {
            lock (tasks)
            {
                if (!tasks.TryGetValue(value.Url, out var task))
                {
                    task = context.AddTask(Markup.Escape($"{value.Model}: {value.File}"), autoStart: true, maxValue: value.TotalBytes ?? 0);
                    if (value.TotalBytes is null) task.IsIndeterminate = true;
                    tasks[value.Url] = task;
                }
                if (value.TotalBytes is long total) task.MaxValue = total;
                task.Value = value.BytesReceived;
                if (value.Completed) task.StopTask();
            }
        }
    }

    /// <summary>Without a terminal: one line when a file's download starts.</summary>
    private sealed class LineProgress : IProgress<ClipDownloadProgress>
    {
        private readonly HashSet<Uri> started = new();

        public void Report(ClipDownloadProgress value)
        {
            lock (started)
            {
                if (value.Completed || !started.Add(value.Url)) return;
            }
            var size = value.TotalBytes switch
            {
                long t when t >= 1 << 20 => $" ({(t / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture)} MiB)",
                long t => $" ({t.ToString(CultureInfo.InvariantCulture)} bytes)",
                null => "",
            };
            var resume = value.BytesReceived > 0 ? $", resuming at byte {value.BytesReceived}" : "";
            Console.Error.WriteLine($"downloading {value.Model}: {value.File} from {value.Url}{size}{resume}");
        }
    }
}
