using System.Diagnostics;
using Clip.MLNet.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>Settings of <see cref="ClipBenchmark.Run"/>.</summary>
public sealed class ClipBenchmarkOptions
{
    /// <summary>Items per forward pass (default 32).</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Seconds of timed batches per tower, after warm-up (default 10); at least <see cref="MinBatches"/> run.</summary>
    public double Seconds { get; set; } = 10;

    /// <summary>Timed batches per tower at least (default 3).</summary>
    public int MinBatches { get; set; } = 3;

    /// <summary>Untimed batches before timing each tower (default 2: the first calls build kernels and caches).</summary>
    public int WarmupBatches { get; set; } = 2;

    /// <summary>
    /// Token positions of each benchmark text, start and end tokens included (the rest is padding);
    /// the model's context length when null. When shorter than the context, the text tower is also
    /// timed padded to the full context with trimming off, for comparison.
    /// </summary>
    public int? TextTokens { get; set; }

    /// <summary>Seconds spent timing each GEMM size, before and after the towers (default 1; at least 3 products each).</summary>
    public double GemmSeconds { get; set; } = 1;

    /// <summary>Run the image tower (default true).</summary>
    public bool Images { get; set; } = true;

    /// <summary>Run the text tower (default true).</summary>
    public bool Texts { get; set; } = true;

    /// <summary>Seed of the random inputs (default 0).</summary>
    public long Seed { get; set; }

    /// <summary>
    /// Times every measurement is repeated (default 3): GEMM rates, images/s and texts/s are each the median
    /// of these runs, and every run's value is reported (<see cref="ClipBenchmarkResult.ImagesPerSecondRuns"/>, ...).
    /// </summary>
    public int Runs { get; set; } = 3;

    /// <summary>Time one image batch and one text batch by part (<see cref="ClipBenchmarkResult.ImageParts"/>; default true).</summary>
    public bool Parts { get; set; } = true;
}

/// <summary>
/// Seconds of one batch through a tower, split by part: measured by timing the tower's modules during one
/// extra batch (the median of three by total time), after the timed batches. <see cref="Rest"/> is the
/// total less the named parts (embeddings, residual adds, pooling, projection, conversions).
/// </summary>
public sealed record ClipBenchmarkParts
{
    /// <summary>The patch convolution (0 for the text tower and convolutional towers).</summary>
    public double PatchEmbedding { get; init; }
    /// <summary>Self-attention blocks: qkv projection, scores, softmax, output projection.</summary>
    public double Attention { get; init; }
    /// <summary>MLP blocks: both matrix products and the activation.</summary>
    public double Mlp { get; init; }
    /// <summary>LayerNorms outside attention and MLP.</summary>
    public double Norms { get; init; }
    /// <summary>Everything else: <see cref="Total"/> less the parts above.</summary>
    public double Rest { get; init; }
    /// <summary>The whole batch.</summary>
    public double Total { get; init; }
}

