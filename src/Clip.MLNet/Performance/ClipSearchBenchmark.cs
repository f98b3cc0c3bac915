using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Clip.MLNet.Search;
using static TorchSharp.torch;

namespace Clip.MLNet.Performance;

/// <summary>What <see cref="ClipSearchBenchmark.Run"/> measured: the search scan beside the machine's read and GEMM rates.</summary>
/// <param name="Vectors">Rows scanned (synthetic float16 vectors, unit length).</param>
/// <param name="Dimension">Values per row.</param>
/// <param name="Batch">Queries of the batched measurement.</param>
/// <param name="Threads">Scan threads.</param>
/// <param name="VectorsPerSecondOne">Rows scanned per second for one query (best of the repeats).</param>
/// <param name="VectorsPerSecondBatch">Rows scanned per second for <paramref name="Batch"/> queries at once.</param>
/// <param name="ReadGBps">The memory read rate (GB/s, 10⁹ bytes): a SIMD sum over a buffer larger than the caches, same threads.</param>
/// <param name="GemmGflops">The float32 matrix-product rate (GFLOP/s) of libtorch (the scan's dtype once converted), best of square 1024 and 2048.</param>
/// <param name="ScanGemmGflops">The rate of the scan's own product (batch x dimension times dimension x 4096 rows), for comparison with the square one.</param>
/// <param name="ReadBoundOne">Read rate / bytes per row: the ceiling for one query.</param>
/// <param name="BoundBatch">min(read rate / bytes per row, GEMM rate / (2 x batch x dimension)): the ceiling for the batch.</param>
public sealed record ClipSearchBenchmarkResult(long Vectors, int Dimension, int Batch, int Threads, double VectorsPerSecondOne, double VectorsPerSecondBatch,
    double ReadGBps, double GemmGflops, double ScanGemmGflops, double ReadBoundOne, double BoundBatch)
{
    /// <summary>VectorsPerSecondOne / ReadBoundOne (the goal is at least 0.5).</summary>
    public double EfficiencyOne => VectorsPerSecondOne / ReadBoundOne;

    /// <summary>VectorsPerSecondBatch / BoundBatch (the goal is at least 0.5).</summary>
    public double EfficiencyBatch => VectorsPerSecondBatch / BoundBatch;
}

/// <summary><c>clip search --bench</c>: the exact scan of <see cref="ClipIndexSearcher"/> over synthetic float16 vectors in memory.</summary>
public static class ClipSearchBenchmark
{
    /// <summary>Runs the scan for one query and a batch over <paramref name="vectors"/> x <paramref name="dimension"/> float16 rows, and measures the machine's rates.</summary>
    public static unsafe ClipSearchBenchmarkResult Run(long vectors, int dimension, int batch = 64, int k = 10, int threads = 0, int repeats = 3)
    {
        if (vectors <= 0) throw new ArgumentOutOfRangeException(nameof(vectors), vectors, "the vector count must be positive");
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "the dimension must be positive");
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch must be positive");
        if (threads <= 0) threads = Environment.ProcessorCount;
        long count = vectors * dimension;
        var data = (Half*)NativeMemory.AlignedAlloc((nuint)(count * 2), 64);
        try
        {
            // Random unit-ish rows (values of one row share a scale): a quick generator, filled in parallel.
            Parallel.For(0, threads, t =>
            {
                long from = count * t / threads, to = count * (t + 1) / threads;
                ulong state = 0x9E3779B97F4A7C15UL * (ulong)(t + 1);
                float scale = 1f / MathF.Sqrt(dimension) * 1.7f;
                for (long i = from; i < to; i++)
                {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                    data[i] = (Half)(((state >> 40) / (float)(1 << 24) - 0.5f) * 2f * scale);
                }
            });
            var segments = new[] { new EmbeddingSegment(data, vectors, 0) };
            var random = new Random(7);
            float[] Queries(int q) => Enumerable.Range(0, q * dimension).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            double Best(int q)
            {
                var queries = Queries(q);
                EmbeddingScan.Scan(segments, queries, q, dimension, k, threads); // warm-up
                double best = double.MaxValue;
                for (int r = 0; r < repeats; r++)
                {
                    var sw = Stopwatch.StartNew();
                    EmbeddingScan.Scan(segments, queries, q, dimension, k, threads);
                    best = Math.Min(best, sw.Elapsed.TotalSeconds);
                }
                return vectors / best;
            }
            double one = Best(1);
            double many = Best(batch);
            double read = ReadGBps(threads, repeats);
            double gemm = Math.Max(ClipBenchmark.GemmGflops(1024, ScalarType.Float32, CPU, 0.5), ClipBenchmark.GemmGflops(2048, ScalarType.Float32, CPU, 1));
            double scanGemm = ScanShapeGflops(batch, dimension);
            double bytesPerRow = 2.0 * dimension;
            double readBound = read * 1e9 / bytesPerRow;
            double gemmBound = gemm * 1e9 / (2.0 * batch * dimension);
            return new ClipSearchBenchmarkResult(vectors, dimension, batch, threads, one, many, read, gemm, scanGemm, readBound, Math.Min(readBound, gemmBound));
        }
        finally
        {
            NativeMemory.AlignedFree(data);
        }
    }

    /// <summary>GFLOP/s of the scan's product shape: [batch, d] x [d, rows], best of 20.</summary>
    private static double ScanShapeGflops(int batch, int d)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var queries = randn(batch, d);
        var block = randn(EmbeddingScan.GemmRows, d);
        var t = block.t();
        queries.mm(t).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            queries.mm(t).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * batch * d * EmbeddingScan.GemmRows / best / 1e9;
    }

    /// <summary>The memory read rate in GB/s: SIMD sums over a 512 MiB buffer on <paramref name="threads"/> threads, best of the repeats.</summary>
    public static unsafe double ReadGBps(int threads, int repeats = 3)
    {
        const long bytes = 512L << 20;
        long floats = bytes / 4;
        var buffer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            Parallel.For(0, threads, t =>
            {
                long from = floats * t / threads, to = floats * (t + 1) / threads;
                new Span<float>(buffer + from, (int)(to - from)).Fill(1f);
            });
            double best = double.MaxValue;
            var sums = new float[threads];
            for (int r = 0; r < repeats + 1; r++)
            {
                var sw = Stopwatch.StartNew();
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    long from = floats * t / threads, to = floats * (t + 1) / threads;
                    float s = 0;
                    for (long i = from; i < to; i += 1 << 20)
                        s += TensorPrimitives.Sum(new ReadOnlySpan<float>(buffer + i, (int)Math.Min(1 << 20, to - i)));
                    sums[t] = s;
                });
                if (r > 0) best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            GC.KeepAlive(sums);
            return bytes / best / 1e9;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }
}
