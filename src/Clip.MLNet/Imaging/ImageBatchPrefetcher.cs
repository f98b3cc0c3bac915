using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Imaging;

/// <summary>
/// Decodes and preprocesses image files batch by batch on a background thread, at most
/// <c>prefetch</c> batches ahead of the reader, into a small pool of reused pixel buffers: the next
/// batch is prepared while the current one runs through the model. Batches come in order; an image
/// that cannot be read stops the producer, and the error surfaces when the reader reaches its batch.
/// </summary>
internal sealed class ImageBatchPrefetcher : IDisposable
{
    private sealed class Slot
    {
        public required Tensor Buffer;
        public int Start;
        public int Count;
        public Exception? Error;
    }

    private readonly ClipImagePreprocessor preprocessor;
    private readonly IReadOnlyList<string> paths;
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
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(prefetch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        this.preprocessor = preprocessor;
        this.paths = paths;
        this.batchSize = batchSize;
        this.threads = threads;
        int capacity = Math.Min(batchSize, Math.Max(1, paths.Count));
        // One buffer being read, `prefetch` waiting, one being filled.
        int buffers = Math.Min(prefetch + 2, (paths.Count + batchSize - 1) / batchSize + 1);
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
        ObjectDisposedException.ThrowIf(disposed, this);
        if (started) throw new InvalidOperationException("The batches can be read once.");
        started = true;
        producer.Start();
        for (int start = 0; start < paths.Count; start += batchSize)
        {
            var slot = ready.Take(stop.Token);
            try
            {
                if (slot.Error is { } error) throw error;
                using var view = slot.Buffer.narrow(0, 0, slot.Count);
                yield return (slot.Start, view);
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
            for (int start = 0; start < paths.Count; start += batchSize)
            {
                var slot = free.Take(stop.Token);
                slot.Start = start;
                slot.Count = Math.Min(batchSize, paths.Count - start);
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
                preprocessor.PreprocessInto(paths[slot.Start + i] ?? throw new ArgumentNullException(nameof(paths), $"image {slot.Start + i} is null"), data);
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
                if (failures[i] is not null) break;
            }
        }
        else
        {
            Parallel.For(0, slot.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, One);
        }
        for (int i = 0; i < slot.Count; i++)
        {
            if (failures[i] is not { } e) continue;
            int index = slot.Start + i;
            return e is ClipImageException image
                ? new ClipImageException(index, image.Input, image.Problem, e)
                : new ClipImageException(index, paths[index] ?? "<null>", e.Message, e);
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
