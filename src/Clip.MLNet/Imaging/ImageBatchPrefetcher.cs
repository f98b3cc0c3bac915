using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Imaging;

/// <summary>
/// Decodes and preprocesses image files batch by batch on a background thread, at most
/// <c>prefetch</c> batches ahead of the reader, into a small pool of reused pixel buffers: the next
/// batch is prepared while the current one runs through the model. Batches come in order; an image
/// that cannot be read stops the producer, and the error surfaces when the reader reaches its batch,
/// unless the prefetcher skips failures (<see cref="SkippedBatches"/>): then the images that can be read
/// are packed at the front of their batch and the others are reported beside it.
/// </summary>
internal sealed class ImageBatchPrefetcher : IDisposable
{
    private sealed class Slot
    {
        public required Tensor Buffer;
        public int Start;
        public int Count;
        public Exception? Error;
        public readonly List<int> Rows = new();
        public readonly List<ClipImageException> Failures = new();
    }

    /// <summary>One batch of <see cref="SkippedBatches"/>.</summary>
    /// <param name="Start">The index of the batch's first item.</param>
    /// <param name="Rows">The indices of the items whose pixels the batch holds, in order (the unreadable ones left out).</param>
    /// <param name="Pixels"><c>[Rows.Count, 3, S, S]</c>; valid until the next batch is requested; do not dispose.</param>
    /// <param name="Failures">The items of the batch that could not be read, in order (<see cref="ClipImageException.Index"/> set).</param>
    public readonly record struct Batch(int Start, IReadOnlyList<int> Rows, Tensor Pixels, IReadOnlyList<ClipImageException> Failures);

    private readonly ClipImagePreprocessor preprocessor;
    private readonly int count;
    private readonly Func<int, string> describe;
    private readonly Action<int, Span<float>> fillOne;
    private readonly bool skipFailures;
    private readonly int batchSize;
    private readonly int threads;
    private readonly List<Slot> slots = new();
    private readonly BlockingCollection<Slot> free = new();
    private readonly BlockingCollection<Slot> ready;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread producer;
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
        this.preprocessor = preprocessor;
        this.count = count;
        this.describe = describe;
        this.fillOne = fillOne;
        this.skipFailures = skipFailures;
        this.batchSize = batchSize;
        this.threads = threads;
        int capacity = Math.Min(batchSize, Math.Max(1, count));
        // One buffer being read, `prefetch` waiting, one being filled.
        int buffers = Math.Min(prefetch + 2, (count + batchSize - 1) / batchSize + 1);
        for (int i = 0; i < buffers; i++)
        {
            var slot = new Slot { Buffer = torch.empty(new long[] { capacity, 3, preprocessor.Size, preprocessor.Size }, ScalarType.Float32).DetachFromDisposeScope() };
            slots.Add(slot);
            free.Add(slot);
        }
        ready = new BlockingCollection<Slot>(prefetch);
        producer = new Thread(Produce) { IsBackground = true, Name = "Clip.MLNet image prefetch" };
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
        producer.Start();
        for (int start = 0; start < count; start += batchSize)
        {
            var slot = ready.Take(stop.Token);
            try
            {
                if (slot.Error is { } error) throw error;
                using var view = slot.Buffer.narrow(0, 0, slot.Rows.Count);
                yield return new Batch(slot.Start, slot.Rows, view, slot.Failures);
            }
            finally
            {
                if (!stop.IsCancellationRequested) free.Add(slot);
            }
        }
    }

    private void Produce()
    {
        try
        {
            for (int start = 0; start < count; start += batchSize)
            {
                var slot = free.Take(stop.Token);
                slot.Start = start;
                slot.Count = Math.Min(batchSize, count - start);
                slot.Error = Fill(slot);
                ready.Add(slot, stop.Token);
                if (slot.Error is not null) return;
            }
        }
        catch (OperationCanceledException) { }
    }

    private Exception? Fill(Slot slot)
    {
        int per = preprocessor.OutputLength;
        var failures = new Exception?[slot.Count];
        void One(int i)
        {
            try
            {
                var data = MemoryMarshal.Cast<byte, float>(slot.Buffer.bytes).Slice(i * per, per);
                fillOne(slot.Start + i, data);
            }
            catch (Exception e)
            {
                failures[i] = e;
            }
        }
        if (threads == 1 || slot.Count == 1)
        {
            for (int i = 0; i < slot.Count; i++)
            {
                One(i);
                if (failures[i] is not null && !skipFailures) break;
            }
        }
        else
        {
            Parallel.For(0, slot.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, One);
        }
        slot.Rows.Clear();
        slot.Failures.Clear();
        var pixels = MemoryMarshal.Cast<byte, float>(slot.Buffer.bytes);
        for (int i = 0; i < slot.Count; i++)
        {
            int index = slot.Start + i;
            if (failures[i] is not { } e)
            {
                // Pack the readable images at the front (only moves anything after a failure).
                int row = slot.Rows.Count;
                if (row != i) pixels.Slice(i * per, per).CopyTo(pixels.Slice(row * per, per));
                slot.Rows.Add(index);
                continue;
            }
            var failure = e is ClipImageException image
                ? new ClipImageException(index, image.Input, image.Problem, e)
                : new ClipImageException(index, describe(index), e.Message, e);
            if (!skipFailures) return failure;
            slot.Failures.Add(failure);
        }
        return null;
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        stop.Cancel();
        if (producer.IsAlive) producer.Join();
        foreach (var slot in slots) slot.Buffer.Dispose();
        stop.Dispose();
        ready.Dispose();
        free.Dispose();
    }
}
