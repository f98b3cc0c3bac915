using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Hosting;

namespace Clip.MLNet.Cluster;

/// <summary>
/// Submits an index job to a cluster (<c>clip index --cluster</c>) and waits for it: the job is kept in Redis, so the
/// submitter may stop and be started again with the same job to wait for it.
/// </summary>
public static class ClipClusterClient
{
    /// <summary>
    /// Connects (waiting for a first worker if none is up), checks the workers' versions against
    /// <see cref="ClipClusterJob.Version"/>, submits <paramref name="job"/> and waits until every partition is complete
    /// or the job cannot finish (some partition failed); returns the final status.
    /// </summary>
    /// <param name="connection">The cluster.</param>
    /// <param name="job">The job.</param>
    /// <param name="report">Progress lines (a partition complete, a worker died, counts).</param>
    /// <param name="verbose">Orleans' own warnings on stderr.</param>
    /// <param name="cancellation">Stops waiting (the job goes on).</param>
    /// <exception cref="ClipClusterException">Redis cannot be reached, the folder holds another job, a worker runs another version.</exception>
    public static async Task<ClipClusterJobStatus> SubmitAndWaitAsync(ClipClusterConnection connection, ClipClusterJob job, Action<string> report, bool verbose = false,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(report);
        connection.CheckReachable(TimeSpan.FromSeconds(3));
        var clock = Stopwatch.StartNew();
        var lastWait = TimeSpan.MinValue;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ClusterHosting.ConfigureLogging(builder.Logging, verbose);
        builder.UseOrleansClient(client =>
        {
            ClusterHosting.ConfigureClient(client, connection);
            client.UseConnectionRetryFilter(async (e, ct) =>
            {
                // No worker has joined yet (no gateway in the membership table): wait for one.
                if (clock.Elapsed - lastWait >= TimeSpan.FromSeconds(10) || lastWait == TimeSpan.MinValue)
                {
                    lastWait = clock.Elapsed;
                    report($"waiting for a worker to join the cluster at {connection} ({e.Message.ReplaceLineEndings(" ").Trim()})");
                }
                await Task.Delay(1000, ct);
                return !ct.IsCancellationRequested;
            });
        });
        using var host = builder.Build();
        await host.StartAsync(cancellation);
        try
        {
            var grains = host.Services.GetRequiredService<IClusterClient>();
            var board = grains.GetGrain<IJobBoardGrain>(0);
            var workers = await Retry(board.Workers, report, cancellation);
            foreach (var (worker, version) in workers)
                if (version != job.Version)
                    throw new ClipClusterException($"{connection}: worker {worker} runs version {version}, this submitter is version {job.Version}: run one version of clip on every worker and submitter");
            var grain = grains.GetGrain<IIndexJobGrain>(job.Output);
            if (await Retry(() => grain.Submit(job), report, cancellation) is { } refusal) throw new ClipClusterException(refusal);
            report($"submitted {job.Output} ({job.Partitions} partitions) to {workers.Count} worker(s) at {connection}");
            return await Wait(grain, report, cancellation);
        }
        finally
        {
            try { await host.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { /* leaving anyway */ }
        }
    }

    private static async Task<ClipClusterJobStatus> Wait(IIndexJobGrain grain, Action<string> report, CancellationToken cancellation)
    {
        ClipPartitionStatus[]? previous = null;
        string? lastCounts = null;
        while (true)
        {
            var status = await Retry(grain.Status, report, cancellation);
            var now = status.Partitions.ToArray();
            for (int i = 0; i < now.Length; i++)
            {
                var before = previous?[i];
                var p = now[i];
                // Counted by the job, so a lease freed and taken again between two polls is still told.
                if (p.Lost > (before?.Lost ?? 0)) report($"partition {i}: back to pending ({p.Error})");
                if (before?.State == p.State && before.Worker == p.Worker) continue;
                switch (p.State)
                {
                    case ClipPartitionState.Leased:
                        report($"partition {i}: running on worker {p.Worker}");
                        break;
                    case ClipPartitionState.Complete:
                        report($"partition {i}: complete{(p.Written ? "" : " (found complete)")}");
                        break;
                    case ClipPartitionState.Pending when before?.State == ClipPartitionState.Leased && p.Lost == before.Lost:
                        report($"partition {i}: back to pending (its worker handed it back or failed: {p.Error ?? "stopped"})");
                        break;
                    case ClipPartitionState.Failed:
                        report($"partition {i}: failed ({p.Error})");
                        break;
                }
            }
            previous = now;
            int complete = now.Count(p => p.State == ClipPartitionState.Complete), running = now.Count(p => p.State == ClipPartitionState.Leased);
            var counts = $"{complete}/{now.Length} partitions complete, {running} running";
            if (counts != lastCounts) report(counts);
            lastCounts = counts;
            if (status.IsComplete || status.IsFailed) return status;
            await Task.Delay(500, cancellation);
        }
    }

    private static async Task<T> Retry<T>(Func<Task<T>> call, Action<string> report, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        while (true)
        {
            try { return await call(); }
            catch (Exception e) when (e is not OperationCanceledException && e is not ClipClusterException && !cancellation.IsCancellationRequested)
            {
                // A grain on a worker that just died answers again once membership has declared it dead.
                if (clock.Elapsed - lastReport >= TimeSpan.FromSeconds(10))
                {
                    lastReport = clock.Elapsed;
                    report($"the cluster did not answer ({e.Message.ReplaceLineEndings(" ").Trim()}); trying again");
                }
                await Task.Delay(1000, cancellation);
            }
        }
    }
}
