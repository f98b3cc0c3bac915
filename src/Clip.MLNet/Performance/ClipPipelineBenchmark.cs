using System.Diagnostics;
using Clip.MLNet.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

using Clip.MLNet.Performance;

namespace Clip.MLNet;

/// <summary>What <see cref="ClipPipelineBenchmark.Run"/> measured.</summary>
public sealed record ClipPipelineBenchmarkResult
{
    /// <summary>
    /// Rows embedded per second in the steady state: batch size ÷ the median time between the ends of
    /// consecutive batches as the reader sees them (decoding, preprocessing and the forward pass included).
    /// </summary>
    public double ImagesPerSecond { get; init; }
    /// <summary>Rows per second over the whole run, from the first row requested to the last row read.</summary>
    public double ImagesPerSecondMean { get; init; }
    /// <summary>Rows embedded.</summary>
    public int Images { get; init; }
    /// <summary>Wall-clock seconds of the run.</summary>
    public double Seconds { get; init; }
    /// <summary>Rows per forward pass.</summary>
    public int Batch { get; init; }
    /// <summary>Threads decoding and preprocessing beside the forward pass.</summary>
    public int PreprocessThreads { get; init; }
    /// <summary>Resident memory of the process when the run started, MiB.</summary>
    public double RssStartMiB { get; init; }
    /// <summary>Peak resident memory of the process during the run, MiB (Linux; 0 where unknown).</summary>
    public double PeakRssMiB { get; init; }
    /// <summary>Resident memory when the run ended, MiB.</summary>
    public double RssEndMiB { get; init; }
    /// <summary>Resident memory after each tenth of the rows, MiB: flat once the buffers are in use.</summary>
    public IReadOnlyList<double> RssSamplesMiB { get; init; } = Array.Empty<double>();
}

/// <summary>
/// Throughput of <c>ClipImageEmbedding</c> over image files, as an ML.NET user runs it: a text column of
/// paths, the transform's batching cursor (decoding and preprocessing on worker threads, overlapped
/// with the forward pass), each row's embedding read through a getter. Used by <c>clip bench --images</c>.
/// </summary>
public static class ClipPipelineBenchmark
{
    private sealed class PathRow
    {
        public string Path { get; set; } = "";
    }

    /// <summary>
    /// Embeds <paramref name="count"/> rows whose paths cycle through <paramref name="files"/>, after one
    /// untimed warm-up batch, and reports rows per second and the process's resident memory.
    /// </summary>
    public static ClipPipelineBenchmarkResult Run(ClipModel model, IReadOnlyList<string> files, int count,
        int batchSize = 32, int preprocessThreads = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(files);
        if (files.Count == 0) throw new ArgumentException("No image files given.", nameof(files));
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), "The row count must be positive.");
        var ml = new MLContext(seed: 0);
        var options = new ClipImageEmbeddingEstimator.Options
        {
            InputColumnName = nameof(PathRow.Path),
            BatchSize = batchSize,
            PreprocessThreads = preprocessThreads,
        };
        IDataView Rows(int n) => ml.Data.LoadFromEnumerable(Enumerable.Range(0, n).Select(i => new PathRow { Path = files[i % files.Count] }));

        using var transformer = ml.Transforms.ClipImageEmbedding(model, options).Fit(Rows(1));
        Drain(transformer.Transform(Rows(Math.Min(count, batchSize))), batchSize, null, null);   // warm-up: kernels, decoder, buffers

        GC.Collect();
        ProcessMemory.ResetPeak();
        double rssStart = ProcessMemory.ResidentMiB();
        var sw = Stopwatch.StartNew();
        var marks = new List<double>();
        var samples = new List<double>();
        int rows = Drain(transformer.Transform(Rows(count)), batchSize, sw, marks, n =>
        {
            if (n % Math.Max(1, count / 10) == 0) samples.Add(ProcessMemory.ResidentMiB());
        });
        double seconds = sw.Elapsed.TotalSeconds;
        double rssEnd = ProcessMemory.ResidentMiB();
        // The kernel updates VmHWM lazily (not on every page fault), so a reading can lag an RSS seen earlier: the
        // peak is at least every resident size observed.
        double peak = Math.Max(ProcessMemory.PeakResidentMiB(), samples.Append(rssStart).Append(rssEnd).Max());
        // Intervals between batch ends; the first batch (nothing to overlap with yet) is left out when there are others.
        var intervals = marks.Zip(marks.Skip(1), (a, b) => b - a).ToList();
        return new ClipPipelineBenchmarkResult
        {
            ImagesPerSecond = intervals.Count == 0 ? rows / seconds : batchSize / ClipBenchmark.Median(intervals),
            ImagesPerSecondMean = rows / seconds,
            Images = rows,
            Seconds = seconds,
            Batch = batchSize,
            PreprocessThreads = preprocessThreads,
            RssStartMiB = rssStart,
            PeakRssMiB = peak,
            RssEndMiB = rssEnd,
            RssSamplesMiB = samples,
        };
    }

    private static int Drain(IDataView view, int batchSize, Stopwatch? clock, List<double>? batchEnds, Action<int>? afterRow = null)
    {
        var column = view.Schema["Features"];
        using var cursor = view.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var value = default(VBuffer<float>);
        int n = 0;
        while (cursor.MoveNext())
        {
            getter(ref value);
            n++;
            if (clock is not null && n % batchSize == 0) batchEnds!.Add(clock.Elapsed.TotalSeconds);
            afterRow?.Invoke(n);
        }
        return n;
    }
}
