using System.Reflection;
using Clip.MLNet.Cluster;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip index --cluster</c>: opens the index here (checking index.json), submits the job and waits for it.</summary>
internal static class ClusterSubmit
{
    /// <summary>This tool's version, which every worker and submitter of a cluster must share.</summary>
    public static string Version =>
        // CLIP_CLUSTER_VERSION stands in for another build in the mixed-versions test.
        Environment.GetEnvironmentVariable("CLIP_CLUSTER_VERSION") is { Length: > 0 } v ? v
            : typeof(ClusterSubmit).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    public static int Run(string connectionText, IndexJob job, bool showProgress, bool verbose, CancellationToken cancellation)
    {
        var connection = ClipClusterConnection.Parse(connectionText);
        connection.CheckReachable(TimeSpan.FromSeconds(3)); // before the model loads: an unreachable cluster is said within seconds
        CommonOptions.ApplyThreads(job.Threads);
        if (showProgress) Console.Error.WriteLine($"listing {job.Describe()} ...");
        // Opening the index here refuses a folder of another model, partition count or item list before any worker starts.
        var (clip, indexer) = IndexCommand.Open(job, job.Batch ?? 32, cancellation);
        string name = indexer.Info.ModelName, sha = indexer.Info.ModelSha256;
        clip.Dispose();
        var request = new ClipClusterJob
        {
            Output = job.Output,
            ModelName = name,
            ModelSha256 = sha,
            Partitions = job.Partitions,
            Version = Version,
            Payload = job.ToJson(),
        };
        var status = ClipClusterClient.SubmitAndWaitAsync(connection, request, line => { if (showProgress) Console.Error.WriteLine(line); }, verbose, cancellation)
            .GetAwaiter().GetResult();
        var failed = status.Partitions.Where(p => p.State == ClipPartitionState.Failed).ToList();
        if (failed.Count == 0)
        {
            if (showProgress) Console.Error.WriteLine($"{job.Output}: all {job.Partitions} partition(s) complete");
            return ExitCodes.Ok;
        }
        Console.Error.WriteLine($"error: {job.Output}: the job cannot finish, {failed.Count} partition(s) failed: "
            + string.Join("; ", failed.Select(p => $"partition {p.Partition}: {p.Error}")));
        return ExitCodes.JobFailed;
    }
}
