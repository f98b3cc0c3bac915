using Google.Protobuf;

namespace Clip.MLNet.Onnx;

// The subset of ONNX's protobuf schema (onnx.proto, proto2) that the exporter writes, as plain classes that
// serialize themselves through Google.Protobuf's CodedOutputStream. Field numbers are those of the public ONNX
// specification. Repeated scalars are written unpacked, as proto2 declares them; every parser accepts that.
// Only writing is needed: nothing here parses.

/// <summary>A message that knows its encoded size and writes its fields (without a length prefix).</summary>
internal abstract class OnnxMessage
{
    public abstract int ComputeSize();

    public abstract void WriteTo(CodedOutputStream output);

    public byte[] ToByteArray()
    {
        var bytes = new byte[ComputeSize()];
        var output = new CodedOutputStream(bytes);
        WriteTo(output);
        output.CheckNoSpaceLeft();
        return bytes;
    }

    // Helpers shared by the messages: each returns the size of one field and has a matching writer.

    protected static int StringSize(int field, string? value) =>
        string.IsNullOrEmpty(value) ? 0 : CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeStringSize(value);

    protected static void WriteString(CodedOutputStream output, int field, string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteString(value);
    }

    protected static int Int64Size(int field, long value) => CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeInt64Size(value);

    protected static void WriteInt64(CodedOutputStream output, int field, long value)
    {
        output.WriteTag(field, WireFormat.WireType.Varint);
        output.WriteInt64(value);
    }

    protected static int MessageSize(int field, OnnxMessage? message)
    {
        if (message is null) return 0;
        int size = message.ComputeSize();
        return CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeLengthSize(size) + size;
    }

    protected static void WriteMessage(CodedOutputStream output, int field, OnnxMessage? message)
    {
        if (message is null) return;
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteLength(message.ComputeSize());
        message.WriteTo(output);
    }

    protected static int MessagesSize(int field, IEnumerable<OnnxMessage> messages) => messages.Sum(m => MessageSize(field, m));

    protected static void WriteMessages(CodedOutputStream output, int field, IEnumerable<OnnxMessage> messages)
    {
        foreach (var m in messages) WriteMessage(output, field, m);
    }
}

/// <summary>ONNX <c>TensorProto.DataType</c> values used here.</summary>
internal enum OnnxDataType
{
    Float = 1,
    Int32 = 6,
    Int64 = 7,
    Float16 = 10,
}

/// <summary><c>StringStringEntryProto</c>: key = 1, value = 2.</summary>
internal sealed class OnnxStringEntry(string key, string value) : OnnxMessage
{
    public string Key { get; } = key;
    public string Value { get; } = value;

    public override int ComputeSize() => StringSize(1, Key) + StringSize(2, Value);

    public override void WriteTo(CodedOutputStream output)
    {
        WriteString(output, 1, Key);
        WriteString(output, 2, Value);
    }
}

/// <summary>
/// <c>TensorProto</c>: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian), external_data = 13,
/// data_location = 14 (1 = EXTERNAL).
/// </summary>
internal sealed class OnnxTensor : OnnxMessage
{
    public string Name { get; init; } = "";
    public long[] Dims { get; init; } = [];
    public OnnxDataType DataType { get; init; }
    /// <summary>The values, little-endian; empty when <see cref="ExternalData"/> says where they are.</summary>
    public ReadOnlyMemory<byte> RawData { get; set; }
    /// <summary><c>location</c>, <c>offset</c>, <c>length</c> of the values in a file beside the model.</summary>
    public List<OnnxStringEntry> ExternalData { get; } = [];

    public override int ComputeSize()
    {
        int size = Dims.Sum(d => Int64Size(1, d)) + Int64Size(2, (int)DataType) + StringSize(8, Name);
        if (ExternalData.Count > 0)
            size += MessagesSize(13, ExternalData) + Int64Size(14, 1);
        else
            size += CodedOutputStream.ComputeTagSize(9) + CodedOutputStream.ComputeLengthSize(RawData.Length) + RawData.Length;
        return size;
    }

    public override void WriteTo(CodedOutputStream output)
    {
        foreach (var d in Dims) WriteInt64(output, 1, d);
        WriteInt64(output, 2, (int)DataType);
        WriteString(output, 8, Name);
        if (ExternalData.Count > 0)
        {
            WriteMessages(output, 13, ExternalData);
            WriteInt64(output, 14, 1);
        }
        else
        {
            output.WriteTag(9, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(UnsafeByteOperations.UnsafeWrap(RawData));
        }
    }
}

/// <summary>
/// <c>AttributeProto</c>: name = 1, f = 2, i = 3, t = 5, floats = 7, ints = 8, type = 20
/// (AttributeType: FLOAT = 1, INT = 2, TENSOR = 4, FLOATS = 6, INTS = 7).
/// </summary>
internal sealed class OnnxAttribute : OnnxMessage
{
    private enum Kind { Float = 1, Int = 2, Tensor = 4, Floats = 6, Ints = 7 }

