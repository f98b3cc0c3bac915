using System.Threading.Channels;
using Clip.MLNet.Search;

namespace Clip.MLNet.Serve;

/// <summary>
/// The server's searches, one scan at a time: requests wait in a queue, and those waiting together (up to
/// <see cref="BatchSize"/>) are embedded one by one and answered by one pass over the index. The batch stays on the scan's
/// dot-product kernel, whose scores for a query do not depend on its companions, so a batched answer is bit for bit the
/// answer the query gets alone.
/// </summary>
internal sealed class SearchQueue : IDisposable
{
    /// <summary>Queries answered by one pass: the scan's dot-product kernel's limit.</summary>
    public const int BatchSize = ClipIndexSearcher.IndependentBatchSize;

    private sealed record Pending(Func<float[]> Embed, int K, TaskCompletionSource<IReadOnlyList<ClipSearchResult>> Done);

    private readonly ClipIndexSearcher searcher;
    private readonly Channel<Pending> channel = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task loop;
    private long scans, queries;

    /// <summary>Passes over the index so far.</summary>
    public long Scans => Interlocked.Read(ref scans);

    /// <summary>Queries answered by them.</summary>
    public long Queries => Interlocked.Read(ref queries);

    public SearchQueue(ClipIndexSearcher searcher)
    {
        this.searcher = searcher;
        loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Queues a search: <paramref name="embed"/> makes the query vector (its exceptions are this request's answer).</summary>
    public Task<IReadOnlyList<ClipSearchResult>> Search(Func<float[]> embed, int k)
    {
        var done = new TaskCompletionSource<IReadOnlyList<ClipSearchResult>>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!channel.Writer.TryWrite(new Pending(embed, k, done))) done.TrySetException(new ObjectDisposedException(nameof(SearchQueue), "the server is stopping"));
        return done.Task;
    }

    private async Task Loop()
    {
        var batch = new List<(Pending Item, float[] Query)>(BatchSize);
        while (await channel.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < BatchSize && channel.Reader.TryRead(out var pending))
            {
                try { batch.Add((pending, pending.Embed())); }
                catch (Exception e) { pending.Done.TrySetException(e); }
            }
            if (batch.Count == 0) continue;
            try
            {
                int k = batch.Max(b => b.Item.K);
                var results = searcher.Search(batch.Select(b => b.Query).ToArray(), k);
                Interlocked.Increment(ref scans);
                Interlocked.Add(ref queries, batch.Count);
                for (int i = 0; i < batch.Count; i++)
                    batch[i].Item.Done.TrySetResult(results[i].Count <= batch[i].Item.K ? results[i] : results[i].Take(batch[i].Item.K).ToArray());
            }
            catch (Exception e)
            {
                foreach (var b in batch) b.Item.Done.TrySetException(e);
            }
        }
    }

    /// <summary>Stops taking searches and lets the queued ones finish.</summary>
    public void Dispose()
    {
        channel.Writer.TryComplete();
        loop.Wait(TimeSpan.FromSeconds(30));
    }
}