/// <summary>What <see cref="ClipBenchmark.Run"/> measured. Rates are items per second from the median batch time.</summary>
public sealed record ClipBenchmarkResult
{
    /// <summary>Images per second (batch size ÷ median batch time); 0 when the image tower was not run.</summary>
    public double ImagesPerSecond { get; init; }
    /// <summary>Images per second over all timed batches (total items ÷ total time).</summary>
    public double ImagesPerSecondMean { get; init; }
    /// <summary>Texts per second at <see cref="TextTokens"/> positions (trimmed as the model is set).</summary>
    public double TextsPerSecond { get; init; }
    /// <summary>Texts per second for the same texts padded to the full context with trimming off; null when the texts fill the context.</summary>
    public double? TextsPerSecondPadded { get; init; }
    /// <summary>Token positions of each benchmark text (start and end included).</summary>
    public int TextTokens { get; init; }
    /// <summary>The model's context length.</summary>
    public int ContextLength { get; init; }
    /// <summary>GFLOP per image (<see cref="ClipFlops.ImageGflop"/>).</summary>
    public double ImageGflopPerItem { get; init; }
    /// <summary>GFLOP per text at the positions run.</summary>
    public double TextGflopPerItem { get; init; }
    /// <summary>GFLOP per text padded to the context (what the untrimmed comparison runs); null without it.</summary>
    public double? TextGflopPerItemPadded { get; init; }
    /// <summary>The best square matrix-product rate, GFLOP/s, in the compute dtype on the same device and threads.</summary>
    public double GemmGflops { get; init; }
    /// <summary>Best rate of the 1024 × 1024 product.</summary>
    public double Gemm1024Gflops { get; init; }
    /// <summary>Best rate of the 2048 × 2048 product.</summary>
    public double Gemm2048Gflops { get; init; }
    /// <summary><see cref="ImagesPerSecond"/> × <see cref="ImageGflopPerItem"/> ÷ <see cref="GemmGflops"/>.</summary>
    public double ImageEfficiency { get; init; }
    /// <summary><see cref="TextsPerSecond"/> × <see cref="TextGflopPerItem"/> ÷ <see cref="GemmGflops"/>.</summary>
    public double TextEfficiency { get; init; }
    /// <summary>The compute dtype: fp32, bf16 or fp16.</summary>
    public string Precision { get; init; } = "";
    /// <summary>Items per forward pass.</summary>
    public int Batch { get; init; }
    /// <summary>libtorch intra-op threads during the run.</summary>
    public int Threads { get; init; }
    /// <summary>The device, as libtorch names it (<c>cpu</c>, <c>cuda:0</c>).</summary>
    public string Device { get; init; } = "";
    /// <summary>Timed image batches.</summary>
    public int ImageBatches { get; init; }
    /// <summary>Timed text batches (at <see cref="TextTokens"/>).</summary>
    public int TextBatches { get; init; }
    /// <summary>Whether the CPU reports AMX (the <c>amx_bf16</c> or <c>amx_tile</c> flag in <c>/proc/cpuinfo</c>; false elsewhere).</summary>
    public bool Amx { get; init; }
    /// <summary>How many times each rate was measured; the rates above are the medians.</summary>
    public int Runs { get; init; } = 1;
    /// <summary>Images per second of each run (empty when the image tower was not run).</summary>
    public IReadOnlyList<double> ImagesPerSecondRuns { get; init; } = Array.Empty<double>();
    /// <summary>Texts per second of each run at <see cref="TextTokens"/>.</summary>
    public IReadOnlyList<double> TextsPerSecondRuns { get; init; } = Array.Empty<double>();
    /// <summary>Padded texts per second of each run; empty without the comparison.</summary>
    public IReadOnlyList<double> TextsPerSecondPaddedRuns { get; init; } = Array.Empty<double>();
    /// <summary>The 1024 × 1024 product's rate in each run (best of before and after that run's towers).</summary>
    public IReadOnlyList<double> Gemm1024GflopsRuns { get; init; } = Array.Empty<double>();
    /// <summary>The 2048 × 2048 product's rate in each run (best of before and after that run's towers).</summary>
    public IReadOnlyList<double> Gemm2048GflopsRuns { get; init; } = Array.Empty<double>();
    /// <summary>One image batch split by part; null when not measured.</summary>
    public ClipBenchmarkParts? ImageParts { get; init; }
    /// <summary>One text batch (at <see cref="TextTokens"/>) split by part; null when not measured.</summary>
    public ClipBenchmarkParts? TextParts { get; init; }
    /// <summary>The CPU attention choices the towers used in this dtype (empty on other devices and for fp16).</summary>
    internal IReadOnlyList<CpuAttentionChoice> CpuAttentionChoices { get; init; } = Array.Empty<CpuAttentionChoice>();
}

