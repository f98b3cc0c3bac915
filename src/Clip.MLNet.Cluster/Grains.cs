using Orleans.Runtime;

namespace Clip.MLNet.Cluster;

/// <summary>A partition's record in a job's stored state.</summary>
[GenerateSerializer]
internal sealed class PartitionRecord
{
    [Id(0)] public ClipPartitionState State { get; set; }
    /// <summary>The worker's silo address (parsable form) while leased, or once complete.</summary>
    [Id(1)] public string? Worker { get; set; }
    [Id(2)] public DateTime LeasedUtc { get; set; }
    [Id(3)] public int Attempts { get; set; }
    [Id(4)] public string? Error { get; set; }
    [Id(5)] public bool Written { get; set; }
    /// <summary>How many times its worker died holding it.</summary>
    [Id(6)] public int Lost { get; set; }
}

[GenerateSerializer]
internal sealed class IndexJobState
{
    [Id(0)] public ClipClusterJob? Job { get; set; }
    [Id(1)] public List<PartitionRecord> Partitions { get; set; } = [];
}

[GenerateSerializer]
internal sealed class JobBoardState
{
    [Id(0)] public List<string> Active { get; set; } = [];
    /// <summary>Worker silo address (parsable form) to its version.</summary>
    [Id(1)] public Dictionary<string, string> Workers { get; set; } = [];
}

/// <summary>Which workers Orleans' membership still counts alive: the only failure detector the cluster has.</summary>
internal static class Liveness
{
    /// <summary>
    /// False once membership has declared the silo dead. A silo the snapshot does not know is taken as dead after a
    /// minute (membership forgets defunct silos; a new one is known within seconds).
    /// </summary>
    public static bool IsAlive(IClusterMembershipService membership, string worker, DateTime sinceUtc)
    {
        var status = membership.CurrentSnapshot.GetSiloStatus(SiloAddress.FromParsableString(worker));
        return status switch
        {
            SiloStatus.Dead => false,
            SiloStatus.None => DateTime.UtcNow - sinceUtc < TimeSpan.FromMinutes(1),
            _ => true,
        };
    }
}

