using System.Globalization;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Clip.MLNet.Onnx;

/// <summary>
/// Builds one ONNX graph: nodes with generated unique output names, weights as initializers in the graph's
/// compute type (float32 or float16), and small constants. Weights are copied out of libtorch at once, so the
/// builder owns plain byte arrays and no native memory.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly OnnxGraph graph;
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private int counter;

    public OnnxGraphBuilder(string name, OnnxDataType computeType)
    {
        graph = new OnnxGraph { Name = name };
        ComputeType = computeType;
    }

    /// <summary>The element type of activations and weights inside the graph: float or float16.</summary>
    public OnnxDataType ComputeType { get; }

    public OnnxGraph Graph => graph;

    public string Input(string name, OnnxDataType type, params object[] dims)
    {
        Claim(name);
        graph.Inputs.Add(new OnnxValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares <paramref name="value"/> a graph output named <paramref name="name"/> (an Identity node renames it).</summary>
    public void Output(string value, string name, OnnxDataType type, params object[] dims)
    {
        Claim(name);
        graph.Nodes.Add(new OnnxNode { OpType = "Identity", Name = name + "_output", Inputs = [value], Outputs = [name] });
        graph.Outputs.Add(new OnnxValueInfo(name, type, dims));
    }

    /// <summary>Adds a node with one output; returns that output's name.</summary>
    public string Node(string op, string[] inputs, params OnnxAttribute[] attributes)
    {
        var output = Fresh(op);
        graph.Nodes.Add(new OnnxNode { OpType = op, Name = output, Inputs = [.. inputs], Outputs = [output], Attributes = [.. attributes] });
        return output;
    }

    public string Node(string op, string input, params OnnxAttribute[] attributes) => Node(op, [input], attributes);

    /// <summary>A weight as an initializer in the compute type (or float32 with <paramref name="keepFloat32"/>).</summary>
    public string Weight(string name, Tensor value, bool keepFloat32 = false)
    {
        var type = keepFloat32 ? OnnxDataType.Float : ComputeType;
        using var scope = NewDisposeScope();
        var t = value.detach().cpu().to(type == OnnxDataType.Float16 ? ScalarType.Float16 : ScalarType.Float32).contiguous();
        Claim(name);
        return AddInitializer(name, t.shape, type, t.bytes.ToArray());
    }

    /// <summary>An int64 constant (shapes, axes, indices); <paramref name="scalar"/> makes a 0-d tensor of one value.</summary>
    public string Int64s(long[] values, bool scalar = false)
    {
        if (scalar && values.Length != 1) throw new ArgumentException("A scalar holds one value.");
        var bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        return AddInitializer(Fresh("const"), scalar ? [] : [values.Length], OnnxDataType.Int64, bytes);
    }

    /// <summary>A scalar in the compute type.</summary>
    public string Scalar(float value)
    {
        byte[] bytes = ComputeType == OnnxDataType.Float16
            ? BitConverter.GetBytes((Half)value)
            : BitConverter.GetBytes(value);
        return AddInitializer(Fresh("const"), [], ComputeType, bytes);
    }

    private string AddInitializer(string name, long[] dims, OnnxDataType type, byte[] littleEndian)
    {
        // The name is claimed already (a weight's own, or a fresh one).
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX export needs a little-endian machine.");
        graph.Initializers.Add(new OnnxTensor { Name = name, Dims = dims, DataType = type, RawData = littleEndian });
        return name;
    }

    private string Fresh(string stem)
    {
        string name;
        do name = stem + "_" + (counter++).ToString(CultureInfo.InvariantCulture);
        while (names.Contains(name));
        names.Add(name);
        return name;
    }

    private void Claim(string name)
    {
        if (!names.Add(name)) throw new InvalidOperationException($"ONNX graph {graph.Name}: the name '{name}' is used twice.");
    }

    // Operators the towers are made of.

    public string Add(string a, string b) => Node("Add", [a, b]);
    public string Mul(string a, string b) => Node("Mul", [a, b]);
    public string MatMul(string a, string b) => Node("MatMul", [a, b]);
    public string Reshape(string x, params long[] shape) => Node("Reshape", [x, Int64s(shape)]);
    public string Transpose(string x, params long[] perm) => Node("Transpose", x, OnnxAttribute.Ints("perm", perm));
    public string Cast(string x, OnnxDataType to) => Node("Cast", x, OnnxAttribute.Int("to", (long)to));

    /// <summary><c>x · w + b</c> for a weight stored as <c>[in, out]</c> (already transposed from a torch Linear).</summary>
    public string Linear(string x, string weightInOut, string? bias)
    {
        var y = MatMul(x, weightInOut);
        return bias is null ? y : Add(y, bias);
    }

    /// <summary>LayerNormalization over the last axis (opset 17), computed in float32 as the reference does for half-precision models.</summary>
    public string LayerNorm(string x, string prefix, IReadOnlyDictionary<string, Tensor> weights, double eps = 1e-5)
    {
        var scale = Weight(prefix + ".weight", weights[prefix + ".weight"], keepFloat32: true);
        var bias = Weight(prefix + ".bias", weights[prefix + ".bias"], keepFloat32: true);
        bool half = ComputeType == OnnxDataType.Float16;
        var input = half ? Cast(x, OnnxDataType.Float) : x;
        var y = Node("LayerNormalization", [input, scale, bias], OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", (float)eps));
        return half ? Cast(y, OnnxDataType.Float16) : y;
    }
}