/// <summary>
/// Throughput of a model's towers on random inputs, beside the machine's own matrix-product rate in
/// the same dtype, device and thread count, measured in the same run: their ratio
/// (<see cref="ClipBenchmarkResult.ImageEfficiency"/>) says how close the model runs to what the
/// hardware does for a plain GEMM, and holds up better than raw rates on a shared machine. Used by
/// <c>clip bench</c>.
/// </summary>
public static class ClipBenchmark
{
    /// <summary>The short name of a compute dtype: fp32, bf16, fp16.</summary>
    public static string PrecisionName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "fp32",
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        _ => dtype.ToString(),
    };

    /// <summary>
    /// The best rate, in GFLOP/s (2n³ per product), of <c>n × n</c> matrix products in <paramref name="dtype"/> on
    /// <paramref name="device"/>, repeated for about <paramref name="seconds"/> (at least 3 times each way). Two ways of
    /// asking libtorch for the product are timed, the best counts: <c>addmm_</c> into a preallocated output, and
    /// <c>linear</c> (x·Wᵀ; the only form with a fast CPU kernel for fp16 in libtorch 2.10).
    /// </summary>
    public static double GemmGflops(int n, ScalarType dtype, Device device, double seconds = 1)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        var generator = new torch.Generator(1234);
        var a = torch.randn(new long[] { n, n }, generator: generator).to(dtype, device);
        var b = torch.randn(new long[] { n, n }, generator: generator).to(dtype, device);
        var c = torch.zeros(new long[] { n, n }, dtype, device);
        double Best(Action product)
        {
            product();
            Synchronize(device);
            double best = double.MaxValue, total = 0;
            for (int i = 0; i < 3 || total < seconds / 2; i++)
            {
                var sw = Stopwatch.StartNew();
                product();
                Synchronize(device);
                double t = sw.Elapsed.TotalSeconds;
                best = Math.Min(best, t);
                total += t;
            }
            return best;
        }
        double inPlace = Best(() => c.addmm_(a, b, beta: 0, alpha: 1));
        double linear = Best(() => { using var r = nn.functional.linear(a, b); });
        return 2.0 * n * n * (double)n / Math.Min(inPlace, linear) / 1e9;
    }

    /// <summary>Times the model's towers on random inputs and the GEMM rate of the same dtype, device and threads.</summary>
    /// <param name="model">The model, already at its device and precision; its <see cref="ClipModel.TrimText"/> is restored afterwards.</param>
    /// <param name="options">Batch size, duration, text length; defaults when null.</param>
    /// <param name="progress">Called with a short line as each phase starts (null: silent).</param>
    public static ClipBenchmarkResult Run(ClipModel model, ClipBenchmarkOptions? options = null, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ClipBenchmarkOptions();
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), "BatchSize must be positive.");
        if (options.Seconds < 0 || double.IsNaN(options.Seconds)) throw new ArgumentOutOfRangeException(nameof(options), "Seconds must not be negative.");
        int context = model.ContextLength;
        int textTokens = options.TextTokens ?? context;
        if (textTokens < 2 || textTokens > context)
            throw new ArgumentOutOfRangeException(nameof(options), $"TextTokens must be 2..{context} (start and end tokens included), got {textTokens}.");
        var config = model.Config;
        var device = model.Device;
        var dtype = model.ComputeType;
        int batch = options.BatchSize;

        if (options.Runs <= 0) throw new ArgumentOutOfRangeException(nameof(options), "Runs must be positive.");
        int runs = options.Runs;
        var g1024Runs = new List<double>();
        var g2048Runs = new List<double>();
        var imageRuns = new List<double>();
        var imageMeans = new List<double>();
        var textRuns = new List<double>();
        var paddedRuns = new List<double>();
        int imageBatches = 0, textBatches = 0;
        using var pixels = torch.randn(new long[] { batch, 3, model.ImageResolution, model.ImageResolution }, generator: new torch.Generator((ulong)options.Seed));
        using var tokens = RandomTokens(batch, textTokens, context, config.VocabSize, options.Seed);
        for (int run = 0; run < runs; run++)
        {
            string of = runs > 1 ? $" (run {run + 1} of {runs})" : "";
            // GEMM before and after the towers; the best of the two, so that a busy moment does not inflate efficiency.
            progress?.Invoke($"GEMM rate ({PrecisionName(dtype)}, {torch.get_num_threads()} threads){of}");
            double g1024 = GemmGflops(1024, dtype, device, options.GemmSeconds / 2), g2048 = GemmGflops(2048, dtype, device, options.GemmSeconds);
            if (options.Images)
            {
                progress?.Invoke($"image tower, batch {batch}{of}");
                var (median, mean, n) = TimeBatches(() => model.EncodeImage(pixels), batch, device, options);
                imageRuns.Add(median);
                imageMeans.Add(mean);
                imageBatches += n;
            }
            if (options.Texts)
            {
                progress?.Invoke($"text tower, batch {batch}, {textTokens} tokens{of}");
                var (median, _, n) = TimeBatches(() => model.EncodeText(tokens), batch, device, options);
                textRuns.Add(median);
                textBatches += n;
                if (textTokens < context)
                {
                    progress?.Invoke($"text tower, batch {batch}, padded to {context} tokens, untrimmed{of}");
                    bool trim = model.TrimText;
                    try
                    {
                        model.TrimText = false;
                        paddedRuns.Add(TimeBatches(() => model.EncodeText(tokens), batch, device, options).Median);
                    }
                    finally
                    {
                        model.TrimText = trim;
                    }
                }
            }
            progress?.Invoke($"GEMM rate again{of}");
            g1024Runs.Add(Math.Max(g1024, GemmGflops(1024, dtype, device, options.GemmSeconds / 2)));
            g2048Runs.Add(Math.Max(g2048, GemmGflops(2048, dtype, device, options.GemmSeconds)));
        }

        ClipBenchmarkParts? imageParts = null, textParts = null;
        if (options.Parts)
        {
            progress?.Invoke("one image batch and one text batch by part");
            if (options.Images) imageParts = TimeParts(() => model.EncodeImage(pixels), device);
            if (options.Texts) textParts = TimeParts(() => model.EncodeText(tokens), device);
        }

        double imagesPerSecond = options.Images ? Median(imageRuns) : 0;
        double textsPerSecond = options.Texts ? Median(textRuns) : 0;
        double? textsPadded = paddedRuns.Count > 0 ? Median(paddedRuns) : null;
        double g1024m = Median(g1024Runs), g2048m = Median(g2048Runs);
        double gemm = Math.Max(g1024m, g2048m);
        double imageGflop = ClipFlops.ImageGflop(config);
        double textGflop = ClipFlops.TextGflop(config, model.TrimText ? textTokens : context);
        return new ClipBenchmarkResult
        {
            ImagesPerSecond = imagesPerSecond,
            ImagesPerSecondMean = options.Images ? Median(imageMeans) : 0,
            TextsPerSecond = textsPerSecond,
            TextsPerSecondPadded = textsPadded,
            TextTokens = textTokens,
            ContextLength = context,
            ImageGflopPerItem = imageGflop,
            TextGflopPerItem = textGflop,
            TextGflopPerItemPadded = textsPadded is null ? null : ClipFlops.TextGflop(config, context),
            GemmGflops = gemm,
            Gemm1024Gflops = g1024m,
            Gemm2048Gflops = g2048m,
            ImageEfficiency = imagesPerSecond * imageGflop / gemm,
            TextEfficiency = textsPerSecond * textGflop / gemm,
            Precision = PrecisionName(dtype),
            Batch = batch,
            Threads = torch.get_num_threads(),
            Device = device.ToString(),
            ImageBatches = imageBatches,
            TextBatches = textBatches,
            Amx = HasAmx(),
            Runs = runs,
            ImagesPerSecondRuns = imageRuns,
            TextsPerSecondRuns = textRuns,
            TextsPerSecondPaddedRuns = paddedRuns,
            Gemm1024GflopsRuns = g1024Runs,
            Gemm2048GflopsRuns = g2048Runs,
            ImageParts = imageParts,
            TextParts = textParts,
            CpuAttentionChoices = device.type == DeviceType.CPU ? CpuAttention.Made.Where(c => c.DType == dtype).ToList() : Array.Empty<CpuAttentionChoice>(),
        };
    }

    /// <summary>Whether <c>/proc/cpuinfo</c> lists the <c>amx_bf16</c> or <c>amx_tile</c> flag (false where it cannot be read).</summary>
    public static bool HasAmx() => Native.CpuInfo.Flags.Contains("amx_bf16") || Native.CpuInfo.Flags.Contains("amx_tile");

    internal static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>Three batches with the modules' part timers on; the one of median total time, split by part.</summary>
    private static ClipBenchmarkParts TimeParts(Func<Tensor> run, Device device)
    {
        var measured = new List<(double Total, double[] Parts)>();
        for (int i = 0; i < 3; i++)
        {
            double total = 0;
            var parts = PartTimes.Record(() =>
            {
                var sw = Stopwatch.StartNew();
                using (var result = run()) Synchronize(device);
                total = sw.Elapsed.TotalSeconds;
            }, device);
            measured.Add((total, parts));
        }
        var (t, p) = measured.OrderBy(m => m.Total).ElementAt(1);
        return new ClipBenchmarkParts
        {
            PatchEmbedding = p[(int)ModelPart.PatchEmbedding],
            Attention = p[(int)ModelPart.Attention],
            Mlp = p[(int)ModelPart.Mlp],
            Norms = p[(int)ModelPart.Norm],
            Rest = Math.Max(0, t - p.Sum()),
            Total = t,
        };
    }

    /// <summary>
    /// Token ids <c>[batch, context]</c>: start token, random word ids, end token at position
    /// <paramref name="tokens"/> − 1 (the largest id, as CLIP's pooling expects), zeros after.
    /// </summary>
    internal static Tensor RandomTokens(int batch, int tokens, int context, int vocabSize, long seed)
    {
        long eot = vocabSize - 1, sot = vocabSize - 2;
        var ids = new long[batch * context];
        var random = new Random((int)seed);
        for (int r = 0; r < batch; r++)
        {
            var row = ids.AsSpan(r * context, context);
            row[0] = sot;
            for (int i = 1; i < tokens - 1; i++) row[i] = random.NextInt64(1, Math.Max(2, sot));
            row[tokens - 1] = eot;
        }
        return torch.tensor(ids, new long[] { batch, context });
    }

    private static (double Median, double Mean, int Batches) TimeBatches(Func<Tensor> run, int batch, Device device, ClipBenchmarkOptions options)
    {
        for (int i = 0; i < options.WarmupBatches; i++)
        {
            using var warm = run();
            Synchronize(device);
        }
        var times = new List<double>();
        double total = 0;
        while (times.Count < Math.Max(1, options.MinBatches) || total < options.Seconds)
        {
            var sw = Stopwatch.StartNew();
            using (var result = run()) Synchronize(device);
            double t = sw.Elapsed.TotalSeconds;
            times.Add(t);
            total += t;
        }
        times.Sort();
        int n = times.Count;
        double median = n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
        return (batch / median, batch * n / total, n);
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }
}
