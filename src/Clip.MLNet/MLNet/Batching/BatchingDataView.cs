using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>
/// The lazy result of a batched CLIP transform: nothing is computed until a cursor asks for rows,
/// and only the columns a consumer asks for are read. When no output of the stage is requested,
/// cursors pass the source rows straight through.
/// </summary>
internal sealed class BatchingDataView : IDataView
{
    private readonly IDataView source;
    private readonly BatchStage stage;
    // Rows of this view counted as skipped: a row read by several cursors is one skipped row.
    private readonly HashSet<long> skippedRows = new();

    public BatchingDataView(IDataView source, BatchStage stage)
    {
        this.source = source;
        this.stage = stage;
        Schema = stage.GetOutputSchema(source.Schema);
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => source.CanShuffle;

    public long? GetRowCount() => source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = source.Schema.Count;
        var activeOutputs = Enumerable.Range(0, stage.Outputs.Count).Select(i => needed.Contains(inputCount + i)).ToArray();
        var sourceColumns = source.Schema.Where(c => needed.Contains(c.Index)).ToList();
        if (!activeOutputs.Any(a => a))
            return new PassThroughCursor(Schema, source.GetRowCursor(sourceColumns, rand));

        var inputColumn = source.Schema[stage.InputColumnName];
        if (!sourceColumns.Contains(inputColumn)) sourceColumns.Add(inputColumn);
        return new BatchingCursor(Schema, stage, source.GetRowCursor(sourceColumns, rand), inputColumn, needed, activeOutputs, skippedRows);
    }

    // One cursor: rows stay in order and each forward pass sees a full batch (DataViewRowCursor
    // sets may return fewer cursors than asked for).
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>Serves the source cursor's rows under the output schema, for consumers that read no output column.</summary>
    private sealed class PassThroughCursor(DataViewSchema schema, DataViewRowCursor source) : DataViewRowCursor
    {
        public override DataViewSchema Schema => schema;
        public override long Position => source.Position;
        public override long Batch => source.Batch;
        public override bool MoveNext() => source.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => source.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < source.Schema.Count && source.IsColumnActive(source.Schema[column.Index]);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) =>
            column.Index < source.Schema.Count
                ? source.GetGetter<TValue>(source.Schema[column.Index])
                : throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");

