using Google.Protobuf;

namespace Clip.MLNet.Onnx;

// The subset of ONNX's protobuf schema (onnx.proto, proto2) that the exporter writes, as plain classes that
// serialize themselves through Google.Protobuf's CodedOutputStream. Field numbers are those of the public ONNX
// specification. Repeated scalars are written unpacked, as proto2 declares them; every parser accepts that.
// Only writing is needed: nothing here parses.

/// <summary>A message that knows its encoded size and writes its fields (without a length prefix).</summary>
internal abstract class OnnxMessage
{
    /// <summary>Lists the message's fields in field order, once: <see cref="ProtoFields"/> either measures or writes them.</summary>
    internal abstract void Fields(ProtoFields fields);

    public int ComputeSize() => ProtoFields.Measure(this);

    public void WriteTo(CodedOutputStream output) => ProtoFields.Write(this, output);

    public byte[] ToByteArray()
    {
        var bytes = new byte[ComputeSize()];
        var output = new CodedOutputStream(bytes);
        WriteTo(output);
        output.CheckNoSpaceLeft();
        return bytes;
    }
}

/// <summary>
/// The field encoder the messages list their fields to: in measuring mode it adds up the encoded size, in writing mode it
/// writes the fields, so that a message's size and its bytes come from one list and cannot disagree.
/// </summary>
internal sealed class ProtoFields
{
    private readonly CodedOutputStream? output;   // null: measuring

    private ProtoFields(CodedOutputStream? output) => this.output = output;

    private int Size { get; set; }

    public static int Measure(OnnxMessage message)
    {
        var fields = new ProtoFields(null);
        message.Fields(fields);
        return fields.Size;
    }

    public static void Write(OnnxMessage message, CodedOutputStream output) => message.Fields(new ProtoFields(output));

    /// <summary>A string field; an empty or null one is omitted unless <paramref name="keepEmpty"/> (a position in a repeated field).</summary>
    public void String(int field, string? value, bool keepEmpty = false)
    {
        if (string.IsNullOrEmpty(value) && !keepEmpty) return;
        value ??= "";
        if (output is null) Size += CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeStringSize(value);
        else
        {
            output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            output.WriteString(value);
        }
    }

    public void Int64(int field, long value)
    {
        if (output is null) Size += CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeInt64Size(value);
        else
        {
            output.WriteTag(field, WireFormat.WireType.Varint);
            output.WriteInt64(value);
        }
    }

    public void Float(int field, float value)
    {
        if (output is null) Size += CodedOutputStream.ComputeTagSize(field) + 4;
        else
        {
            output.WriteTag(field, WireFormat.WireType.Fixed32);
            output.WriteFloat(value);
        }
    }

    public void Bytes(int field, ReadOnlyMemory<byte> value)
    {
        if (output is null) Size += CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeLengthSize(value.Length) + value.Length;
        else
        {
            output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(UnsafeByteOperations.UnsafeWrap(value));
        }
    }

    public void Message(int field, OnnxMessage? message)
    {
        if (message is null) return;
        int size = message.ComputeSize();
        if (output is null) Size += CodedOutputStream.ComputeTagSize(field) + CodedOutputStream.ComputeLengthSize(size) + size;
        else
        {
            output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            output.WriteLength(size);
            message.WriteTo(output);
        }
    }

    public void Messages(int field, IEnumerable<OnnxMessage> messages)
    {
        foreach (var m in messages) Message(field, m);
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

    internal override void Fields(ProtoFields fields)
    {
        fields.String(1, Key);
        fields.String(2, Value);
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

    internal override void Fields(ProtoFields fields)
    {
        foreach (var d in Dims) fields.Int64(1, d);
        fields.Int64(2, (int)DataType);
        fields.String(8, Name);
        if (ExternalData.Count > 0)
        {
            fields.Messages(13, ExternalData);
            fields.Int64(14, 1);
        }
        else
        {
            fields.Bytes(9, RawData);
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

    internal override void Fields(ProtoFields fields)
    {
        fields.String(1, Name);
        switch (kind)
        {
            case Kind.Float:
                fields.Float(2, f);
                break;
            case Kind.Int:
                fields.Int64(3, i);
                break;
            case Kind.Tensor:
                fields.Message(5, t);
                break;
            case Kind.Ints:
                foreach (var v in ints) fields.Int64(8, v);
                break;
        }
        fields.Int64(20, (int)kind);
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

    internal override void Fields(ProtoFields fields)
    {
        // An empty input name is an omitted optional input and must be kept in its position.
        foreach (var s in Inputs) fields.String(1, s, keepEmpty: true);
        foreach (var s in Outputs) fields.String(2, s);
        fields.String(3, Name);
        fields.String(4, OpType);
        fields.Messages(5, Attributes);
        fields.String(7, Domain);
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
        internal override void Fields(ProtoFields fields)
        {
            if (value is string s) fields.String(2, s);
            else fields.Int64(1, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private sealed class Shape(object[] dims) : OnnxMessage
    {
        private readonly Dimension[] items = dims.Select(d => new Dimension(d)).ToArray();
        internal override void Fields(ProtoFields fields) => fields.Messages(1, items);
    }

    private sealed class TensorType(OnnxDataType elemType, object[] dims) : OnnxMessage
    {
        private readonly Shape shape = new(dims);
        internal override void Fields(ProtoFields fields)
        {
            fields.Int64(1, (int)elemType);
            fields.Message(2, shape);
        }
    }

    private sealed class TypeProto(OnnxDataType elemType, object[] dims) : OnnxMessage
    {
        private readonly TensorType tensor = new(elemType, dims);
        internal override void Fields(ProtoFields fields) => fields.Message(1, tensor);
    }

    internal override void Fields(ProtoFields fields)
    {
        fields.String(1, Name);
        fields.Message(2, new TypeProto(ElemType, Dims));
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

    internal override void Fields(ProtoFields fields)
    {
        fields.Messages(1, Nodes);
        fields.String(2, Name);
        fields.Messages(5, Initializers);
        fields.String(10, DocString);
        fields.Messages(11, Inputs);
        fields.Messages(12, Outputs);
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
        internal override void Fields(ProtoFields fields)
        {
            fields.String(1, domain);
            fields.Int64(2, version);
        }
    }

    internal override void Fields(ProtoFields fields)
    {
        fields.Int64(1, IrVersion);
        fields.String(2, ProducerName);
        fields.String(3, ProducerVersion);
        fields.String(6, DocString);
        fields.Message(7, Graph);
        fields.Message(8, new OpsetId("", Opset));
        fields.Messages(14, Metadata);
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
