using System.Runtime.InteropServices;
using Clip.MLNet.Batching;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Imaging;

/// <summary>
/// Images decoded and preprocessed batch by batch on the batching engine (<see cref="BatchPipeline{TBatch}"/>), at
/// most <c>prefetch</c> batches ahead of the reader, into a small pool of reused pixel buffers: the next batch is
/// prepared while the current one runs through the model. Batches come in order; an image that cannot be read stops
/// the reading, and the error surfaces when the reader reaches its batch, unless the prefetcher skips failures
/// (<see cref="SkippedBatches"/>): then the images that can be read are packed at the front of their batch and the
/// others are reported beside it.
/// </summary>
internal sealed class ImageBatchPrefetcher : IDisposable
{
    private sealed class PixelBatch(int capacity, int size) : PipelineBatch(capacity)
    {
        public readonly Tensor Pixels = torch.empty(new long[] { capacity, 3, size, size }, ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>One batch of <see cref="SkippedBatches"/>.</summary>
    /// <param name="Start">The index of the batch's first item.</param>
    /// <param name="Rows">The indices of the items whose pixels the batch holds, in order (the unreadable ones left out).</param>
    /// <param name="Pixels"><c>[Rows.Count, 3, S, S]</c>; valid until the next batch is requested; do not dispose.</param>
    /// <param name="Failures">The items of the batch that could not be read, in order (<see cref="ClipImageException.Index"/> set).</param>
    public readonly record struct Batch(int Start, IReadOnlyList<int> Rows, Tensor Pixels, IReadOnlyList<ClipImageException> Failures);

    private readonly BatchPipeline<PixelBatch> pipeline;
    private readonly bool skipFailures;
    private readonly int per;
    private int next;
    private bool started;
    private bool disposed;

    /// <param name="preprocessor">The preprocessing (its <see cref="ClipImagePreprocessor.Size"/> sets the buffers' size).</param>
    /// <param name="paths">The image files, in output order.</param>
    /// <param name="batchSize">Images per batch.</param>
    /// <param name="prefetch">Batches prepared ahead of the one being read (at least 1).</param>
    /// <param name="threads">Threads preprocessing the images of one batch (1: the producer thread alone).</param>
    public ImageBatchPrefetcher(ClipImagePreprocessor preprocessor, IReadOnlyList<string> paths, int batchSize, int prefetch = 1, int threads = 1)
        : this(preprocessor, (paths ?? throw new ArgumentNullException(nameof(paths))).Count, i => paths[i] ?? "<null>",
            (i, data) => preprocessor.PreprocessInto(paths[i] ?? throw new ArgumentNullException(nameof(paths), $"image {i} is null"), data),
            batchSize, prefetch, threads, skipFailures: false)
    {
    }

    /// <summary>A prefetcher over <paramref name="count"/> items that <paramref name="fillOne"/> preprocesses (from a file, bytes, a stream).</summary>
    /// <param name="preprocessor">The preprocessing (its <see cref="ClipImagePreprocessor.Size"/> sets the buffers' size).</param>
    /// <param name="count">The number of items.</param>
    /// <param name="describe">What to call item i in errors.</param>
    /// <param name="fillOne">Preprocesses item i into the span (called from the prefetch threads, concurrently when <paramref name="threads"/> &gt; 1).</param>
    /// <param name="batchSize">Items per batch.</param>
    /// <param name="prefetch">Batches prepared ahead of the one being read (at least 1).</param>
    /// <param name="threads">Threads preprocessing the images of one batch.</param>
    /// <param name="skipFailures">Leave unreadable items out of their batch and report them (<see cref="SkippedBatches"/>) instead of stopping.</param>
    public ImageBatchPrefetcher(ClipImagePreprocessor preprocessor, int count, Func<int, string> describe, Action<int, Span<float>> fillOne,
        int batchSize, int prefetch = 1, int threads = 1, bool skipFailures = false)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(describe);
        ArgumentNullException.ThrowIfNull(fillOne);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(prefetch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        this.skipFailures = skipFailures;
        int capacity = Math.Min(batchSize, Math.Max(1, count));
        per = preprocessor.OutputLength;
        pipeline = new BatchPipeline<PixelBatch>(
            () => new PixelBatch(capacity, preprocessor.Size),
            b =>
            {
                // The producer's thread alone reads `next`: batches are filled in order.
                b.Count = Math.Min(b.Capacity, count - next);
                next += b.Count;
            },
            (b, s) => fillOne((int)b.FirstItem + s, MemoryMarshal.Cast<byte, float>(b.Pixels.bytes).Slice(s * per, per)),
            (b, s, e) =>
            {
                int index = (int)b.FirstItem + s;
                return e is ClipImageException image
                    ? new ClipImageException(index, image.Input, image.Problem, e)
                    : new ClipImageException(index, describe(index), e.Message, e);
            },
            new BatchPipelineOptions(prefetch, threads, StopAtFirstError: !skipFailures));
    }

    /// <summary>
    /// The batches in order: the index of each batch's first image, and its pixels <c>[n, 3, S, S]</c>
    /// (float32, CPU). The pixels are valid until the next batch is requested; do not dispose them.
    /// </summary>
    /// <exception cref="ClipImageException">An image cannot be preprocessed; <see cref="ClipImageException.Index"/> is its index in <c>paths</c>.</exception>
    public IEnumerable<(int Start, Tensor Pixels)> Batches()
    {
        if (skipFailures) throw new InvalidOperationException("This prefetcher skips failures: read SkippedBatches.");
        foreach (var batch in Read())
            yield return (batch.Start, batch.Pixels);
    }

    /// <summary>
    /// The batches in order, for a prefetcher that skips failures: each holds the items that could be read, packed at
    /// the front of its pixels, and lists the ones that could not. A batch may hold no rows.
    /// </summary>
    public IEnumerable<Batch> SkippedBatches()
    {
        if (!skipFailures) throw new InvalidOperationException("This prefetcher stops at the first failure: read Batches.");
        return Read();
    }

    private IEnumerable<Batch> Read()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (started) throw new InvalidOperationException("The batches can be read once.");
        started = true;
        while (pipeline.Next() is { } b)
        {
            try
            {
                if (!skipFailures && b.FirstError is var bad and >= 0) throw b.Errors[bad]!;
                var rows = new List<int>(b.Count);
                var failures = new List<ClipImageException>();
                var pixels = MemoryMarshal.Cast<byte, float>(b.Pixels.bytes);
                for (int s = 0; s < b.Count; s++)
                {
                    if (b.Errors[s] is ClipImageException failure)
                    {
                        failures.Add(failure);
                        continue;
                    }
                    // Pack the readable images at the front (only moves anything after a failure).
                    if (rows.Count != s) pixels.Slice(s * per, per).CopyTo(pixels.Slice(rows.Count * per, per));
                    rows.Add((int)b.FirstItem + s);
                }
                using var view = b.Pixels.narrow(0, 0, rows.Count);
                yield return new Batch((int)b.FirstItem, rows, view, failures);
            }
            finally
            {
                pipeline.Release(b);
            }
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        pipeline.Dispose();
        foreach (var batch in pipeline.Pool) batch.Pixels.Dispose();
    }
}
