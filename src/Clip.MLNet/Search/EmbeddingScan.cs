using System.IO.MemoryMappedFiles;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;
using Clip.MLNet.Indexing;
using static TorchSharp.torch;

namespace Clip.MLNet.Search;

/// <summary>One float16 embedding file mapped into the address space (read-only): nothing is copied into managed memory.</summary>
internal sealed unsafe class MappedEmbeddings : IDisposable
{
    private readonly MemoryMappedFile? file;
    private readonly MemoryMappedViewAccessor? view;
    private byte* pointer;

    public MappedEmbeddings(string path, int expectedColumns)
    {
        Path = path;
        var info = NpyFile.ReadInfo(path); // refuses a file shorter than its header says
        if (info.Descr != "<f2") throw new InvalidDataException($"{path}: {info.Descr} embeddings, the searcher reads float16 (<f2) files");
        if (info.Columns != expectedColumns) throw new InvalidDataException($"{path}: rows of {info.Columns} values, index.json says embedding_dim {expectedColumns}");
        Rows = info.Rows;
        Columns = (int)info.Columns;
        if (Rows == 0) return;
        file = MemoryMappedFile.CreateFromFile(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete),
            null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        Data = (Half*)(pointer + view.PointerOffset + info.DataOffset);
    }

    public string Path { get; }
    public long Rows { get; }
    public int Columns { get; }
    public Half* Data { get; }

    public void Dispose()
    {
        if (pointer != null) { view!.SafeMemoryMappedViewHandle.ReleasePointer(); pointer = null; }
        view?.Dispose();
        file?.Dispose();
    }
}

/// <summary>A run of float16 rows in memory (a mapped partition, or a benchmark's buffer) and the id of its first row.</summary>
internal readonly unsafe struct EmbeddingSegment(Half* data, long rows, long firstId)
{
    public Half* Data { get; } = data;
    public long Rows { get; } = rows;
    public long FirstId { get; } = firstId;
}

/// <summary>The k best (score, id) pairs seen so far: a min-heap on the score, ties broken towards the smaller id.</summary>
internal sealed class TopK(int k)
{
    private readonly float[] scores = new float[k];
    private readonly long[] ids = new long[k];
    private int count;

    /// <summary>The score a candidate must beat (negative infinity until the heap is full).</summary>
    public float Threshold => count < k ? float.NegativeInfinity : scores[0];

    public void Add(float score, long id)
    {
        if (count < k)
        {
            int i = count++;
            scores[i] = score; ids[i] = id;
            while (i > 0)
            {
                int parent = (i - 1) / 2;
                if (!Worse(i, parent)) break;
                Swap(i, parent);
                i = parent;
            }
            return;
        }
        if (!(score > scores[0] || (score == scores[0] && id < ids[0]))) return;
        scores[0] = score; ids[0] = id;
        int j = 0;
        while (true)
        {
            int l = 2 * j + 1, r = l + 1, m = j;
            if (l < count && Worse(l, m)) m = l;
            if (r < count && Worse(r, m)) m = r;
            if (m == j) break;
            Swap(j, m);
            j = m;
        }
    }

    public void AddAll(TopK other)
    {
        for (int i = 0; i < other.count; i++) Add(other.scores[i], other.ids[i]);
    }

    /// <summary>The pairs, best first (higher score; equal scores by smaller id).</summary>
    public (float Score, long Id)[] Sorted()
    {
        var list = new (float Score, long Id)[count];
        for (int i = 0; i < count; i++) list[i] = (scores[i], ids[i]);
        Array.Sort(list, (a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Id.CompareTo(b.Id));
        return list;
    }

    private bool Worse(int a, int b) => scores[a] < scores[b] || (scores[a] == scores[b] && ids[a] > ids[b]);

    private void Swap(int a, int b)
    {
        (scores[a], scores[b]) = (scores[b], scores[a]);
        (ids[a], ids[b]) = (ids[b], ids[a]);
    }
}

/// <summary>
/// Exact top-k by inner product over float16 rows, streamed block by block. Up to <see cref="DotQueries"/> queries: each
/// worker converts a few rows to float32 in a buffer that stays in L1 and takes SIMD dot products (bound by reading the
/// rows). More queries: blocks of rows converted to float32 and one libtorch matrix product per block (bound by arithmetic).
/// </summary>
internal static unsafe class EmbeddingScan
{
    /// <summary>At most this many queries are scored with dot products; more go through a matrix product per block.</summary>
    public const int DotQueries = 4;

    private const int DotRows = 16;        // 16 x 512 float32 = 32 KiB
    private const int DotUnitRows = 4096;  // rows a worker takes at a time
    internal const int GemmRows = 4096;     // 4096 x 512 float32 = 8 MiB, in L3

