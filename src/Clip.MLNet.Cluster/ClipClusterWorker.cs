using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;

namespace Clip.MLNet.Cluster;

/// <summary>Runs one partition of a job on this worker (the clip tool opens the index from the job's payload).</summary>
public interface IClipPartitionRunner
{
    /// <summary>
    /// Runs <paramref name="partition"/> of <paramref name="job"/>; true when this worker wrote it, false when its
    /// <c>img_emb</c> file was there already (this worker's copy dropped). Throws when the partition cannot be run.
    /// </summary>
    bool Run(ClipClusterJob job, int partition, CancellationToken cancellation);
}

/// <summary>How a <see cref="ClipClusterWorker"/> joins its cluster.</summary>
public sealed class ClipClusterWorkerOptions
{
    /// <summary>This worker's version; a worker of another version already in the cluster makes this one refuse to join.</summary>
    public required string Version { get; init; }

    /// <summary>Orleans' membership probe timeout (default 5 s, Orleans' own): a worker missing 3 probes is declared dead.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The address other workers and submitters reach this one at (default: this machine's address towards Redis).</summary>
    public IPAddress? AdvertisedAddress { get; init; }

    /// <summary>The port workers talk to each other on (default: a free one).</summary>
    public int? SiloPort { get; init; }

    /// <summary>The port submitters connect to (default: a free one).</summary>
    public int? GatewayPort { get; init; }

    /// <summary>Orleans' own warnings on stderr.</summary>
    public bool Verbose { get; init; }

    /// <summary>Where the worker says what it does (a line per event); stdout when null.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// A worker of an indexing cluster: an Orleans silo that joins the cluster in Redis, leases pending partitions of the
/// jobs on the board one at a time and runs them. A worker that dies has its leases freed once Orleans' membership
/// declares it dead, and the partitions run elsewhere; the non-replacing rename of a partition's <c>img_emb</c> file
/// keeps any partition from being written twice.
/// </summary>
public static class ClipClusterWorker
{
    /// <summary>Runs until <paramref name="cancellation"/> (then hands its lease back and leaves the cluster).</summary>
    /// <exception cref="ClipClusterException">Redis cannot be reached, or a worker of another version is in the cluster.</exception>
    public static async Task RunAsync(ClipClusterConnection connection, ClipClusterWorkerOptions options, IClipPartitionRunner runner, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(runner);
        connection.CheckReachable(TimeSpan.FromSeconds(3));
        var outcome = new WorkerOutcome();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ClusterHosting.ConfigureLogging(builder.Logging, options.Verbose);
        builder.UseOrleans(silo => ClusterHosting.ConfigureSilo(silo, connection, options));
        builder.Services.AddSingleton(outcome);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(connection);
        builder.Services.AddSingleton(runner);
        builder.Services.AddHostedService<WorkerLoop>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        using var host = builder.Build();
        try
        {
            await host.StartAsync(cancellation);
            // Until Ctrl+C or a refusal (not WaitForShutdownAsync: its stop is unbounded).
            var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
            var stopping = new TaskCompletionSource();
            using (cancellation.Register(() => stopping.TrySetResult()))
            using (lifetime.ApplicationStopping.Register(() => stopping.TrySetResult()))
                await stopping.Task;
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or StackExchange.Redis.RedisException)
        {
            throw new ClipClusterException($"{connection}: this worker could not join the cluster ({e.Message})", e);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // Stopped while joining: leave as below.
        }
        finally
        {
            // Leaving tells the membership table in Redis; with Redis gone that would wait for ever, so it is bounded
            // (membership then declares this worker dead, as if it had been killed).
            try { await host.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)); }
            catch (Exception e) when (e is TimeoutException or OrleansException or StackExchange.Redis.RedisException)
            {
                (options.Log ?? Console.WriteLine)($"left the cluster without telling it ({e.Message.ReplaceLineEndings(" ").Trim()})");
            }
        }
        if (outcome.Refusal is { } refusal) throw new ClipClusterException(refusal);
    }

    internal sealed class WorkerOutcome
    {
        public string? Refusal;
    }

    private sealed class WorkerLoop(IGrainFactory grains, ILocalSiloDetails local, ClipClusterWorkerOptions options, ClipClusterConnection connection,
        IClipPartitionRunner runner, WorkerOutcome outcome, IHostApplicationLifetime lifetime) : BackgroundService
    {
        private void Log(string line) => (options.Log ?? Console.WriteLine)(line);

        protected override async Task ExecuteAsync(CancellationToken stopping)
        {
            var silo = local.SiloAddress;
            var board = grains.GetGrain<IJobBoardGrain>(0);
            var refusal = await Retry(() => board.Join(silo, options.Version), stopping);
            if (refusal is not null)
            {
                outcome.Refusal = refusal;
                lifetime.StopApplication();
                return;
            }
            Log($"worker {silo.Endpoint} (version {options.Version}) joined the cluster at {connection}");
            while (!stopping.IsCancellationRequested)
            {
                PartitionLease? lease = null;
                try
                {
                    foreach (var output in await board.Active())
                        if ((lease = await grains.GetGrain<IIndexJobGrain>(output).Lease(silo)) is not null) break;
                }
                catch (Exception e) when (!stopping.IsCancellationRequested && e is not OperationCanceledException)
                {
                    if (options.Verbose) Log($"the board did not answer ({e.Message}); trying again");
                }
                if (lease is null)
                {
                    try { await Task.Delay(500, stopping); } catch (OperationCanceledException) { }
                    continue;
                }
                await RunLease(silo, lease, stopping);
            }
        }

        private async Task RunLease(SiloAddress silo, PartitionLease lease, CancellationToken stopping)
        {
            var job = grains.GetGrain<IIndexJobGrain>(lease.Job.Output);
            int p = lease.Partition;
            Log($"leased partition {p} of {lease.Job.Output}");
            var clock = Stopwatch.StartNew();
            if (lease.Job.Version != options.Version)
            {
                var problem = $"the job's version {lease.Job.Version} differs from this worker's version {options.Version}";
                Log($"partition {p}: {problem}");
                await Retry(() => job.Fail(p, silo, problem), CancellationToken.None);
                return;
            }
            try
            {
                bool written = await Task.Factory.StartNew(() => runner.Run(lease.Job, p, stopping), stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                Log(written ? $"partition {p} written in {clock.Elapsed.TotalSeconds:F1} s"
                            : $"partition {p} was complete already: this worker's copy dropped");
                await Retry(() => job.Complete(p, silo, written), CancellationToken.None);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                Log($"partition {p}: stopping, lease handed back");
                try { await job.Release(p, silo).WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { /* membership frees it when this silo is gone */ }
            }
            catch (Exception e)
            {
                var message = e.Message.ReplaceLineEndings(" ").Trim();
                Log($"partition {p} failed: {message}");
                await Retry(() => job.Fail(p, silo, message), CancellationToken.None);
            }
        }

        /// <summary>Retries a grain call while the cluster reshuffles (a grain on a worker that just died), for up to two minutes.</summary>
        private async Task<T> Retry<T>(Func<Task<T>> call, CancellationToken cancellation)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                try { return await call(); }
                catch (Exception e) when (e is not OperationCanceledException && clock.Elapsed < TimeSpan.FromMinutes(2) && !cancellation.IsCancellationRequested)
                {
                    if (options.Verbose) Log($"the cluster did not answer ({e.Message}); trying again");
                    await Task.Delay(1000, cancellation);
                }
            }
        }

        private Task Retry(Func<Task> call, CancellationToken cancellation) => Retry(async () => { await call(); return true; }, cancellation);
    }
}
