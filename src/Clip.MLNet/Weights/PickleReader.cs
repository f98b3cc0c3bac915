using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Clip.MLNet.Weights;

// Why a hand-written unpickler: the served unpicklers (Razorvine.Pickle, used by TorchSharp.PyBridge)
// turn any unknown global into an object and keep their constructor registry process-wide, so they
// cannot refuse a global. A checkpoint from the internet must not be able to name `posix.system`
// and get anything but an error; this reader resolves globals against a fixed allow-list and builds
// only inert values (numbers, strings, lists, tuples, dicts, tensor references, records).

/// <summary>A Python tuple read from a pickle.</summary>
internal sealed class PickleTuple(object?[] items)
{
    public object?[] Items { get; } = items;
}

/// <summary>A Python dict or OrderedDict read from a pickle, in insertion order.</summary>
internal sealed class PickleDict
{
    public OrderedDictionary<object, object?> Items { get; } = new();
    /// <summary>State set through BUILD (for example a state dict's <c>_metadata</c>); kept, not used.</summary>
    public object? State { get; set; }
}

/// <summary>An object of a TorchScript class (<c>__torch__.*</c>): its attributes, nothing else.</summary>
internal sealed class PickleRecord(string className)
{
    public string ClassName { get; } = className;
    public PickleDict? Attributes { get; set; }
}

/// <summary>A global the allow-list admits: a storage type, a rebuild function, OrderedDict or a TorchScript class.</summary>
internal sealed class PickleGlobal(string module, string name)
{
    public string Module { get; } = module;
    public string Name { get; } = name;
    public string FullName => $"{Module}.{Name}";
}

/// <summary>A storage inside a PyTorch archive, referenced through a persistent id.</summary>
internal sealed record StorageRef(string Key, TorchSharp.torch.ScalarType DType, long Numel);

/// <summary>A tensor view of a storage: what <c>torch._utils._rebuild_tensor_v2</c> describes.</summary>
internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Stride);

