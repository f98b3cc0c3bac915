using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Support;

/// <summary>
/// The shared reference fixtures (../shared beside the repository, or CLIP_SHARED). Tests that need
/// them fail with a message naming the missing path: they never pass by skipping.
/// </summary>
internal static class Fixtures
{
    private static readonly Lazy<string> SharedRoot = new(FindShared);

    public static string Shared => SharedRoot.Value;
    public static string Reference => Path.Combine(Shared, "clip-reference");
    public static string Data => Path.Combine(Shared, "clip-data");
    public static string Vocab => Require(Path.Combine(Data, "bpe_simple_vocab_16e6.txt.gz"));
    public static string ReferencePath(params string[] parts) => Require(Path.Combine(new[] { Reference }.Concat(parts).ToArray()));

    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Clip.MLNet.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("The test run is not inside the repository (no Clip.MLNet.sln above it).");
        }
    }

    private static string FindShared()
    {
        var env = Environment.GetEnvironmentVariable("CLIP_SHARED");
        var candidate = !string.IsNullOrEmpty(env) ? env : Path.Combine(RepositoryRoot, "..", "shared");
        candidate = Path.GetFullPath(candidate);
        if (!Directory.Exists(Path.Combine(candidate, "clip-reference")))
            throw new InvalidOperationException($"The reference fixtures are missing: expected {candidate}/clip-reference (set CLIP_SHARED to the shared folder). Parity tests fail rather than skip without them.");
        return candidate;
    }

    public static string Require(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new InvalidOperationException($"Reference fixture missing: {path}");
        return path;
    }

    private static readonly Lazy<Dictionary<string, Tensor>> ExpectedTensors = new(() =>
    {
        using var file = SafetensorsFile.Open(ReferencePath("expected.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.Read(e).DetachFromDisposeScope());
    });

    /// <summary>A tensor of expected.safetensors (shared; do not dispose).</summary>
    public static Tensor Expected(string name) => ExpectedTensors.Value.TryGetValue(name, out var t)
        ? t : throw new InvalidOperationException($"expected.safetensors has no '{name}'");

    /// <summary>||a - b|| / ||b||.</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var a = actual.to(ScalarType.Float64).cpu();
        using var b = expected.to(ScalarType.Float64).cpu();
        using var diff = (a - b).norm();
        using var den = b.norm();
        return diff.item<double>() / Math.Max(den.item<double>(), 1e-30);
    }
}