        protected override void Dispose(bool disposing)
        {
            if (disposing) source.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// The ML.NET face of the batching engine (<see cref="BatchPipeline{TBatch}"/>): reads <see cref="BatchStage.BatchSize"/>
/// rows ahead into column caches, prepares their inputs (on the engine's producer thread, in parallel when the stage
/// asks for it), runs one forward pass per batch and serves rows one at a time, applying the stage's <c>BadRows</c>.
/// </summary>
internal sealed class BatchingCursor : DataViewRowCursor
{
    private sealed class RowBatch(int capacity) : PipelineBatch(capacity)
    {
        public required ColumnCache[] Caches;
        public required DataViewRowId[] Ids;
        public required object Buffer;
        public required BatchOutputs Outputs;
    }

    private readonly DataViewSchema schema;
    private readonly BatchStage stage;
    private readonly DataViewRowCursor source;
    private readonly BatchWorker worker;
    private readonly bool[] activeOutputs;
    private readonly int inputCacheIndex;
    private readonly int[] cachedColumns;           // source column index of each cache
    private readonly Dictionary<int, int> cacheOf = new();  // source column index -> cache index
    private readonly Delegate[] sourceGetters;
    private readonly ValueGetter<DataViewRowId> sourceIds;
    private readonly BatchPipeline<RowBatch> pipeline;
    private RowBatch? current;
    private int slot = -1;
    private long position = -1;
    private bool done;
    private readonly HashSet<long> skippedRows; // the view's: rows already counted as skipped

    public BatchingCursor(DataViewSchema schema, BatchStage stage, DataViewRowCursor source, DataViewSchema.Column inputColumn,
        HashSet<int> neededColumns, bool[] activeOutputs, HashSet<long> skippedRows)
    {
        this.skippedRows = skippedRows;
        this.schema = schema;
        this.stage = stage;
        this.source = source;
        this.activeOutputs = activeOutputs;
        worker = stage.StartWorker(inputColumn);
        var columns = source.Schema.Where(c => neededColumns.Contains(c.Index) || c.Index == inputColumn.Index).Select(c => c.Index).ToArray();
        cachedColumns = columns;
        for (int i = 0; i < columns.Length; i++) cacheOf[columns[i]] = i;
        inputCacheIndex = cacheOf[inputColumn.Index];
        sourceGetters = columns.Select(c => ColumnCache.SourceGetter(source, source.Schema[c])).ToArray();
        sourceIds = source.GetIdGetter();

        int capacity = Math.Max(1, stage.BatchSize);
        // Reading the source is sequential (a cursor is not thread-safe); preparing the rows of a batch is parallel.
        pipeline = new BatchPipeline<RowBatch>(
            () => new RowBatch(capacity)
            {
                Caches = columns.Select((c, k) => ColumnCache.Create(source.Schema[c], sourceGetters[k], capacity)).ToArray(),
                Ids = new DataViewRowId[capacity],
                Buffer = worker.CreateBuffer(capacity),
                Outputs = new BatchOutputs(stage.Outputs, capacity),
            },
            Fill,
            activeOutputs.Any(a => a) ? (b, s) => worker.Prepare(b.Buffer, s, b.Caches[inputCacheIndex].Boxed(s)) : null,
            (b, s, e) => RowError(b.FirstItem + s, worker.Describe(b.Caches[inputCacheIndex].Boxed(s)), e),
            new BatchPipelineOptions(Prefetch: stage.PrefetchBatches, Threads: stage.PrepareThreads));
    }

    public override DataViewSchema Schema => schema;
    public override long Position => position;
    public override long Batch => 0;

    public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) =>
    {
        EnsureRow();
        id = current!.Ids[slot];
    };

    public override bool IsColumnActive(DataViewSchema.Column column) =>
        column.Index < source.Schema.Count ? cacheOf.ContainsKey(column.Index) : activeOutputs[column.Index - source.Schema.Count];

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        int inputCount = source.Schema.Count;
        if (column.Index < inputCount)
        {
            if (!cacheOf.TryGetValue(column.Index, out var k))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when this cursor was created.");
            var getter = ColumnCacheGetter(k);
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' holds {column.Type.RawType.Name}, not {typeof(TValue).Name}.");
        }
        int o = column.Index - inputCount;
        if (!activeOutputs[o]) throw new InvalidOperationException($"Column '{column.Name}' was not requested when this cursor was created.");
        var output = stage.Outputs[o];
        Delegate d = output.Kind switch
        {
            OutputKind.FloatVector => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
            {
                EnsureRow();
                var editor = VBufferEditor.Create(ref dst, output.Width);
                current!.Outputs.Floats[o].AsSpan(slot * output.Width, output.Width).CopyTo(editor.Values);
                dst = editor.Commit();
            }),
            OutputKind.Key => (ValueGetter<uint>)((ref uint dst) =>
            {
                EnsureRow();
                dst = current!.Outputs.Keys[o][slot];
            }),
            OutputKind.TextVector => (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)((ref VBuffer<ReadOnlyMemory<char>> dst) =>
            {
                EnsureRow();
                var editor = VBufferEditor.Create(ref dst, output.Width);
                current!.Outputs.Texts[o].AsSpan(slot * output.Width, output.Width).CopyTo(editor.Values);
                dst = editor.Commit();
            }),
            _ => throw new InvalidOperationException(),
        };
        return d as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' holds {column.Type.RawType.Name}, not {typeof(TValue).Name}.");
    }

    private Delegate ColumnCacheGetter(int k)
    {
        // Any batch's cache of this column can build the getter; it reads the current batch at call time.
        return pipeline.Pool[0].Caches[k].MakeGetter(() => { EnsureRow(); return current!.Caches[k]; }, () => slot);
    }

    private void EnsureRow()
    {
        if (current is null || slot < 0 || slot >= current.Count)
            throw new InvalidOperationException("The cursor is not on a row (call MoveNext first).");
    }

    public override bool MoveNext()
    {
        if (done) return false;
        if (current is not null && slot + 1 < current.Count)
        {
            slot++;
        }
        else
        {
            if (current is not null)
            {
                if (current.Terminal is { } failure) { done = true; throw failure; }
                pipeline.Release(current);
                current = null;
            }
            var next = pipeline.Next();
            if (next is null)
            {
                done = true;
                return false;
            }
            current = next;
            slot = 0;
            if (current.Count == 0)
            {
                var failure = current.Terminal;
                done = true;
                if (failure is not null) throw failure;
                return false;
            }
            ComputeOutputs(current);
        }
        position++;
        if (current.Errors[slot] is { } error && !current.Valid[slot] && stage.BadRows == BadRowHandling.Error)
        {
            done = true;
            throw error;
        }
        return true;
    }

    /// <summary>Reads up to a batch of rows from the source into the batch's column caches (the pipeline's fill step).</summary>
    private void Fill(RowBatch b)
    {
        while (b.Count < b.Capacity && source.MoveNext())
        {
            int s = b.Count;
            sourceIds(ref b.Ids[s]);
            for (int k = 0; k < b.Caches.Length; k++)
            {
                try
                {
                    b.Caches[k].Fill(s);
                }
                catch (Exception e) when (k == inputCacheIndex && IsInputError(e))
                {
                    // The input column itself could not be produced (an image that fails to decode upstream).
                    b.Errors[s] = RowError(b.FirstItem + s, null, e);
                }
            }
            b.Count++;
        }
    }

    private static bool IsInputError(Exception e) => e is not (OutOfMemoryException or ThreadAbortException or OperationCanceledException);

    private Exception RowError(long row, string? what, Exception inner)
    {
        var input = what is null ? "" : $" ({what})";
        return new ClipRowException($"Column '{stage.InputColumnName}', row {row}{input}: {inner.Message}", inner);
    }

    private void ComputeOutputs(RowBatch b)
    {
        for (int s = 0; s < b.Count; s++)
        {
            if (b.Valid[s]) continue;
            if (b.Errors[s] is not null && stage.BadRows == BadRowHandling.Skip)
                lock (skippedRows)
                    if (skippedRows.Add(b.FirstItem + s)) stage.CountSkipped();
            FillMissing(b, s);
        }
        if (b.Valid.AsSpan(0, b.Count).Contains(true))
            worker.Compute(b.Buffer, b.Count, b.Valid, b.Outputs);
    }

    private void FillMissing(RowBatch b, int s)
    {
        for (int o = 0; o < stage.Outputs.Count; o++)
        {
            var c = stage.Outputs[o];
            switch (c.Kind)
            {
                case OutputKind.FloatVector: b.Outputs.Floats[o].AsSpan(s * c.Width, c.Width).Fill(float.NaN); break;
                case OutputKind.Key: b.Outputs.Keys[o][s] = 0; break;
                case OutputKind.TextVector: b.Outputs.Texts[o].AsSpan(s * c.Width, c.Width).Fill(ReadOnlyMemory<char>.Empty); break;
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            pipeline.Dispose();
            foreach (var b in pipeline.Pool)
                foreach (var c in b.Caches) c.Clear();
            worker.Dispose();
            source.Dispose();
        }
        base.Dispose(disposing);
    }
}
