using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Clip.MLNet.Performance;
using Clip.MLNet.Search;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>clip search</c>: exact top-k over an index folder by text or by example image (a table, or a JSON array with
/// <c>--json</c>); <c>--bench</c> times the scan over synthetic vectors beside the machine's read and GEMM rates.
/// </summary>
internal static class SearchCommand
{
    public static Command Create()
    {
        var index = new Option<string?>("--index") { Description = "The index folder (written by clip index)." };
        var text = new Option<string?>("--text") { Description = "Search by this text." };
        var image = new Option<string?>("--image") { Description = "Search by this example image." };
        var k = new Option<int>("--k") { Description = "Results to return (clamped to the index size).", DefaultValueFactory = _ => 10 };
        var json = new Option<bool>("--json") { Description = "Print a JSON array of {\"rank\", \"score\", \"path\", \"caption\"}, best first, instead of a table." };
        var model = CommonOptions.Model(required: false);
        model.Description = "The model that embeds the query (default: the one recorded in index.json; another model is refused).";
        var threads = CommonOptions.Threads();
        var bench = new Option<bool>("--bench") { Description = "Time the scan over --vectors synthetic float16 vectors of --dim values, for 1 query and a batch, beside the memory read and GEMM rates." };
        var vectors = new Option<long>("--vectors") { Description = "Rows of the --bench scan.", DefaultValueFactory = _ => 1_000_000 };
        var dim = new Option<int>("--dim") { Description = "Values per row of the --bench scan.", DefaultValueFactory = _ => 512 };
        var batch = new Option<int>("--batch") { Description = "Queries of the batched --bench measurement.", DefaultValueFactory = _ => 64 };
        var command = new Command("search", "Exact top-k search of an index folder by text or example image; --bench times the scan.")
        {
            index, text, image, k, json, model, threads, bench, vectors, dim, batch,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            if (parse.GetValue(bench))
                return Bench(parse.GetValue(vectors), parse.GetValue(dim), parse.GetValue(batch), parse.GetValue(threads), parse.GetValue(json));
            var folder = parse.GetValue(index) ?? throw new CliInputException("--index is required (the index folder to search)");
            var query = parse.GetValue(text);
            var example = parse.GetValue(image);
            if ((query is null) == (example is null)) throw new CliInputException("give exactly one of --text or --image");
            if (query is not null && string.IsNullOrWhiteSpace(query)) throw new CliInputException("--text: the query is empty");
            if (example is not null && !File.Exists(example)) throw new CliInputException($"--image {example}: no such file");
            int count = parse.GetValue(k);
            if (count <= 0) throw new CliInputException($"--k must be positive, got {count}");
            using var searcher = ClipIndexSearcher.Open(folder, new ClipIndexSearchOptions { Model = parse.GetValue(model) });
            var results = query is not null ? searcher.SearchText(query, count) : searcher.SearchImage(example!, count);
            Console.Out.Write(parse.GetValue(json) ? ToJson(results) + "\n" : Table(results));
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>The JSON array of <c>clip search --json</c> (and of the server's <c>/api/search</c>).</summary>
    internal static string ToJson(IReadOnlyList<ClipSearchResult> results) => Serve.SearchJson.Write(results);

    private static string Table(IReadOnlyList<ClipSearchResult> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("rank  score    path  caption");
        foreach (var r in results)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{r.Rank,4}  {r.Score,7:F4}  {r.Path}  {r.Caption ?? ""}"));
        return sb.ToString();
    }

    private static int Bench(long vectors, int dim, int batch, int? threads, bool json)
    {
        if (vectors <= 0) throw new CliInputException($"--vectors must be positive, got {vectors}");
        if (dim <= 0) throw new CliInputException($"--dim must be positive, got {dim}");
        if (batch <= 0) throw new CliInputException($"--batch must be positive, got {batch}");
        if (vectors * dim * 2 > 64L << 30) throw new CliInputException($"--vectors {vectors} x --dim {dim}: {vectors * dim * 2L >> 30} GiB of float16, more than the 64 GiB the benchmark allocates");
        var r = ClipSearchBenchmark.Run(vectors, dim, batch, threads: threads ?? 0);
        if (json)
        {
            var o = new Dictionary<string, object>
            {
                ["vectors"] = r.Vectors, ["dim"] = r.Dimension, ["batch"] = r.Batch, ["threads"] = r.Threads, ["dtype"] = "float16 rows, float32 arithmetic",
                ["vectors_per_s_1"] = Math.Round(r.VectorsPerSecondOne), ["vectors_per_s_batch"] = Math.Round(r.VectorsPerSecondBatch),
                ["read_gb_per_s"] = Math.Round(r.ReadGBps, 2), ["gemm_gflops_fp32"] = Math.Round(r.GemmGflops, 1), ["scan_gemm_gflops_fp32"] = Math.Round(r.ScanGemmGflops, 1),
                ["bound_1"] = Math.Round(r.ReadBoundOne), ["bound_batch"] = Math.Round(r.BoundBatch),
                ["efficiency_1"] = Math.Round(r.EfficiencyOne, 3), ["efficiency_batch"] = Math.Round(r.EfficiencyBatch, 3),
                ["cpu"] = CpuName(),
            };
            Console.Out.WriteLine(JsonSerializer.Serialize(o));
            return ExitCodes.Ok;
        }
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
            scan of {r.Vectors} x {r.Dimension} float16 vectors, {r.Threads} threads ({CpuName()})
              memory read rate        {r.ReadGBps,10:F2} GB/s   -> {r.ReadBoundOne / 1e6,8:F2} M vectors/s at {2 * r.Dimension} bytes/vector
              GEMM rate (float32)     {r.GemmGflops,10:F1} GFLOP/s -> {r.GemmGflops * 1e9 / (2.0 * r.Batch * r.Dimension) / 1e6,8:F2} M vectors/s for {r.Batch} queries
              the scan's product      {r.ScanGemmGflops,10:F1} GFLOP/s ({r.Batch} x {r.Dimension} times {r.Dimension} x 4096, float32)
              1 query                 {r.VectorsPerSecondOne / 1e6,10:F2} M vectors/s  ({r.EfficiencyOne:P0} of the read bound)
              {r.Batch} queries              {r.VectorsPerSecondBatch / 1e6,10:F2} M vectors/s  ({r.VectorsPerSecondBatch * r.Batch / 1e6,8:F1} M query-vector scores/s; {r.EfficiencyBatch:P0} of min(read, GEMM) bound)
            """));
        return ExitCodes.Ok;
    }

    private static string CpuName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?[(line.IndexOf(':') + 1)..].Trim() ?? "unknown CPU";
        }
        catch (IOException) { return "unknown CPU"; }
    }
}
