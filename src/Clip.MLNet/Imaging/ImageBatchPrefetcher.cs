using System.Runtime.InteropServices;
using Clip.MLNet.Batching;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Imaging;

/// <summary>
/// Image files decoded and preprocessed batch by batch on the batching engine (<see cref="BatchPipeline{TBatch}"/>),
/// at most <c>prefetch</c> batches ahead of the reader, into a small pool of reused pixel buffers: the next batch is
/// prepared while the current one runs through the model. Batches come in order; an image that cannot be read stops
/// the reading, and the error surfaces when the reader reaches its batch.
/// </summary>
internal sealed class ImageBatchPrefetcher : IDisposable
{
    private sealed class PixelBatch(int capacity, int size) : PipelineBatch(capacity)
    {
        public readonly Tensor Pixels = torch.empty(new long[] { capacity, 3, size, size }, ScalarType.Float32).DetachFromDisposeScope();
    }

    private readonly IReadOnlyList<string> paths;
    private readonly BatchPipeline<PixelBatch> pipeline;
    private int next;
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
        this.paths = paths;
        int capacity = Math.Min(batchSize, Math.Max(1, paths.Count));
        int per = preprocessor.OutputLength;
        pipeline = new BatchPipeline<PixelBatch>(
            () => new PixelBatch(capacity, preprocessor.Size),
            b =>
            {
                // The producer's thread alone reads `next`: batches are filled in order.
                b.Count = Math.Min(b.Capacity, paths.Count - next);
                next += b.Count;
            },
            (b, s) => preprocessor.PreprocessInto(
                paths[(int)b.FirstItem + s] ?? throw new ArgumentNullException(nameof(paths), $"image {b.FirstItem + s} is null"),
                MemoryMarshal.Cast<byte, float>(b.Pixels.bytes).Slice(s * per, per)),
            (b, s, e) =>
            {
                int index = (int)b.FirstItem + s;
                return e is ClipImageException image
                    ? new ClipImageException(index, image.Input, image.Problem, e)
                    : new ClipImageException(index, paths[index] ?? "<null>", e.Message, e);
            },
            new BatchPipelineOptions(prefetch, threads, StopAtFirstError: true));
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
        while (pipeline.Next() is { } batch)
        {
            try
            {
                if (batch.FirstError is var bad and >= 0) throw batch.Errors[bad]!;
                using var view = batch.Pixels.narrow(0, 0, batch.Count);
                yield return ((int)batch.FirstItem, view);
            }
            finally
            {
                pipeline.Release(batch);
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
