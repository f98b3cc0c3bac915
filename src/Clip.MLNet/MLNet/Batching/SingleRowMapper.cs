using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Row-at-a-time mapping of a batched stage, for ML.NET's <c>PredictionEngine</c> and other
/// <see cref="IRowToRowMapper"/> users: a batch of one, computed when an output is first read for a row.
/// </summary>
internal sealed class SingleRowMapper : IRowToRowMapper
{
    private readonly BatchStage stage;

    public SingleRowMapper(BatchStage stage, DataViewSchema inputSchema)
    {
        this.stage = stage;
        InputSchema = inputSchema;
        OutputSchema = stage.GetOutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var list = dependingColumns.ToList();
        var inputs = list.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (list.Any(c => c.Index >= InputSchema.Count))
        {
            var input = InputSchema[stage.InputColumnName];
            if (!inputs.Contains(input)) inputs.Add(input);
        }
        return inputs;
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new MappedRow(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class MappedRow : DataViewRow
    {
        private readonly SingleRowMapper mapper;
        private readonly DataViewRow input;
        private readonly HashSet<int> active;
        private readonly BatchWorker worker;
        private readonly object buffer;
        private readonly BatchOutputs outputs;
        private readonly Delegate inputGetter;
        private readonly ColumnCache inputValue;
        private readonly bool[] valid = new bool[1];
        private long computedFor = -1;

        public MappedRow(SingleRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper;
            this.input = input;
            this.active = active;
            var column = input.Schema[mapper.stage.InputColumnName];
            worker = mapper.stage.StartWorker(column);
            buffer = worker.CreateBuffer(1);
            outputs = new BatchOutputs(mapper.stage.Outputs, 1);
            inputGetter = ColumnCache.SourceGetter(input, column);
            inputValue = ColumnCache.Create(column, inputGetter, 1);
        }

        public override DataViewSchema Schema => mapper.OutputSchema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = mapper.InputSchema.Count;
            if (column.Index < inputCount) return input.GetGetter<TValue>(input.Schema[column.Index]);
            int o = column.Index - inputCount;
            var output = mapper.stage.Outputs[o];
            Delegate d = output.Kind switch
            {
                OutputKind.FloatVector => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                {
                    EnsureComputed();
                    var editor = VBufferEditor.Create(ref dst, output.Width);
                    outputs.Floats[o].AsSpan(0, output.Width).CopyTo(editor.Values);
                    dst = editor.Commit();
                }),
                OutputKind.Key => (ValueGetter<uint>)((ref uint dst) =>
                {
                    EnsureComputed();
                    dst = outputs.Keys[o][0];
                }),
                OutputKind.TextVector => (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)((ref VBuffer<ReadOnlyMemory<char>> dst) =>
                {
                    EnsureComputed();
                    var editor = VBufferEditor.Create(ref dst, output.Width);
                    outputs.Texts[o].AsSpan(0, output.Width).CopyTo(editor.Values);
                    dst = editor.Commit();
                }),
                _ => throw new InvalidOperationException(),
            };
            return d as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' holds {column.Type.RawType.Name}, not {typeof(TValue).Name}.");
        }

        private void EnsureComputed()
        {
            // Several outputs of one row are computed once; PredictionEngine moves its input row's
            // position with every example, so a new position means a new input.
            if (computedFor == input.Position && input.Position >= 0) return;
            computedFor = input.Position;
            object? value = null;
            try
            {
                // Reading the input runs the stages upstream (LoadImages ...): their failures are this row's too.
                inputValue.Fill(0);
                value = inputValue.Boxed(0);
                worker.Prepare(buffer, 0, value);
                valid[0] = true;
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
            {
                valid[0] = false;
                var what = value is null ? null : worker.Describe(value);
                var error = new ClipRowException($"Column '{mapper.stage.InputColumnName}', row {input.Position}{(what is null ? "" : $" ({what})")}: {e.Message}", e);
                if (mapper.stage.BadRows == BadRowHandling.Error) throw error;
                mapper.stage.CountSkipped();
            }
            if (valid[0]) worker.Compute(buffer, 1, valid, outputs);
            else
            {
                for (int o = 0; o < mapper.stage.Outputs.Count; o++)
                {
                    var c = mapper.stage.Outputs[o];
                    if (c.Kind == OutputKind.FloatVector) outputs.Floats[o].AsSpan(0, c.Width).Fill(float.NaN);
                    else if (c.Kind == OutputKind.Key) outputs.Keys[o][0] = 0;
                    else outputs.Texts[o].AsSpan(0, c.Width).Fill(ReadOnlyMemory<char>.Empty);
                }
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) worker.Dispose();
            base.Dispose(disposing);
        }
    }
}
