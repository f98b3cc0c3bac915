using Clip.MLNet.Modeling;
using Clip.MLNet.Tests.Support;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Modeling;

/// <summary>
/// The per-machine CPU attention choice: decided once from a measurement, kept in a decision file that every later
/// process reads, the same in processes that decide at once, and the explicit form where nothing can be written.
/// The deciders here get their own folder and made-up timings, so nothing depends on this machine's speed.
/// </summary>
public sealed class CpuAttentionTests
{
    private static Func<ScalarType, bool, (double, double)> Timings(double explicitMs, double fusedMs) => (_, _) => (explicitMs, fusedMs);

    private static readonly Func<ScalarType, bool, (double, double)> NoMeasuring =
        (_, _) => throw new InvalidOperationException("measured where it should not have");

    [Theory]
    [InlineData("fused", true)]
    [InlineData("explicit", false)]
    [InlineData(" Fused ", true)]
    public void TheVariableForcesTheFormWithoutMeasuringOrWriting(string value, bool fused)
    {
        var expected = fused ? AttentionForm.Fused : AttentionForm.Explicit;
        using var dir = new TempDir();
        var choice = new CpuAttentionDecider(dir.File("tuning"), value, NoMeasuring).Decide(ScalarType.BFloat16, causal: true);
        Assert.Equal(expected, choice.Form);
        Assert.Equal(AttentionChoiceSource.Override, choice.Source);
        Assert.False(Directory.Exists(dir.File("tuning")));
    }

    [Fact]
    public void AnUnknownVariableValueIsAnErrorNamingTheVariable()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<InvalidOperationException>(() => new CpuAttentionDecider(dir.Path, "flash", NoMeasuring).Decide(ScalarType.Float32, false));
        Assert.Contains(CpuAttention.Variable, e.Message);
    }

    [Fact]
    public void TheFirstDecisionIsMeasuredAndWrittenAndALaterProcessReadsIt()
    {
        using var dir = new TempDir();
        var first = new CpuAttentionDecider(dir.Path, null, Timings(explicitMs: 10, fusedMs: 8)).Decide(ScalarType.BFloat16, causal: false);
        Assert.Equal((AttentionForm.Fused, AttentionChoiceSource.Measured), (first.Form, first.Source));
        Assert.True(File.Exists(first.File));
        Assert.Contains("\"fused\"", File.ReadAllText(first.File!));

        // Another process (a new decider) whose own timing would say otherwise keeps the machine's choice.
        var later = new CpuAttentionDecider(dir.Path, null, NoMeasuring).Decide(ScalarType.BFloat16, causal: false);
        Assert.Equal((AttentionForm.Fused, AttentionChoiceSource.Cache, first.File), (later.Form, later.Source, later.File));

        // Each (dtype, causal) pair has its own decision.
        var other = new CpuAttentionDecider(dir.Path, null, Timings(explicitMs: 8, fusedMs: 10)).Decide(ScalarType.BFloat16, causal: true);
        Assert.Equal((AttentionForm.Explicit, AttentionChoiceSource.Measured), (other.Form, other.Source));
        Assert.NotEqual(first.File, other.File);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("")]
    [InlineData("{\"choice\": \"fused\", \"dtype\": \"bf16\", \"causal\": false, \"cpu\": \"another CPU\"}")]
    public void AnUnreadableOrForeignFileIsMeasuredAgainAndReplaced(string content)
    {
        using var dir = new TempDir();
        var decider = new CpuAttentionDecider(dir.Path, null, Timings(explicitMs: 8, fusedMs: 10));
        var file = decider.FileFor(ScalarType.BFloat16, causal: false);
        File.WriteAllText(file, content);
        var choice = decider.Decide(ScalarType.BFloat16, causal: false);
        Assert.Equal((AttentionForm.Explicit, AttentionChoiceSource.Measured), (choice.Form, choice.Source));
        Assert.Contains(file, choice.Note);
        Assert.Equal(AttentionChoiceSource.Cache, new CpuAttentionDecider(dir.Path, null, NoMeasuring).Decide(ScalarType.BFloat16, false).Source);
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public async Task ConcurrentDecidersAgreeOnTheFirstWritersChoice()
    {
        // Many rounds: the race is lost only now and then (File.Move(overwrite: false) lost about 1 round in 20 here).
        for (int round = 0; round < 50; round++)
        {
            using var dir = new TempDir();
            // Both measure before either writes, and their timings disagree: the file decides for both.
            using var bothMeasured = new Barrier(2);
            (double, double) Measure(double explicitMs, double fusedMs)
            {
                Assert.True(bothMeasured.SignalAndWait(TimeSpan.FromSeconds(10)));
                return (explicitMs, fusedMs);
            }
            var a = Task.Run(() => new CpuAttentionDecider(dir.Path, null, (_, _) => Measure(10, 8)).Decide(ScalarType.Float32, true));
            var b = Task.Run(() => new CpuAttentionDecider(dir.Path, null, (_, _) => Measure(8, 10)).Decide(ScalarType.Float32, true));
            var (first, second) = (await a, await b);
            Assert.Equal(first.Form, second.Form);
            Assert.Equivalent(new[] { AttentionChoiceSource.Cache, AttentionChoiceSource.Measured }, new[] { first.Source, second.Source });
            Assert.Single(Directory.GetFiles(dir.Path));
            Assert.Contains(first.Form == AttentionForm.Fused ? "\"fused\"" : "\"explicit\"", File.ReadAllText(first.File!));
        }
    }

    [Fact]
    public void AFolderThatCannotBeWrittenGivesTheExplicitFormWithoutMeasuring()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a-file"), "");
        // A folder under a file cannot be made, whoever runs the test (root ignores permission bits).
        var choice = new CpuAttentionDecider(Path.Combine(dir.File("a-file"), "tuning"), null, NoMeasuring).Decide(ScalarType.BFloat16, causal: true);
        Assert.Equal((AttentionForm.Explicit, AttentionChoiceSource.Fallback), (choice.Form, choice.Source));
    }

    [Fact]
    public void TheMeasurementTimesBothFormsOnThisMachine()
    {
        var (explicitMs, fusedMs) = CpuAttention.Measure(ScalarType.BFloat16, causal: true);
        Assert.InRange(explicitMs, 1e-6, 10_000);
        Assert.InRange(fusedMs, 1e-6, 10_000);
    }

    [Fact]
    public void TheMachineKeyNamesTheCpuAndTheLibraryVersions()
    {
        var key = CpuAttention.MachineKey();
        Assert.All(new[] { "cpu", "cpu_flags_sha256", "torchsharp", "libtorch" }, k => Assert.False(string.IsNullOrEmpty(key[k])));
    }
}
