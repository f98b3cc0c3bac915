using Orleans.Runtime;

namespace Clip.MLNet.Cluster;

/// <summary>
/// An index job as the submitter gives it: the output folder (its key), the model's identity, the partition count and
/// the options the workers need to open the same index (<see cref="Payload"/>, the clip tool's business).
/// </summary>
[GenerateSerializer, Immutable]
public sealed class ClipClusterJob
{
    /// <summary>The index folder, full path; on a filesystem every worker sees at that path.</summary>
    [Id(0)] public required string Output { get; init; }

    /// <summary>The model as recorded in <c>index.json</c>.</summary>
    [Id(1)] public required string ModelName { get; init; }

    /// <summary>SHA-256 of the model's weights: a second job to the same folder with another model is refused.</summary>
    [Id(2)] public required string ModelSha256 { get; init; }

    /// <summary>N: the job's partitions, 0 to N-1.</summary>
    [Id(3)] public required int Partitions { get; init; }

    /// <summary>The submitter's version: workers of another version are refused.</summary>
    [Id(4)] public required string Version { get; init; }

    /// <summary>What a worker needs to open the index (inputs, batch, precision...), opaque to the cluster.</summary>
    [Id(5)] public required string Payload { get; init; }
}

/// <summary>Where one partition of a job stands.</summary>
public enum ClipPartitionState
{
    /// <summary>Waiting for a worker.</summary>
    Pending,
    /// <summary>Leased to a live worker, which is running it.</summary>
    Leased,
    /// <summary>Its <c>img_emb</c> file is in place.</summary>
    Complete,
    /// <summary>It failed on workers twice (an error in its input): the job cannot finish.</summary>
    Failed,
}

/// <summary>One partition's state in a <see cref="ClipClusterJobStatus"/>.</summary>
[GenerateSerializer, Immutable]
public sealed class ClipPartitionStatus
{
    /// <summary>The partition.</summary>
    [Id(0)] public int Partition { get; init; }

    /// <summary>Its state.</summary>
    [Id(1)] public ClipPartitionState State { get; init; }

    /// <summary>The worker that holds its lease or completed it (a silo address), if any.</summary>
    [Id(2)] public string? Worker { get; init; }

    /// <summary>How many times a worker failed on it or died holding it.</summary>
    [Id(3)] public int Attempts { get; init; }

    /// <summary>The last error reported for it.</summary>
    [Id(4)] public string? Error { get; init; }

    /// <summary>Whether the worker that completed it wrote its files (false: it was complete already, its copy dropped).</summary>
    [Id(5)] public bool Written { get; init; }

    /// <summary>How many times a worker died holding it (and it went back to pending).</summary>
    [Id(6)] public int Lost { get; init; }
}

/// <summary>A job's progress, as <c>clip index --cluster</c> prints it.</summary>
[GenerateSerializer, Immutable]
public sealed class ClipClusterJobStatus
{
    /// <summary>The job, or null when none was submitted to that folder.</summary>
    [Id(0)] public ClipClusterJob? Job { get; init; }

    /// <summary>Every partition, in order.</summary>
    [Id(1)] public IReadOnlyList<ClipPartitionStatus> Partitions { get; init; } = [];

    /// <summary>True when every partition is complete.</summary>
    public bool IsComplete => Job is not null && Partitions.All(p => p.State == ClipPartitionState.Complete);

    /// <summary>True when nothing is left to run and some partition failed.</summary>
    public bool IsFailed => Job is not null && Partitions.All(p => p.State is ClipPartitionState.Complete or ClipPartitionState.Failed)
        && Partitions.Any(p => p.State == ClipPartitionState.Failed);
}

/// <summary>A partition leased to a worker.</summary>
[GenerateSerializer, Immutable]
internal sealed class PartitionLease
{
    [Id(0)] public required ClipClusterJob Job { get; init; }
    [Id(1)] public required int Partition { get; init; }
}

/// <summary>One index job, keyed by its output folder's full path; its state is kept in Redis.</summary>
internal interface IIndexJobGrain : IGrainWithStringKey
{
    /// <summary>Starts the job, or attaches to the same one; a refusal message when another job holds the folder.</summary>
    Task<string?> Submit(ClipClusterJob job);

    /// <summary>A pending partition for <paramref name="worker"/>, or null; first frees the leases of dead workers.</summary>
    Task<PartitionLease?> Lease(SiloAddress worker);

    Task Complete(int partition, SiloAddress worker, bool written);

    Task Fail(int partition, SiloAddress worker, string error);

    /// <summary>Gives a lease back unfinished (a worker stopping).</summary>
    Task Release(int partition, SiloAddress worker);

    Task<ClipClusterJobStatus> Status();
}

/// <summary>The cluster's notice board (key 0): the jobs with work left, and the live workers' versions.</summary>
internal interface IJobBoardGrain : IGrainWithIntegerKey
{
    Task Add(string output);

    Task Remove(string output);

    Task<string[]> Active();

    /// <summary>Registers a worker; a refusal naming both versions when a live worker runs another one.</summary>
    Task<string?> Join(SiloAddress worker, string version);

    /// <summary>The live workers (silo address) and their versions.</summary>
    Task<Dictionary<string, string>> Workers();
}
