using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Clip.MLNet.Native;
using TorchSharp;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>The two ways to compute attention.</summary>
internal enum AttentionForm
{
    /// <summary>Two batched matrix products around a softmax (<see cref="MultiheadSelfAttention.Attention"/>).</summary>
    Explicit,
    /// <summary>libtorch's <c>scaled_dot_product_attention</c>.</summary>
    Fused,
}

/// <summary>Where a CPU attention choice came from.</summary>
internal enum AttentionChoiceSource
{
    /// <summary><c>CLIP_CPU_ATTENTION</c>.</summary>
    Override,
    /// <summary>The machine's decision file, written by an earlier (or concurrent) process.</summary>
    Cache,
    /// <summary>Measured by this process, which wrote the decision file.</summary>
    Measured,
    /// <summary>The decision file could not be written: the explicit form, the same in every process.</summary>
    Fallback,
}

/// <summary>One (dtype, causal) pair's choice; <paramref name="Note"/> says what was repaired, if anything.</summary>
internal sealed record CpuAttentionChoice(ScalarType DType, bool Causal, AttentionForm Form, AttentionChoiceSource Source, string? File, string? Note = null)
{
    public string FormName => Form == AttentionForm.Fused ? "fused" : "explicit";
    public string SourceName => Source.ToString().ToLowerInvariant();
}

/// <summary>
/// The CPU attention form of this machine, per (dtype, causal). A choice made by timing in each process could
/// differ between processes and change the last bits of the results, and <c>clip index</c> promises byte-identical
/// partitions from separate processes. So the first process on a machine that needs a choice times both forms on a
/// fixed input and writes the winner to a decision file (<see cref="Folder"/>) keyed by the CPU (model name, a hash
/// of its flags) and the TorchSharp/libtorch version; every later process reads it. The first writer wins a race
/// (the file is written under a temporary name and linked into place, which fails if the name exists) and the loser
/// uses the winner's choice. Where the file cannot be written the explicit form is used (never a per-process timed
/// choice). <c>CLIP_CPU_ATTENTION=fused|explicit</c> forces a form.
/// </summary>
internal static class CpuAttention
{
    /// <summary>Forces the form: <c>fused</c> or <c>explicit</c>.</summary>
    public const string Variable = "CLIP_CPU_ATTENTION";

    /// <summary>Timed rounds of each form, interleaved (the best counts).</summary>
    internal const int Rounds = 15;
    /// <summary>The measured input: batch, heads, tokens (full attention; 77 when causal), head size.</summary>
    internal static long[] Shape(bool causal) => [8, 12, causal ? 77 : 50, 64];

    private static readonly ConcurrentDictionary<(ScalarType, bool), Lazy<CpuAttentionChoice>> Choices = new();

    /// <summary>
    /// The folder of the decision files: <c>$CLIP_MLNET_NATIVE_CACHE/tuning</c> where that variable is set, else
    /// <c>$XDG_CACHE_HOME/clip-mlnet/tuning</c> or <c>~/.cache/clip-mlnet/tuning</c> (beside the native loader's copies).
    /// </summary>
    public static string Folder => TorchSharpNativeLoader.CacheFolder("tuning", underChosen: "tuning");

    /// <summary>This process's choice for <paramref name="dtype"/> (fp32 or bf16), decided once.</summary>
    public static CpuAttentionChoice Choice(ScalarType dtype, bool causal) =>
        Choices.GetOrAdd((dtype, causal), key => new Lazy<CpuAttentionChoice>(
            () => new CpuAttentionDecider(Folder, Environment.GetEnvironmentVariable(Variable), Measure).Decide(key.Item1, key.Item2))).Value;

    /// <summary>The choices this process has made so far.</summary>
    public static IReadOnlyList<CpuAttentionChoice> Made =>
        Choices.Values.Where(c => c.IsValueCreated).Select(c => c.Value).OrderBy(c => c.DType).ThenBy(c => c.Causal).ToList();

    /// <summary>
    /// Milliseconds of each form (the best of interleaved rounds, robust to a busy machine) on a fixed input shaped
    /// like a ViT-B tower's attention: batch 8, 12 heads, head size 64, 50 tokens (77 and causal for text).
    /// </summary>
    internal static (double Explicit, double Fused) Measure(ScalarType dtype, bool causal)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var generator = new Generator(20);
        var shape = Shape(causal);
        var q = torch.randn(shape, generator: generator).to(dtype);
        var k = torch.randn(shape, generator: generator).to(dtype);
        var v = torch.randn(shape, generator: generator).to(dtype);
        double Time(bool fused)
        {
            using var round = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            _ = fused ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal) : MultiheadSelfAttention.Attention(q, k, v, causal);
            return clock.Elapsed.TotalMilliseconds;
        }
        Time(false);
        Time(true);   // warm-up
        double bestExplicit = double.MaxValue, bestFused = double.MaxValue;
        for (int i = 0; i < Rounds; i++)
        {
            bestExplicit = Math.Min(bestExplicit, Time(false));
            bestFused = Math.Min(bestFused, Time(true));
        }
        return (bestExplicit, bestFused);
    }

    /// <summary>What identifies the machine for the decision: CPU model, a hash of its flags, TorchSharp and libtorch versions.</summary>
    internal static IReadOnlyDictionary<string, string> MachineKey()
    {
        return new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["cpu"] = CpuInfo.ModelName,
            ["cpu_flags_sha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(' ', CpuInfo.Flags))))[..16],
            ["architecture"] = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(),
            ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
            ["libtorch"] = torch.__version__,
        };
    }
}