    /// <summary>Scores <paramref name="queries"/> (<paramref name="q"/> rows of <paramref name="d"/>) against every row of the segments.</summary>
    public static TopK[] Scan(IReadOnlyList<EmbeddingSegment> segments, float[] queries, int q, int d, int k, int threads, CancellationToken cancellation = default)
    {
        if (queries.Length != q * d) throw new ArgumentException($"expected {q} x {d} query values, got {queries.Length}", nameof(queries));
        return q <= DotQueries ? ScanDot(segments, queries, q, d, k, Math.Max(1, threads), cancellation) : ScanGemm(segments, queries, q, d, k, cancellation);
    }

    private static TopK[] ScanDot(IReadOnlyList<EmbeddingSegment> segments, float[] queries, int q, int d, int k, int threads, CancellationToken cancellation)
    {
        var units = Units(segments, DotUnitRows);
        int next = -1;
        var results = new TopK[threads][];
        int width = KernelWidth(d);
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, worker =>
        {
            var tops = new TopK[q];
            for (int j = 0; j < q; j++) tops[j] = new TopK(k);
            var buffer = new float[DotRows * d];
            var scores = new float[DotRows * q];
            int u;
            fixed (float* query = queries)
            fixed (float* score = scores)
            {
                while ((u = Interlocked.Increment(ref next)) < units.Count)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var (segment, start, rows) = units[u];
                    Half* data = segment.Data + start * d;
                    for (long r0 = 0; r0 < rows; r0 += DotRows)
                    {
                        int n = (int)Math.Min(DotRows, rows - r0);
                        if (width == 512) ScoreFused(data + r0 * d, n, d, query, q, score);
                        else if (width == 256) ScoreFused256(data + r0 * d, n, d, query, q, score);
                        else ScoreConverted(data + r0 * d, n, d, queries, q, buffer, scores);
                        long first = segment.FirstId + start + r0;
                        for (int i = 0; i < n; i++)
                            for (int j = 0; j < q; j++)
                            {
                                float value = score[i * q + j];
                                if (value >= tops[j].Threshold) tops[j].Add(value, first + i);
                            }
                    }
                }
            }
            results[worker] = tops;
        });
        return Merge(results, q, k);
    }

    /// <summary>The widest fused kernel for rows of <paramref name="d"/> values on this machine (0: convert, then dot); <see cref="MaxWidth"/> caps it.</summary>
    internal static int KernelWidth(int d)
    {
        if (MaxWidth >= 512 && Vector512.IsHardwareAccelerated && d % 32 == 0) return 512;
        if (MaxWidth >= 256 && Vector256.IsHardwareAccelerated && d % 16 == 0) return 256;
        return 0;
    }

    /// <summary>The widest kernel allowed (tests lower it to run the narrower kernels on any machine).</summary>
    internal static int MaxWidth { get; set; } = 512;

    /// <summary>Scores rows by converting them to float32 in a small buffer, then SIMD dot products (any width).</summary>
    private static void ScoreConverted(Half* rows, int n, int d, float[] queries, int q, float[] buffer, float[] scores)
    {
        TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(rows, n * d), buffer.AsSpan(0, n * d));
        for (int i = 0; i < n; i++)
        {
            var row = new ReadOnlySpan<float>(buffer, i * d, d);
            for (int j = 0; j < q; j++) scores[i * q + j] = TensorPrimitives.Dot(row, new ReadOnlySpan<float>(queries, j * d, d));
        }
    }

    /// <summary>
    /// Scores rows with the float16 to float32 conversion fused into the dot products (AVX-512, 32 values a step, each row
    /// read once for all queries): the magnitude bits shifted into place and scaled by 2^112 (exact for normal and
    /// subnormal halves), the sign put back. Infinities and NaNs, which normalised embeddings do not hold, come out finite.
    /// </summary>
    private static void ScoreFused(Half* rows, int n, int d, float* queries, int q, float* scores)
    {
        var magic = Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000)); // 2^112
        var magnitude = Vector512.Create((uint)0x7FFF);
        var sign = Vector512.Create((uint)0x8000);
        if (q == 1)
        {
            // One query: the accumulators in registers, four independent chains.
            for (int i = 0; i < n; i++)
            {
                ushort* row = (ushort*)(rows + (long)i * d);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                int c = 0;
                for (; c + 64 <= d; c += 64)
                {
                    var (l0, h0) = Vector512.Widen(Vector512.Load(row + c));
                    var (l1, h1) = Vector512.Widen(Vector512.Load(row + c + 32));
                    a0 = Vector512.FusedMultiplyAdd(ToSingle(l0, magnitude, sign, magic), Vector512.Load(queries + c), a0);
                    a1 = Vector512.FusedMultiplyAdd(ToSingle(h0, magnitude, sign, magic), Vector512.Load(queries + c + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(ToSingle(l1, magnitude, sign, magic), Vector512.Load(queries + c + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(ToSingle(h1, magnitude, sign, magic), Vector512.Load(queries + c + 48), a3);
                }
                for (; c < d; c += 32)
                {
                    var (l0, h0) = Vector512.Widen(Vector512.Load(row + c));
                    a0 = Vector512.FusedMultiplyAdd(ToSingle(l0, magnitude, sign, magic), Vector512.Load(queries + c), a0);
                    a1 = Vector512.FusedMultiplyAdd(ToSingle(h0, magnitude, sign, magic), Vector512.Load(queries + c + 16), a1);
                }
                scores[i] = Vector512.Sum((a0 + a1) + (a2 + a3));
            }
            return;
        }
        // Several queries: the same four chains per query, in the same order, so each query's score is the one it gets alone.
        Vector512<float>* accumulators = stackalloc Vector512<float>[4 * DotQueries];
        for (int i = 0; i < n; i++)
        {
            ushort* row = (ushort*)(rows + (long)i * d);
            for (int j = 0; j < 4 * q; j++) accumulators[j] = Vector512<float>.Zero;
            int c = 0;
            for (; c + 64 <= d; c += 64)
            {
                var (l0, h0) = Vector512.Widen(Vector512.Load(row + c));
                var (l1, h1) = Vector512.Widen(Vector512.Load(row + c + 32));
                var v0 = ToSingle(l0, magnitude, sign, magic);
                var v1 = ToSingle(h0, magnitude, sign, magic);
                var v2 = ToSingle(l1, magnitude, sign, magic);
                var v3 = ToSingle(h1, magnitude, sign, magic);
                AddPair(accumulators, 0, queries, q, d, c, v0, v1);
                AddPair(accumulators, 2, queries, q, d, c + 32, v2, v3);
            }
            for (; c < d; c += 32)
            {
                var (l0, h0) = Vector512.Widen(Vector512.Load(row + c));
                AddPair(accumulators, 0, queries, q, d, c, ToSingle(l0, magnitude, sign, magic), ToSingle(h0, magnitude, sign, magic));
            }
            for (int j = 0; j < q; j++)
            {
                Vector512<float>* a = accumulators + 4 * j;
                scores[i * q + j] = Vector512.Sum((a[0] + a[1]) + (a[2] + a[3]));
            }
        }
    }

    /// <summary>
    /// For each of the <paramref name="q"/> queries, adds <paramref name="v0"/> × its values at <paramref name="c"/> and
    /// <paramref name="v1"/> × those at <paramref name="c"/> + 16 into its accumulators <paramref name="first"/> and
    /// <paramref name="first"/> + 1 (four a query). Each chain sees the same products in the same order as a single query's.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void AddPair(Vector512<float>* accumulators, int first, float* queries, int q, int d, int c, Vector512<float> v0, Vector512<float> v1)
    {
        for (int j = 0; j < q; j++)
        {
            float* query = queries + (long)j * d + c;
            Vector512<float>* a = accumulators + 4 * j + first;
            a[0] = Vector512.FusedMultiplyAdd(v0, Vector512.Load(query), a[0]);
            a[1] = Vector512.FusedMultiplyAdd(v1, Vector512.Load(query + 16), a[1]);
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ToSingle(Vector512<uint> halves, Vector512<uint> magnitude, Vector512<uint> sign, Vector512<float> magic) =>
        ((Vector512.ShiftLeft(halves & magnitude, 13).AsSingle() * magic).AsUInt32() | Vector512.ShiftLeft(halves & sign, 16)).AsSingle();

    /// <summary><see cref="ScoreFused"/> with 256-bit vectors (AVX2 machines, and those where .NET prefers 256 bits).</summary>
    private static void ScoreFused256(Half* rows, int n, int d, float* queries, int q, float* scores)
    {
        var magic = Vector256.Create(BitConverter.UInt32BitsToSingle(0x77800000)); // 2^112
        var magnitude = Vector256.Create((uint)0x7FFF);
        var sign = Vector256.Create((uint)0x8000);
        Vector256<float>* accumulators = stackalloc Vector256<float>[2 * DotQueries];
        for (int i = 0; i < n; i++)
        {
            ushort* row = (ushort*)(rows + (long)i * d);
            for (int j = 0; j < 2 * q; j++) accumulators[j] = Vector256<float>.Zero;
            for (int c = 0; c < d; c += 16)
            {
                var (low, high) = Vector256.Widen(Vector256.Load(row + c));
                var lo = (Vector256.ShiftLeft(low & magnitude, 13).AsSingle() * magic).AsUInt32() | Vector256.ShiftLeft(low & sign, 16);
                var hi = (Vector256.ShiftLeft(high & magnitude, 13).AsSingle() * magic).AsUInt32() | Vector256.ShiftLeft(high & sign, 16);
                for (int j = 0; j < q; j++)
                {
                    float* query = queries + (long)j * d + c;
                    accumulators[2 * j] = Vector256.FusedMultiplyAdd(lo.AsSingle(), Vector256.Load(query), accumulators[2 * j]);
                    accumulators[2 * j + 1] = Vector256.FusedMultiplyAdd(hi.AsSingle(), Vector256.Load(query + 8), accumulators[2 * j + 1]);
                }
            }
            for (int j = 0; j < q; j++) scores[i * q + j] = Vector256.Sum(accumulators[2 * j] + accumulators[2 * j + 1]);
        }
    }

    private static TopK[] ScanGemm(IReadOnlyList<EmbeddingSegment> segments, float[] queries, int q, int d, int k, CancellationToken cancellation)
    {
        var tops = new TopK[q];
        for (int j = 0; j < q; j++) tops[j] = new TopK(k);
        using var scope = NewDisposeScope();
        using var queryMatrix = tensor(queries, [q, d]);
        using var block = empty([GemmRows, d], ScalarType.Float32);
        var blockValues = MemoryMarshal.Cast<byte, float>(block.bytes);
        var units = Units(segments, GemmRows);
        foreach (var (segment, start, rows) in units)
        {
            cancellation.ThrowIfCancellationRequested();
            int n = (int)rows;
            ConvertParallel(segment.Data + start * d, blockValues, n * d);
            // [q, n] = queries [q, d] x block [n, d]^T: each query's scores contiguous, for the top-k pass below.
            using var rowsTensor = n == GemmRows ? block.alias() : block.narrow(0, 0, n);
            using var transposed = rowsTensor.t();
            using var scores = queryMatrix.mm(transposed);
            var values = MemoryMarshal.Cast<byte, float>(scores.bytes);
            long first = segment.FirstId + start;
            for (int j = 0; j < q; j++)
            {
                var row = values.Slice(j * n, n);
                var top = tops[j];
                float threshold = top.Threshold;
                for (int i = 0; i < n; i++)
                {
                    if (row[i] < threshold) continue;
                    top.Add(row[i], first + i);
                    threshold = top.Threshold;
                }
            }
        }
        return tops;
    }

    /// <summary>float16 to float32 on two threads (one for small blocks).</summary>
    private static void ConvertParallel(Half* source, Span<float> destination, int count)
    {
        fixed (float* target = destination)
        {
            float* t = target;
            if (count < 1 << 16 || Environment.ProcessorCount < 2)
            {
                Convert(source, t, count);
                return;
            }
            int half = count / 2 & ~63;
            Parallel.Invoke(() => Convert(source, t, half), () => Convert(source + half, t + half, count - half));
        }
    }

    /// <summary>float16 to float32: the AVX-512 conversion of the fused kernel where there is one, else TensorPrimitives.</summary>
    private static void Convert(Half* source, float* target, int count)
    {
        int c = 0;
        if (MaxWidth >= 512 && Vector512.IsHardwareAccelerated)
        {
            var magic = Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000));
            var magnitude = Vector512.Create((uint)0x7FFF);
            var sign = Vector512.Create((uint)0x8000);
            for (; c + 32 <= count; c += 32)
            {
                var (low, high) = Vector512.Widen(Vector512.Load((ushort*)source + c));
                ToSingle(low, magnitude, sign, magic).Store(target + c);
                ToSingle(high, magnitude, sign, magic).Store(target + c + 16);
            }
        }
        if (c < count) TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(source + c, count - c), new Span<float>(target + c, count - c));
    }

    private static List<(EmbeddingSegment Segment, long Start, long Rows)> Units(IReadOnlyList<EmbeddingSegment> segments, int rowsPerUnit)
    {
        var units = new List<(EmbeddingSegment, long, long)>();
        foreach (var s in segments)
            for (long start = 0; start < s.Rows; start += rowsPerUnit)
                units.Add((s, start, Math.Min(rowsPerUnit, s.Rows - start)));
        return units;
    }

    private static TopK[] Merge(TopK[]?[] perWorker, int q, int k)
    {
        var merged = new TopK[q];
        for (int j = 0; j < q; j++)
        {
            merged[j] = new TopK(k);
            foreach (var w in perWorker)
                if (w is not null) merged[j].AddAll(w[j]);
        }
        return merged;
    }
}