    private readonly Kind kind;
    private readonly float f;
    private readonly long i;
    private readonly OnnxTensor? t;
    private readonly long[] ints = [];

    private OnnxAttribute(string name, Kind kind, float f = 0, long i = 0, OnnxTensor? t = null, long[]? ints = null)
    {
        Name = name;
        this.kind = kind;
        this.f = f;
        this.i = i;
        this.t = t;
        this.ints = ints ?? [];
    }

    public string Name { get; }

    public static OnnxAttribute Float(string name, float value) => new(name, Kind.Float, f: value);
    public static OnnxAttribute Int(string name, long value) => new(name, Kind.Int, i: value);
    public static OnnxAttribute Ints(string name, params long[] values) => new(name, Kind.Ints, ints: values);
    public static OnnxAttribute Tensor(string name, OnnxTensor value) => new(name, Kind.Tensor, t: value);

    public override int ComputeSize()
    {
        int size = StringSize(1, Name) + Int64Size(20, (int)kind);
        size += kind switch
        {
            Kind.Float => CodedOutputStream.ComputeTagSize(2) + 4,
            Kind.Int => Int64Size(3, i),
            Kind.Tensor => MessageSize(5, t),
            Kind.Ints => ints.Sum(v => Int64Size(8, v)),
            _ => 0,
        };
        return size;
    }

    public override void WriteTo(CodedOutputStream output)
    {
        WriteString(output, 1, Name);
        switch (kind)
        {
            case Kind.Float:
                output.WriteTag(2, WireFormat.WireType.Fixed32);
                output.WriteFloat(f);
                break;
            case Kind.Int:
                WriteInt64(output, 3, i);
                break;
            case Kind.Tensor:
                WriteMessage(output, 5, t);
                break;
            case Kind.Ints:
                foreach (var v in ints) WriteInt64(output, 8, v);
                break;
        }
        WriteInt64(output, 20, (int)kind);
    }
}

/// <summary><c>NodeProto</c>: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.</summary>
internal sealed class OnnxNode : OnnxMessage
{
    public string OpType { get; init; } = "";
    public string Name { get; init; } = "";
    public string Domain { get; init; } = "";
    public List<string> Inputs { get; init; } = [];
    public List<string> Outputs { get; init; } = [];
    public List<OnnxAttribute> Attributes { get; init; } = [];

    public override int ComputeSize() =>
        Inputs.Sum(s => CodedOutputStream.ComputeTagSize(1) + CodedOutputStream.ComputeStringSize(s))
        + Outputs.Sum(s => StringSize(2, s)) + StringSize(3, Name) + StringSize(4, OpType) + MessagesSize(5, Attributes) + StringSize(7, Domain);

    public override void WriteTo(CodedOutputStream output)
    {
        foreach (var s in Inputs)
        {
            // An empty name is an omitted optional input and must be kept in its position.
            output.WriteTag(1, WireFormat.WireType.LengthDelimited);
            output.WriteString(s);
        }
        foreach (var s in Outputs) WriteString(output, 2, s);
        WriteString(output, 3, Name);
        WriteString(output, 4, OpType);
        WriteMessages(output, 5, Attributes);
        WriteString(output, 7, Domain);
    }
}

/// <summary>
/// <c>ValueInfoProto</c> (name = 1, type = 2) of a tensor: <c>TypeProto</c> tensor_type = 1,
/// <c>TypeProto.Tensor</c> elem_type = 1, shape = 2; <c>TensorShapeProto</c> dim = 1; a dimension is
/// dim_value = 1 or dim_param = 2 (a symbolic, dynamic size).
/// </summary>
internal sealed class OnnxValueInfo : OnnxMessage
{
    public OnnxValueInfo(string name, OnnxDataType elemType, params object[] dims)
    {
        Name = name;
        ElemType = elemType;
        foreach (var d in dims)
            if (d is not (long or int or string)) throw new ArgumentException($"A dimension is a number or a name, not {d?.GetType().Name}.");
        Dims = dims;
    }

    public string Name { get; }
    public OnnxDataType ElemType { get; }
    /// <summary>Each a fixed size (<see cref="long"/> or <see cref="int"/>) or a symbolic name (<see cref="string"/>).</summary>
    public object[] Dims { get; }

