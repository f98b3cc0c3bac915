using System.CommandLine;
using System.Net;
using Clip.MLNet.Cluster;
using Clip.MLNet.Indexing;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip worker</c>: a worker of an indexing cluster (an Orleans silo) that runs the partitions of submitted jobs.</summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var cluster = new Option<string>("--cluster") { Description = "The cluster: redis://HOST:PORT (membership and job state in Redis).", Required = true };
        var threads = CommonOptions.Threads();
        var batch = new Option<int?>("--batch") { Description = "Images per forward pass, for jobs submitted without --batch (default 32)." };
        var preprocessThreads = CommonOptions.PreprocessThreads();
        var address = new Option<string?>("--address") { Description = "The address other workers and submitters reach this one at (default: this machine's address towards Redis)." };
        var port = new Option<int?>("--port") { Description = "The port workers talk to each other on (default: a free port)." };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "The port submitters connect to (default: a free port)." };
        var probeTimeout = new Option<double>("--probe-timeout")
        {
            Description = "Seconds a membership probe may take; a worker missing 3 probes is declared dead and its partitions run elsewhere (default 5, Orleans' own).",
            DefaultValueFactory = _ => 5,
        };
        var command = new Command("worker", "Join an indexing cluster and run the partitions of `clip index --cluster` jobs until stopped (Ctrl+C).")
        {
            cluster, threads, batch, preprocessThreads, address, port, gatewayPort, probeTimeout,
        };
        command.SetAction((parse, cancellation) => Task.FromResult(CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var connection = ClipClusterConnection.Parse(parse.GetValue(cluster)!);
            var workerBatch = parse.GetValue(batch) is { } b ? CommonOptions.CheckBatch(b) : (int?)null;
            var workerThreads = parse.GetValue(threads);
            CommonOptions.ApplyThreads(workerThreads);
            var probe = parse.GetValue(probeTimeout);
            if (!(probe > 0)) throw new CliInputException($"--probe-timeout must be positive, got {probe}");
            IPAddress? advertised = null;
            if (parse.GetValue(address) is { } a && !IPAddress.TryParse(a, out advertised))
                throw new CliInputException($"--address '{a}': not an IP address");
            using var runner = new PartitionRunner(workerBatch, workerThreads, parse.GetValue(preprocessThreads));
            var options = new ClipClusterWorkerOptions
            {
                Version = ClusterSubmit.Version,
                ProbeTimeout = TimeSpan.FromSeconds(probe),
                AdvertisedAddress = advertised,
                SiloPort = parse.GetValue(port),
                GatewayPort = parse.GetValue(gatewayPort),
                Verbose = parse.GetValue(CommonOptions.Verbose),
                Log = line => Console.WriteLine(line),
            };
            ClipClusterWorker.RunAsync(connection, options, runner, cancellation).GetAwaiter().GetResult();
            return ExitCodes.Ok;
        })));
        return command;
    }

    /// <summary>Opens a job's index once (the model loaded once per job) and runs its partitions.</summary>
    private sealed class PartitionRunner(int? batch, int? threads, int? preprocessThreads) : IClipPartitionRunner, IDisposable
    {
        private readonly Lock gate = new();
        private string? payload;
        private ClipModel? model;
        private ClipIndexer? indexer;

        public bool Run(ClipClusterJob job, int partition, CancellationToken cancellation)
        {
            lock (gate)
            {
                if (payload != job.Payload)
                {
                    Close();
                    var spec = IndexJob.FromJson(job.Payload);
                    if (threads is null) CommonOptions.ApplyThreads(spec.Threads);
                    // The job's batch (it shapes the bytes written); this machine's threads when the worker was given them.
                    (model, indexer) = IndexCommand.Open(spec with { PreprocessThreads = preprocessThreads ?? spec.PreprocessThreads }, spec.Batch ?? batch ?? 32, cancellation);
                    payload = job.Payload;
                }
                return indexer!.RunPartition(partition, cancellation: cancellation).Written;
            }
        }

        private void Close()
        {
            model?.Dispose();
            (model, indexer, payload) = (null, null, null);
        }

        public void Dispose()
        {
            lock (gate) Close();
        }
    }
}
