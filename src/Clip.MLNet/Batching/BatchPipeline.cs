using System.Collections.Concurrent;

namespace Clip.MLNet.Batching;

/// <summary>
/// One batch of a <see cref="BatchPipeline{TBatch}"/>: a reused buffer of <see cref="Capacity"/> slots that the
/// pipeline fills with items read in order and prepares slot by slot. Derived classes add the buffers
/// (pixels, tokens, cached column values).
/// </summary>
internal abstract class PipelineBatch
{
    protected PipelineBatch(int capacity)
    {
        Capacity = capacity;
        Errors = new Exception?[capacity];
        Valid = new bool[capacity];
    }

    /// <summary>Slots in the batch.</summary>
    public int Capacity { get; }

    /// <summary>Items read into the batch (the first <see cref="Count"/> slots).</summary>
    public int Count { get; set; }

    /// <summary>The index of slot 0 in the stream of items.</summary>
    public long FirstItem { get; internal set; }

    /// <summary>Per slot: why the item could not be read or prepared (null: it could).</summary>
    public Exception?[] Errors { get; }

    /// <summary>Per slot: whether the item was prepared.</summary>
    public bool[] Valid { get; }

    /// <summary>The source failed after <see cref="Count"/> items: the stream ends with this batch and this error.</summary>
    public Exception? Terminal { get; internal set; }

    /// <summary>Whether the stream ends with this batch.</summary>
    public bool IsLast => Terminal is not null || Count < Capacity;

    /// <summary>The first slot with an error, or -1.</summary>
    public int FirstError => Array.FindIndex(Errors, 0, Count, e => e is not null);
}

/// <summary>How a <see cref="BatchPipeline{TBatch}"/> runs.</summary>
/// <param name="Prefetch">Batches prepared ahead of the one being consumed, on a producer thread; 0 prepares in the consumer's thread.</param>
/// <param name="Threads">Threads preparing the slots of one batch.</param>
/// <param name="StopAtFirstError">Stop reading after the first batch with a bad item (the consumer will fail on it anyway).</param>
internal readonly record struct BatchPipelineOptions(int Prefetch = 1, int Threads = 1, bool StopAtFirstError = false);

/// <summary>
/// The batching engine of the library: items are read in order into batches (<c>fill</c>, sequential: sources such as
/// ML.NET cursors are not thread-safe), each batch's items are prepared in parallel (<c>prepare</c>: decode, preprocess,
/// tokenize), batches are prepared up to <see cref="BatchPipelineOptions.Prefetch"/> ahead of the consumer on a
/// producer thread, and handed over in order from a small pool of reused buffers. A bad item is recorded in its slot
/// (<see cref="PipelineBatch.Errors"/>); what it means (an error, or a skipped row) is the consumer's policy
/// (<c>BadRowHandling</c>). Used by the ML.NET cursors, the <c>clip</c> tool's file batches, training and indexing.
/// </summary>
internal sealed class BatchPipeline<TBatch> : IDisposable where TBatch : PipelineBatch
{
    private readonly Action<TBatch> fill;
    private readonly Action<TBatch, int>? prepare;
    private readonly Func<TBatch, int, Exception, Exception> describe;
    private readonly BatchPipelineOptions options;
    private readonly List<TBatch> pool;
    private readonly BlockingCollection<TBatch> free = new();
    private readonly BlockingCollection<TBatch>? ready;
    private readonly CancellationTokenSource stop = new();
    private Thread? producer;
    private long itemsRead;
    private bool ended;
    private bool disposed;