    private sealed class Dimension(object value) : OnnxMessage
    {
        public override int ComputeSize() => value is string s ? StringSize(2, s) : Int64Size(1, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));

        public override void WriteTo(CodedOutputStream output)
        {
            if (value is string s) WriteString(output, 2, s);
            else WriteInt64(output, 1, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private sealed class Shape(object[] dims) : OnnxMessage
    {
        private readonly Dimension[] items = dims.Select(d => new Dimension(d)).ToArray();
        public override int ComputeSize() => MessagesSize(1, items);
        public override void WriteTo(CodedOutputStream output) => WriteMessages(output, 1, items);
    }

    private sealed class TensorType(OnnxDataType elemType, object[] dims) : OnnxMessage
    {
        private readonly Shape shape = new(dims);
        public override int ComputeSize() => Int64Size(1, (int)elemType) + MessageSize(2, shape);

        public override void WriteTo(CodedOutputStream output)
        {
            WriteInt64(output, 1, (int)elemType);
            WriteMessage(output, 2, shape);
        }
    }

    private sealed class TypeProto(OnnxDataType elemType, object[] dims) : OnnxMessage
    {
        private readonly TensorType tensor = new(elemType, dims);
        public override int ComputeSize() => MessageSize(1, tensor);
        public override void WriteTo(CodedOutputStream output) => WriteMessage(output, 1, tensor);
    }

    public override int ComputeSize() => StringSize(1, Name) + MessageSize(2, new TypeProto(ElemType, Dims));

    public override void WriteTo(CodedOutputStream output)
    {
        WriteString(output, 1, Name);
        WriteMessage(output, 2, new TypeProto(ElemType, Dims));
    }
}

/// <summary><c>GraphProto</c>: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12.</summary>
internal sealed class OnnxGraph : OnnxMessage
{
    public string Name { get; init; } = "";
    public string DocString { get; init; } = "";
    public List<OnnxNode> Nodes { get; } = [];
    public List<OnnxTensor> Initializers { get; } = [];
    public List<OnnxValueInfo> Inputs { get; } = [];
    public List<OnnxValueInfo> Outputs { get; } = [];

    public override int ComputeSize() => MessagesSize(1, Nodes) + StringSize(2, Name) + MessagesSize(5, Initializers)
        + StringSize(10, DocString) + MessagesSize(11, Inputs) + MessagesSize(12, Outputs);

    public override void WriteTo(CodedOutputStream output)
    {
        WriteMessages(output, 1, Nodes);
        WriteString(output, 2, Name);
        WriteMessages(output, 5, Initializers);
        WriteString(output, 10, DocString);
        WriteMessages(output, 11, Inputs);
        WriteMessages(output, 12, Outputs);
    }
}

/// <summary>
/// <c>ModelProto</c>: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7,
/// opset_import = 8 (<c>OperatorSetIdProto</c>: domain = 1, version = 2), metadata_props = 14.
/// </summary>
internal sealed class OnnxModel : OnnxMessage
{
    public long IrVersion { get; init; }
    public long Opset { get; init; }
    public string ProducerName { get; init; } = "";
    public string ProducerVersion { get; init; } = "";
    public string DocString { get; init; } = "";
    public OnnxGraph Graph { get; init; } = new();
    public List<OnnxStringEntry> Metadata { get; } = [];

    private sealed class OpsetId(string domain, long version) : OnnxMessage
    {
        public override int ComputeSize() => StringSize(1, domain) + Int64Size(2, version);

        public override void WriteTo(CodedOutputStream output)
        {
            WriteString(output, 1, domain);
            WriteInt64(output, 2, version);
        }
    }

    public override int ComputeSize() => Int64Size(1, IrVersion) + StringSize(2, ProducerName) + StringSize(3, ProducerVersion)
        + StringSize(6, DocString) + MessageSize(7, Graph) + MessageSize(8, new OpsetId("", Opset)) + MessagesSize(14, Metadata);

    public override void WriteTo(CodedOutputStream output)
    {
        WriteInt64(output, 1, IrVersion);
        WriteString(output, 2, ProducerName);
        WriteString(output, 3, ProducerVersion);
        WriteString(output, 6, DocString);
        WriteMessage(output, 7, Graph);
        WriteMessage(output, 8, new OpsetId("", Opset));
        WriteMessages(output, 14, Metadata);
    }

    /// <summary>Writes the model to <paramref name="path"/>; the encoded model must stay under protobuf's 2 GiB limit.</summary>
    public void Save(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using (var output = new CodedOutputStream(stream, leaveOpen: true))
        {
            WriteTo(output);
            output.Flush();
        }
    }
}