/// <summary>
/// Decides one (dtype, causal) choice against a folder of decision files; <see cref="CpuAttention"/> uses one per
/// pair and process, tests use their own folder and timings.
/// </summary>
internal sealed class CpuAttentionDecider(string folder, string? overrideValue, Func<ScalarType, bool, (double Explicit, double Fused)> measure)
{
    private readonly IReadOnlyDictionary<string, string> machine = CpuAttention.MachineKey();

    /// <summary>The decision file of a pair on this machine.</summary>
    public string FileFor(ScalarType dtype, bool causal)
    {
        var key = string.Join("\n", machine.Select(p => $"{p.Key}={p.Value}"));
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16];
        return Path.Combine(folder, $"cpu-attention-{hash}-{DTypeName(dtype)}-{(causal ? "causal" : "full")}.json");
    }

    public CpuAttentionChoice Decide(ScalarType dtype, bool causal)
    {
        if (overrideValue is { Length: > 0 })
        {
            var form = overrideValue.Trim().ToLowerInvariant() switch
            {
                "fused" => AttentionForm.Fused,
                "explicit" => AttentionForm.Explicit,
                _ => throw new InvalidOperationException($"{CpuAttention.Variable}={overrideValue}: expected 'fused' or 'explicit'"),
            };
            return new(dtype, causal, form, AttentionChoiceSource.Override, null);
        }
        var target = FileFor(dtype, causal);
        string? note = null;
        // A few rounds: a corrupt file set aside or a lost race sends us back to read what is there now.
        for (int attempt = 0; attempt < 4; attempt++)
        {
            byte[]? seen = null;
            try { seen = File.ReadAllBytes(target); }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { seen = []; }
            if (seen is not null)
            {
                if (Parse(seen, dtype, causal) is { } stored) return new(dtype, causal, stored, AttentionChoiceSource.Cache, target, note);
                note = $"replaced the decision file {target}, which could not be read or was not this machine's";
                SetAside(target, seen);
                continue;
            }
            // Make sure the folder takes a file before measuring: if not, the deterministic fallback.
            string temporary;
            try
            {
                Directory.CreateDirectory(folder);
                temporary = Path.Combine(folder, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
                using (new FileStream(temporary, FileMode.CreateNew, FileAccess.Write)) { }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { break; }
            try
            {
                var (explicitMs, fusedMs) = measure(dtype, causal);
                var measured = fusedMs < explicitMs ? AttentionForm.Fused : AttentionForm.Explicit;
                File.WriteAllBytes(temporary, Describe(dtype, causal, measured, explicitMs, fusedMs));
                if (NoReplaceFile.Place(temporary, target))   // the first writer wins
                    return new(dtype, causal, measured, AttentionChoiceSource.Measured, target, note);
                // Another process wrote first: its choice is read next round.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The write or the link failed (a full disk, a filesystem without hard links): unless another process's
                // file is there to read, fall back now rather than measuring again.
                if (!File.Exists(target)) break;
            }
            finally
            {
                TryDelete(temporary);   // after a link the decision lives on under the target name
            }
        }
        return new(dtype, causal, AttentionForm.Explicit, AttentionChoiceSource.Fallback, null, note);
    }

    private byte[] Describe(ScalarType dtype, bool causal, AttentionForm form, double explicitMs, double fusedMs)
    {
        var o = new JsonObject
        {
            ["choice"] = form == AttentionForm.Fused ? "fused" : "explicit",
            ["dtype"] = DTypeName(dtype),
            ["causal"] = causal,
            ["explicit_ms"] = Math.Round(explicitMs, 3),
            ["fused_ms"] = Math.Round(fusedMs, 3),
            ["measured_on"] = $"{string.Join('x', CpuAttention.Shape(causal))}, best of {CpuAttention.Rounds} rounds, {torch.get_num_threads()} threads",
            ["measured_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        foreach (var (k, v) in machine) o[k] = v;
        return Encoding.UTF8.GetBytes(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The stored form when the file is this pair's, for this machine; null when it is not or cannot be read.</summary>
    private AttentionForm? Parse(byte[] bytes, ScalarType dtype, bool causal)
    {
        try
        {
            if (JsonNode.Parse(bytes) is not JsonObject o) return null;
            if ((string?)o["dtype"] != DTypeName(dtype) || (bool?)o["causal"] != causal) return null;
            if (machine.Any(p => (string?)o[p.Key] != p.Value)) return null;
            return (string?)o["choice"] switch { "fused" => AttentionForm.Fused, "explicit" => AttentionForm.Explicit, _ => null };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return null; }
    }

    /// <summary>Moves an unreadable file out of the way; if what moved is not what was read (replaced meanwhile), puts it back.</summary>
    private static void SetAside(string target, byte[] seen)
    {
        var aside = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.bad";
        try { File.Move(target, aside, overwrite: false); }   // aside is a fresh unique name
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        try
        {
            // If it changed, put it back unless a newer file took its place (that one stands).
            if (!File.ReadAllBytes(aside).AsSpan().SequenceEqual(seen)) NoReplaceFile.Place(aside, target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        TryDelete(aside);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "fp32",
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