internal sealed class IndexJobGrain(
    [PersistentState("job", ClusterHosting.Storage)] IPersistentState<IndexJobState> state,
    IClusterMembershipService membership) : Grain, IIndexJobGrain
{
    /// <summary>A partition that fails this often (errors, not deaths of its worker) is given up: its input is bad.</summary>
    private const int MaxFailures = 2;

    private IndexJobState S => state.State;

    public async Task<string?> Submit(ClipClusterJob job)
    {
        if (S.Job is { } current && !Finished() && !string.Equals(current.ModelSha256, job.ModelSha256, StringComparison.OrdinalIgnoreCase))
            return $"{job.Output}: a job of model {current.ModelName} (sha256 {current.ModelSha256}) is running into this folder, this job's model is {job.ModelName} (sha256 {job.ModelSha256}); use another output folder";
        if (S.Job is { } same && same.Partitions == job.Partitions && string.Equals(same.ModelSha256, job.ModelSha256, StringComparison.OrdinalIgnoreCase) && S.Partitions.Count == job.Partitions)
        {
            // The same job again (a submitter restarted): keep what is done, retry what failed.
            foreach (var p in S.Partitions.Where(p => p.State == ClipPartitionState.Failed))
            {
                p.State = ClipPartitionState.Pending;
                p.Attempts = 0;
            }
            S.Job = job;
        }
        else
        {
            S.Job = job;
            S.Partitions = Enumerable.Range(0, job.Partitions).Select(_ => new PartitionRecord()).ToList();
        }
        await state.WriteStateAsync();
        if (!Finished()) await GrainFactory.GetGrain<IJobBoardGrain>(0).Add(job.Output);
        return null;
    }

    public async Task<PartitionLease?> Lease(SiloAddress worker)
    {
        if (S.Job is null) return null;
        bool changed = FreeDeadLeases();
        var next = S.Partitions.FindIndex(p => p.State == ClipPartitionState.Pending);
        if (next >= 0)
        {
            var record = S.Partitions[next];
            record.State = ClipPartitionState.Leased;
            record.Worker = worker.ToParsableString();
            record.LeasedUtc = DateTime.UtcNow;
            changed = true;
        }
        if (changed) await state.WriteStateAsync();
        return next >= 0 ? new PartitionLease { Job = S.Job, Partition = next } : null;
    }

    public async Task Complete(int partition, SiloAddress worker, bool written)
    {
        if (S.Job is null || partition < 0 || partition >= S.Partitions.Count) return;
        var record = S.Partitions[partition];
        if (record.State == ClipPartitionState.Complete)
        {
            // Done twice (a worker declared dead that was still running): the file on disk was written once.
            return;
        }
        record.State = ClipPartitionState.Complete;
        record.Worker = worker.ToParsableString();
        record.Written = written;
        await state.WriteStateAsync();
        if (Finished()) await GrainFactory.GetGrain<IJobBoardGrain>(0).Remove(S.Job.Output);
    }

    public async Task Fail(int partition, SiloAddress worker, string error)
    {
        if (S.Job is null || partition < 0 || partition >= S.Partitions.Count) return;
        var record = S.Partitions[partition];
        // Complete, or leased again since this worker was declared dead: its report is stale.
        if (record.State == ClipPartitionState.Complete || (record.State == ClipPartitionState.Leased && record.Worker != worker.ToParsableString())) return;
        record.Attempts++;
        record.Error = $"{error} (worker {worker.Endpoint})";
        record.State = record.Attempts >= MaxFailures ? ClipPartitionState.Failed : ClipPartitionState.Pending;
        record.Worker = null;
        await state.WriteStateAsync();
        if (Finished()) await GrainFactory.GetGrain<IJobBoardGrain>(0).Remove(S.Job.Output);
    }

    public async Task Release(int partition, SiloAddress worker)
    {
        if (S.Job is null || partition < 0 || partition >= S.Partitions.Count) return;
        var record = S.Partitions[partition];
        if (record.State != ClipPartitionState.Leased || record.Worker != worker.ToParsableString()) return;
        record.State = ClipPartitionState.Pending;
        record.Worker = null;
        await state.WriteStateAsync();
    }

    public async Task<ClipClusterJobStatus> Status()
    {
        if (S.Job is not null && FreeDeadLeases()) await state.WriteStateAsync();
        return new ClipClusterJobStatus
        {
            Job = S.Job,
            Partitions = S.Partitions.Select((p, i) => new ClipPartitionStatus
            {
                Partition = i, State = p.State, Worker = p.Worker is null ? null : SiloAddress.FromParsableString(p.Worker).Endpoint.ToString(), Attempts = p.Attempts, Error = p.Error, Written = p.Written, Lost = p.Lost,
            }).ToList(),
        };
    }

    private bool Finished() => S.Partitions.All(p => p.State is ClipPartitionState.Complete or ClipPartitionState.Failed);

    /// <summary>Partitions leased to workers membership has declared dead go back to pending.</summary>
    private bool FreeDeadLeases()
    {
        bool changed = false;
        foreach (var p in S.Partitions)
        {
            if (p.State != ClipPartitionState.Leased || p.Worker is null || Liveness.IsAlive(membership, p.Worker, p.LeasedUtc)) continue;
            p.State = ClipPartitionState.Pending;
            p.Error = $"worker {SiloAddress.FromParsableString(p.Worker).Endpoint} died holding it";
            p.Lost++;
            p.Worker = null;
            changed = true;
        }
        return changed;
    }
}

internal sealed class JobBoardGrain(
    [PersistentState("board", ClusterHosting.Storage)] IPersistentState<JobBoardState> state,
    IClusterMembershipService membership) : Grain, IJobBoardGrain
{
    public async Task Add(string output)
    {
        if (state.State.Active.Contains(output)) return;
        state.State.Active.Add(output);
        await state.WriteStateAsync();
    }

    public async Task Remove(string output)
    {
        if (!state.State.Active.Remove(output)) return;
        await state.WriteStateAsync();
    }

    public Task<string[]> Active() => Task.FromResult(state.State.Active.ToArray());

    public async Task<string?> Join(SiloAddress worker, string version)
    {
        Prune();
        var other = state.State.Workers.FirstOrDefault(w => w.Value != version && w.Key != worker.ToParsableString());
        if (other.Key is not null)
            return $"this worker's version {version} differs from version {other.Value} of worker {SiloAddress.FromParsableString(other.Key).Endpoint}: run one version of clip on every worker";
        state.State.Workers[worker.ToParsableString()] = version;
        await state.WriteStateAsync();
        return null;
    }

    public Task<Dictionary<string, string>> Workers()
    {
        Prune();
        return Task.FromResult(state.State.Workers.ToDictionary(w => SiloAddress.FromParsableString(w.Key).Endpoint.ToString(), w => w.Value));
    }

    private void Prune()
    {
        foreach (var key in state.State.Workers.Keys.ToList())
        {
            var status = membership.CurrentSnapshot.GetSiloStatus(SiloAddress.FromParsableString(key));
            if (status is SiloStatus.Dead or SiloStatus.None or SiloStatus.ShuttingDown or SiloStatus.Stopping) state.State.Workers.Remove(key);
        }
    }
}