/// <summary>Reads pickles restricted to what PyTorch state dicts and TorchScript data need.</summary>
internal sealed class PickleReader
{
    private static readonly HashSet<string> AllowedFunctions = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
    };

    private static readonly Dictionary<string, TorchSharp.torch.ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["HalfStorage"] = TorchSharp.torch.ScalarType.Float16,
        ["FloatStorage"] = TorchSharp.torch.ScalarType.Float32,
        ["DoubleStorage"] = TorchSharp.torch.ScalarType.Float64,
        ["BFloat16Storage"] = TorchSharp.torch.ScalarType.BFloat16,
        ["LongStorage"] = TorchSharp.torch.ScalarType.Int64,
        ["IntStorage"] = TorchSharp.torch.ScalarType.Int32,
        ["ShortStorage"] = TorchSharp.torch.ScalarType.Int16,
        ["CharStorage"] = TorchSharp.torch.ScalarType.Int8,
        ["ByteStorage"] = TorchSharp.torch.ScalarType.Byte,
        ["BoolStorage"] = TorchSharp.torch.ScalarType.Bool,
        ["UntypedStorage"] = TorchSharp.torch.ScalarType.Byte,
    };

    private readonly Stream stream;
    private readonly string file;
    private readonly bool allowTorchScriptClasses;
    private readonly Dictionary<string, StorageRef> storages = new(StringComparer.Ordinal);
    private readonly Dictionary<long, object?> memo = new();
    private readonly List<object?> stack = new();
    private readonly Stack<int> marks = new();

    private PickleReader(Stream stream, string file, bool allowTorchScriptClasses)
    {
        this.stream = stream;
        this.file = file;
        this.allowTorchScriptClasses = allowTorchScriptClasses;
    }

    /// <summary>Unpickles one object from <paramref name="stream"/>.</summary>
    /// <param name="stream">The pickle bytes.</param>
    /// <param name="file">Names the input in errors.</param>
    /// <param name="allowTorchScriptClasses">Admit <c>__torch__.*</c> classes as inert records (TorchScript archives only).</param>
    public static object? Load(Stream stream, string file, bool allowTorchScriptClasses) =>
        new PickleReader(stream, file, allowTorchScriptClasses).Run();

    private ClipCheckpointException Error(string problem) => new(file, problem);

    private object? Run()
    {
        while (true)
        {
            int op = stream.ReadByte();
            if (op < 0) throw Error("the pickle ends before its STOP opcode (truncated file?)");
            switch (op)
            {
                case 0x80: ReadBytes(1); break;                                  // PROTO
                case 0x95: ReadBytes(8); break;                                  // FRAME
                case '.': return Pop();                                          // STOP
                case '(': marks.Push(stack.Count); break;                        // MARK
                case '0': Pop(); break;                                          // POP
                case '1': PopMark(); break;                                      // POP_MARK
                case '2': Push(Peek()); break;                                   // DUP
                case 'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case 'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;
                case 'K': Push((long)ReadBytes(1)[0]); break;
                case 'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;
                case 0x8a: Push(ReadLong(ReadBytes(ReadBytes(1)[0]))); break;    // LONG1
                case 0x8b: Push(ReadLong(ReadBytes(ReadCount(4)))); break;       // LONG4
                case 'I': Push(ParseIntLine(ReadLine())); break;
                case 'L': Push(ParseIntLine(ReadLine().TrimEnd('L'))); break;
                case 'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;
                case 'F': Push(double.Parse(ReadLine(), CultureInfo.InvariantCulture)); break;
                case 'X': Push(Encoding.UTF8.GetString(ReadBytes(ReadCount(4)))); break;
                case 0x8c: Push(Encoding.UTF8.GetString(ReadBytes(ReadBytes(1)[0]))); break;
                case 0x8d: Push(Encoding.UTF8.GetString(ReadBytes(ReadCount(8)))); break;
                case 'V': Push(ReadLine()); break;
                case 'T': Push(Encoding.Latin1.GetString(ReadBytes(ReadCount(4)))); break;
                case 'U': Push(Encoding.Latin1.GetString(ReadBytes(ReadBytes(1)[0]))); break;
                case 'S': Push(ReadLine().Trim('\'', '"')); break;
                case 'B': Push(ReadBytes(ReadCount(4))); break;
                case 'C': Push(ReadBytes(ReadBytes(1)[0])); break;
                case 0x8e: Push(ReadBytes(ReadCount(8))); break;
                case 0x96: Push(ReadBytes(ReadCount(8))); break;                 // BYTEARRAY8
                case ')': Push(new PickleTuple(Array.Empty<object?>())); break;
                case 't': Push(new PickleTuple(PopMark().ToArray())); break;
                case 0x85: Push(new PickleTuple(new[] { Pop() })); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PickleTuple(new[] { a, b })); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PickleTuple(new[] { a, b, c })); break; }
                case ']': Push(new List<object?>()); break;
                case 'l': Push(PopMark()); break;
                case 'a': { var v = Pop(); AsList(Peek()).Add(v); break; }
                case 'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; }
                case '}': Push(new PickleDict()); break;
                case 'd': { var items = PopMark(); var d = new PickleDict(); SetItems(d, items); Push(d); break; }
                case 's': { var v = Pop(); var k = Pop(); SetItems(AsDict(Peek()), new List<object?> { k, v }); break; }
                case 'u': { var items = PopMark(); SetItems(AsDict(Peek()), items); break; }
                case 0x8f: Push(new List<object?>()); break;                     // EMPTY_SET, read as a list
                case 0x90: { var items = PopMark(); AsList(Peek()).AddRange(items); break; }
                case 0x91: Push(PopMark()); break;                               // FROZENSET
                case 'c': { var module = ReadLine(); var name = ReadLine(); Push(ResolveGlobal(module, name)); break; }
                case 0x93: { var name = Pop() as string; var module = Pop() as string; Push(ResolveGlobal(module ?? "?", name ?? "?")); break; }
                case 'i': { var module = ReadLine(); var name = ReadLine(); ResolveGlobal(module, name); throw Error($"the pickle uses the INST opcode on '{module}.{name}', which state dicts never use"); }
                case 'o': throw Error("the pickle uses the OBJ opcode, which state dicts never use");
                case 'R': { var args = Pop(); var func = Pop(); Push(Reduce(func, args)); break; }
                case 0x81: { var args = Pop(); var cls = Pop(); Push(NewObject(cls, args)); break; }
                case 0x92: { Pop(); var args = Pop(); var cls = Pop(); Push(NewObject(cls, args)); break; }
                case 'b': { var state = Pop(); Build(Peek(), state); break; }
                case 'p': memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)] = Peek(); break;
                case 'q': memo[ReadBytes(1)[0]] = Peek(); break;
                case 'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))] = Peek(); break;
                case 0x94: memo[memo.Count] = Peek(); break;                     // MEMOIZE
                case 'g': Push(GetMemo(long.Parse(ReadLine(), CultureInfo.InvariantCulture))); break;
                case 'h': Push(GetMemo(ReadBytes(1)[0])); break;
                case 'j': Push(GetMemo(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break;
                case 'P': Push(PersistentLoad(ReadLine())); break;
                case 'Q': Push(PersistentLoad(Pop())); break;
                case 0x82 or 0x83 or 0x84: throw Error("the pickle uses the extension registry (EXT opcodes), which state dicts never use");
                default: throw Error($"unsupported pickle opcode 0x{op:x2} at byte {stream.Position - 1}");
            }
        }
    }

    private object ResolveGlobal(string module, string name)
    {
        var full = $"{module}.{name}";
        if (AllowedFunctions.Contains(full)) return new PickleGlobal(module, name);
        if ((module == "torch" || module == "torch.storage") && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        if (allowTorchScriptClasses && (module == "__torch__" || module.StartsWith("__torch__.", StringComparison.Ordinal)))
            return new PickleGlobal(module, name);
        throw Error($"refusing to unpickle the global '{full}': a checkpoint may only reference collections.OrderedDict, " +
            "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch storage types" +
            (allowTorchScriptClasses ? " (and __torch__ classes inside a TorchScript archive)" : ""));
    }

    private object? Reduce(object? func, object? args)
    {
        if (func is not PickleGlobal g) throw Error("the pickle calls something that is not an allowed global");
        var a = (args as PickleTuple)?.Items ?? throw Error($"the arguments of {g.FullName} are not a tuple");
        switch (g.FullName)
        {
            case "collections.OrderedDict":
                var d = new PickleDict();
                if (a.Length > 0 && a[0] is List<object?> pairs)
                    foreach (var p in pairs)
                        if (p is PickleTuple { Items.Length: 2 } kv) SetItems(d, new List<object?> { kv.Items[0], kv.Items[1] });
                return d;
            case "torch._utils._rebuild_tensor_v2":
                if (a.Length < 4 || a[0] is not StorageRef storage) throw Error("malformed _rebuild_tensor_v2 call");
                var shape = ToLongs(a[2], "size");
                var stride = ToLongs(a[3], "stride");
                var offset = ToLong(a[1], "storage_offset");
                CheckView(storage, offset, shape, stride);
                return new TensorRef(storage, offset, shape, stride);
            case "torch._utils._rebuild_parameter":
                if (a.Length < 1 || a[0] is not TensorRef t) throw Error("malformed _rebuild_parameter call");
                return t;
            default:
                if (g.Module.StartsWith("__torch__", StringComparison.Ordinal)) return new PickleRecord(g.FullName);
                throw Error($"the global '{g.FullName}' cannot be called");
        }
    }

    private object NewObject(object? cls, object? args)
    {
        if (cls is not PickleGlobal g) throw Error("NEWOBJ on something that is not an allowed class");
        if (g.FullName == "collections.OrderedDict") return new PickleDict();
        if (g.Module.StartsWith("__torch__", StringComparison.Ordinal)) return new PickleRecord(g.FullName);
        throw Error($"the pickle instantiates '{g.FullName}', which is not a class a checkpoint may create");
    }

    private void Build(object? target, object? state)
    {
        switch (target)
        {
            case PickleRecord r:
                r.Attributes = state as PickleDict;
                break;
            case PickleDict d:
                d.State = state;
                break;
            default:
                throw Error($"the pickle sets state on a {target?.GetType().Name ?? "None"}, which state dicts never do");
        }
    }

    private object PersistentLoad(object? pid)
    {
        // ('storage', storage_type, key, location, numel): PyTorch's zip serialization.
        if (pid is not PickleTuple { Items.Length: >= 5 } t || t.Items[0] as string != "storage")
            throw Error("unsupported persistent id (not a PyTorch storage reference)");
        if (t.Items[1] is not PickleGlobal type || !StorageTypes.TryGetValue(type.Name, out var dtype))
            throw Error("a storage reference names no known storage type");
        var key = t.Items[2]?.ToString() ?? throw Error("a storage reference has no key");
        var numel = ToLong(t.Items[4], "storage size");
        if (storages.TryGetValue(key, out var existing)) return existing;
        var storage = new StorageRef(key, dtype, numel);
        storages[key] = storage;
        return storage;
    }

    private void CheckView(StorageRef storage, long offset, long[] shape, long[] stride)
    {
        if (shape.Length != stride.Length || offset < 0 || shape.Any(s => s < 0) || stride.Any(s => s < 0))
            throw Error($"a tensor of storage {storage.Key} has an invalid shape or stride");
        if (shape.Any(s => s == 0)) return;
        long last = offset;
        for (int i = 0; i < shape.Length; i++) last += (shape[i] - 1) * stride[i];
        if (last >= storage.Numel)
            throw Error($"a tensor reaches past the end of its storage {storage.Key} ({storage.Numel} elements)");
    }

    private long[] ToLongs(object? value, string what) =>
        (value as PickleTuple)?.Items.Select(v => ToLong(v, what)).ToArray() ?? throw Error($"a tensor's {what} is not a tuple");

    private long ToLong(object? value, string what) => value switch
    {
        long l => l,
        BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
        string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        _ => throw Error($"a tensor's {what} is not an integer"),
    };

    private void SetItems(PickleDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Error("a dict has an odd number of items");
        for (int i = 0; i < items.Count; i += 2)
        {
            var key = items[i] ?? throw Error("a dict has a None key");
            if (key is PickleTuple or List<object?> or PickleDict) key = $"<{key.GetType().Name}>#{i}";
            dict.Items[key] = items[i + 1];
        }
    }

    private List<object?> AsList(object? o) => o as List<object?> ?? throw Error("the pickle appends to something that is not a list");
    private PickleDict AsDict(object? o) => o as PickleDict ?? throw Error("the pickle sets an item on something that is not a dict");

    private void Push(object? o) => stack.Add(o);

    private object? Pop()
    {
        if (stack.Count == 0 || (marks.Count > 0 && stack.Count <= marks.Peek())) throw Error("malformed pickle (stack underflow)");
        var o = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return o;
    }

    private object? Peek() => stack.Count > 0 ? stack[^1] : throw Error("malformed pickle (empty stack)");

    private List<object?> PopMark()
    {
        if (marks.Count == 0) throw Error("malformed pickle (no MARK)");
        int start = marks.Pop();
        var items = stack.GetRange(start, stack.Count - start);
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    private object? GetMemo(long index) =>
        memo.TryGetValue(index, out var v) ? v : throw Error($"malformed pickle (memo entry {index} is missing)");

    private long ReadCount(int size)
    {
        var b = ReadBytes(size);
        long n = size == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(b) : (long)BinaryPrimitives.ReadUInt64LittleEndian(b);
        if (n < 0 || (stream.CanSeek && n > stream.Length - stream.Position))
            throw Error("the pickle declares more bytes than the file holds (truncated file?)");
        return n;
    }

    private byte[] ReadBytes(long count)
    {
        var buffer = new byte[count];
        int read = 0;
        while (read < count)
        {
            int n = stream.Read(buffer, read, (int)(count - read));
            if (n == 0) throw Error("the pickle ends unexpectedly (truncated file?)");
            read += n;
        }
        return buffer;
    }

    private string ReadLine()
    {
        var bytes = new List<byte>();
        while (true)
        {
            int b = stream.ReadByte();
            if (b < 0) throw Error("the pickle ends unexpectedly (truncated file?)");
            if (b == '\n') break;
            if (bytes.Count > 1 << 16) throw Error("malformed pickle (a text argument is too long)");
            bytes.Add((byte)b);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private object ReadLong(byte[] bytes)
    {
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    private object ParseIntLine(string line)
    {
        if (line == "00") return false;
        if (line == "01") return true;
        return BigInteger.TryParse(line, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? (v >= long.MinValue && v <= long.MaxValue ? (long)v : v)
            : throw Error($"malformed pickle (bad integer '{line}')");
    }
}
