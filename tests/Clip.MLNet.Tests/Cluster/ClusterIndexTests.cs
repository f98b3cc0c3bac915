using System.Diagnostics;
using System.Text.RegularExpressions;
using Clip.MLNet.Tests.Indexing;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Cluster;

/// <summary>
/// <c>clip worker</c> and <c>clip index --cluster</c> as outside checks run them: Redis on loopback, three workers, one
/// killed (SIGKILL) while it holds an unfinished partition; the job completes byte-identical to one process, and no
/// partition is written twice. Bad input: an unreachable cluster, workers of another version, another model.
/// </summary>
public sealed class ClusterIndexTests
{
    private const int ImageCount = 320;

    /// <summary>The flags of both runs compared byte for byte.</summary>
    private static readonly string[] RunFlags = ["--partitions", "8", "--batch", "4", "--threads", "1", "--precision", "fp32"];

    /// <summary>Workers declared dead within seconds (probes of 1 s; production keeps Orleans' 5 s).</summary>
    private static readonly string[] WorkerFlags = ["--threads", "1", "--probe-timeout", "1"];

    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(90);

    [RedisFact]
    public void AJobOutlivesAWorkerKilledHoldingAPartitionAndMatchesOneProcessByteForByte()
    {
        using var temp = new TempDir();
        var images = Corpus(temp.Path, ImageCount);
        using var redis = new RedisServer();
        var workers = Enumerable.Range(0, 3).Select(_ => new WorkerProcess(redis.Connection, WorkerFlags)).ToList();
        try
        {
            foreach (var w in workers) Assert.True(w.WaitFor("joined the cluster", JoinTimeout), $"a worker did not join: {w.Output}");
            var output = Path.Combine(temp.Path, "cluster");
            var clock = Stopwatch.StartNew();
            var submit = Task.Run(() => IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", output, .. RunFlags, "--cluster", redis.Connection]));

            // One worker killed after the first partition appears, while it holds a partition not yet complete.
            var folder = Path.Combine(output, "img_emb");
            while (!(Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.npy").Any()) && !submit.IsCompleted && clock.Elapsed < TimeSpan.FromMinutes(2))
                Thread.Sleep(5);
            Assert.False(submit.IsCompleted, $"the job ended before a partition appeared: {(submit.IsCompleted ? submit.Result.Tail() : "")}");
            // The one that leased last has the most of its partition left: the least chance it completes as it is killed.
            // A worker's "leased" line can trail the first file by a moment (a worker that just finished leases its next
            // partition): look again for a while rather than once.
            (WorkerProcess? Worker, int? Partition) Holder() => workers.Select(w => ((WorkerProcess?)w, HeldPartition(w, output)))
                .Where(x => x.Item2 is { } p && !File.Exists(ImageFile(output, p)))
                .OrderBy(x => x.Item1!.SinceLast("leased partition ")).FirstOrDefault();
            var (victim, held) = Holder();
            while (victim is null && !submit.IsCompleted && clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                Thread.Sleep(5);
                (victim, held) = Holder();
            }
            Assert.True(victim is not null, "no worker holds an unfinished partition:\n" + string.Join("\n---\n", workers.Select(w => w.Output)));
            victim.Kill();
            Assert.False(File.Exists(ImageFile(output, held!.Value)), $"partition {held} was completed as its worker was killed: nothing was taken over");

            var result = submit.Result;
            Assert.True(result.ExitCode == 0, result.Tail());
            Assert.Contains($"partition {held}: back to pending", result.StdErr);
            Assert.Contains("died holding it", result.StdErr);
            var survivors = workers.Where(w => w != victim).ToList();
            Assert.Contains(survivors, w => w.Lines.Contains($"leased partition {held} of {output}"));
            var clusterTime = clock.Elapsed;

            // Every partition written by exactly one worker (the killed one wrote its held partition never).
            for (int p = 0; p < 8; p++)
            {
                int writes = workers.Sum(w => w.Lines.Count(l => l.StartsWith($"partition {p} written", StringComparison.Ordinal)));
                Assert.True(writes == 1, $"partition {p} written {writes} times:\n" + string.Join("\n---\n", workers.Select(w => w.Output)));
            }
            Assert.DoesNotContain(victim.Lines, l => l.StartsWith($"partition {held} written", StringComparison.Ordinal));

            var single = Path.Combine(temp.Path, "single");
            var reference = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", single, .. RunFlags, "--quiet"]);
            Assert.True(reference.ExitCode == 0, reference.Tail());
            IndexCorpus.AssertSameFiles(single, output);
            Assert.True(clusterTime < TimeSpan.FromMinutes(3), $"the cluster job took {clusterTime}");
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    [Fact]
    public void AnUnreachableClusterIsAnErrorNamingTheAddressWithinSeconds()
    {
        using var temp = new TempDir();
        var images = Corpus(temp.Path, 2);
        var address = $"redis://127.0.0.1:{RedisServer.FreePort()}";
        var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", Path.Combine(temp.Path, "out"), "--cluster", address]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"error: {address}: cannot reach the cluster's Redis", result.StdErr);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(30), $"took {result.Elapsed}");
        Assert.False(File.Exists(Path.Combine(temp.Path, "out", "index.json")), "nothing is written for an unreachable cluster");

        var worker = IndexCorpus.Cli(["worker", "--cluster", address]);
        Assert.Equal(2, worker.ExitCode);
        Assert.Contains($"error: {address}: cannot reach the cluster's Redis", worker.StdErr);

        var one = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", Path.Combine(temp.Path, "out"),
            "--partitions", "2", "--partition", "0", "--cluster", address]);
        Assert.Equal(2, one.ExitCode);
        Assert.Contains("--cluster runs every partition", one.StdErr);

        var bad = IndexCorpus.Cli(["worker", "--cluster", "postgres://somewhere"]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("expected redis://HOST:PORT", bad.StdErr);
    }

    [RedisFact]
    public void WorkersOfAnotherVersionAndAJobOfAnotherModelAreRefused()
    {
        using var temp = new TempDir();
        var images = Corpus(temp.Path, 4);
        using var redis = new RedisServer();
        using var worker = new WorkerProcess(redis.Connection, WorkerFlags);
        Assert.True(worker.WaitFor("joined the cluster", JoinTimeout), worker.Output);
        var version = Regex.Match(worker.Output, @"\(version ([^)]+)\) joined").Groups[1].Value;
        Assert.NotEmpty(version);
        var other = new Dictionary<string, string> { ["CLIP_CLUSTER_VERSION"] = "0.0.0-other" };

        using (var stranger = new WorkerProcess(redis.Connection, WorkerFlags, other))
        {
            Assert.True(stranger.WaitForExit(JoinTimeout), "the worker of another version was not refused: " + stranger.Output);
            Assert.Equal(2, stranger.ExitCode);
            Assert.Contains("0.0.0-other", stranger.Output);
            Assert.Contains(version, stranger.Output);
        }

        var output = Path.Combine(temp.Path, "out");
        var mixed = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", output, "--cluster", redis.Connection],
            other.ToDictionary(e => e.Key, e => (string?)e.Value));
        Assert.Equal(2, mixed.ExitCode);
        Assert.Contains("0.0.0-other", mixed.StdErr);
        Assert.Contains(version, mixed.StdErr);

        var first = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", output, "--cluster", redis.Connection]);
        Assert.True(first.ExitCode == 0, first.Tail());
        Assert.True(File.Exists(ImageFile(output, 0)));
        var another = Fixtures.ReferencePath("rn", "openai_state_dict.pt");
        var second = IndexCorpus.Cli(["index", "--model", another, "--images", images, "--output", output, "--cluster", redis.Connection]);
        Assert.Equal(2, second.ExitCode);
        Assert.Contains("belongs to an index of model", second.StdErr);
        Assert.Contains(another, second.StdErr);

        // A job that cannot finish: an unreadable image under --strict fails its partition on the workers (twice).
        File.WriteAllText(Path.Combine(images, "part1", "zz-broken.png"), "not an image");
        var strict = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", images, "--output", Path.Combine(temp.Path, "strict"),
            "--partitions", "2", "--strict", "--cluster", redis.Connection]);
        Assert.True(strict.ExitCode == 4, strict.Tail());
        Assert.Contains("the job cannot finish, 1 partition(s) failed: partition 1: ", strict.StdErr);
        Assert.Contains("zz-broken.png", strict.StdErr);
    }

    /// <summary>Generated images (JPEG and PNG) in two folders.</summary>
    private static string Corpus(string root, int count)
    {
        var folder = Path.Combine(root, "corpus");
        for (int i = 0; i < count; i++)
        {
            var sub = Path.Combine(folder, $"part{i % 2}");
            Directory.CreateDirectory(sub);
            var format = i % 2 == 0 ? "jpg" : "png";
            File.WriteAllBytes(Path.Combine(sub, $"img{i:D4}.{format}"), IndexCorpus.Image(i, format));
        }
        return folder;
    }

    private static string ImageFile(string output, int partition) => Path.Combine(output, "img_emb", $"img_emb_{partition}.npy");

    /// <summary>The partition a worker last leased and has not reported done, or null.</summary>
    private static int? HeldPartition(WorkerProcess worker, string output)
    {
        var lines = worker.Lines;
        var last = lines.LastOrDefault(l => l.StartsWith("leased partition ", StringComparison.Ordinal) && l.EndsWith($" of {output}", StringComparison.Ordinal));
        if (last is null) return null;
        int p = int.Parse(last.Split(' ')[2]);
        return lines.Any(l => l.StartsWith($"partition {p} ", StringComparison.Ordinal)) ? null : p;
    }
}