    /// <param name="createBatch">Makes one batch of the pool (Prefetch + 2 are made).</param>
    /// <param name="fill">Reads the next items into slots 0.. of a batch and sets its Count (less than Capacity at the
    /// end of the stream); may record a slot's error in Errors; an exception it throws ends the stream after Count items.</param>
    /// <param name="prepare">Prepares one slot (called concurrently for distinct slots); an exception is that slot's error. Null: nothing to prepare.</param>
    /// <param name="describe">Turns a slot's exception into the error to record (naming the item).</param>
    /// <param name="options">Read-ahead, threads, early stop.</param>
    public BatchPipeline(Func<TBatch> createBatch, Action<TBatch> fill, Action<TBatch, int>? prepare,
        Func<TBatch, int, Exception, Exception> describe, BatchPipelineOptions options)
    {
        this.fill = fill;
        this.prepare = prepare;
        this.describe = describe;
        this.options = options with { Prefetch = Math.Max(0, options.Prefetch), Threads = Math.Max(1, options.Threads) };
        pool = Enumerable.Range(0, this.options.Prefetch + 2).Select(_ => createBatch()).ToList();
        foreach (var b in pool) free.Add(b);
        if (this.options.Prefetch > 0) ready = new BlockingCollection<TBatch>(this.options.Prefetch);
    }

    /// <summary>The batches of the pool (for getters that need any batch's layout).</summary>
    public IReadOnlyList<TBatch> Pool => pool;

    /// <summary>The next batch in order, or null after the last one. Give it back with <see cref="Release"/> before asking for more than the pool holds.</summary>
    public TBatch? Next()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (ready is null)
        {
            if (ended) return null;
            var b = free.Take();
            Produce(b);
            ended = b.IsLast || (options.StopAtFirstError && b.FirstError >= 0);
            if (b.Count == 0 && b.Terminal is null)
            {
                free.Add(b);
                return null;
            }
            return b;
        }
        if (producer is null)
        {
            producer = new Thread(ProduceAll) { IsBackground = true, Name = "Clip.MLNet batch producer" };
            producer.Start();
        }
        try
        {
            return ready.TryTake(out var batch, Timeout.Infinite, stop.Token) ? batch : null;
        }
        catch (InvalidOperationException) when (ready.IsCompleted)
        {
            return null;
        }
    }

    /// <summary>Returns a consumed batch to the pool.</summary>
    public void Release(TBatch batch)
    {
        if (!stop.IsCancellationRequested) free.Add(batch);
    }

    private void ProduceAll()
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var b = free.Take(stop.Token);
                Produce(b);
                if (b.Count == 0 && b.Terminal is null)
                {
                    free.Add(b);
                    break;
                }
                ready!.Add(b, stop.Token);
                if (b.IsLast || (options.StopAtFirstError && b.FirstError >= 0)) break;
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            ready!.CompleteAdding();
        }
    }

    private void Produce(TBatch b)
    {
        b.Count = 0;
        b.Terminal = null;
        b.FirstItem = itemsRead;
        Array.Clear(b.Errors);
        Array.Clear(b.Valid);
        try
        {
            fill(b);
        }
        catch (Exception e)
        {
            b.Terminal = e;
        }
        itemsRead += b.Count;
        if (b.Count == 0 || prepare is null) return;
        void PrepareSlot(int s)
        {
            if (b.Errors[s] is not null) return;
            try
            {
                prepare(b, s);
                b.Valid[s] = true;
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
            {
                b.Errors[s] = describe(b, s, e);
            }
        }
        if (options.Threads == 1 || b.Count == 1)
        {
            for (int s = 0; s < b.Count; s++)
            {
                PrepareSlot(s);
                if (options.StopAtFirstError && b.Errors[s] is not null) break;
            }
        }
        else
        {
            Parallel.For(0, b.Count, new ParallelOptions { MaxDegreeOfParallelism = options.Threads }, PrepareSlot);
        }
    }

    /// <summary>Stops the producer and waits for it; the batches' buffers are the caller's to free (see <see cref="Pool"/>).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        stop.Cancel();
        if (producer is { IsAlive: true }) producer.Join();
        stop.Dispose();
        ready?.Dispose();
        free.Dispose();
    }
}
