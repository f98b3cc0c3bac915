using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Clip.MLNet.Weights;

// Why not TorchSharp.PyBridge's safetensors support: it reads a whole file into a dictionary of
// tensors at once (a second full copy of the model while loading) and has no access to the
// header's __metadata__, where this library stores a model's configuration. This reader keeps the
// file open and reads one tensor at a time; the writer adds metadata and writes atomically.

/// <summary>Reads and writes the safetensors format: an 8-byte header length, a JSON header, raw little-endian data.</summary>
internal sealed class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100_000_000;

    private readonly FileStream stream;
    private readonly string path;
    private readonly long dataStart;

    /// <summary>One tensor's header entry.</summary>
    public sealed record Entry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    private SafetensorsFile(string path, FileStream stream, long dataStart, List<Entry> entries, Dictionary<string, string> metadata)
    {
        this.path = path;
        this.stream = stream;
        this.dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
    }

    public IReadOnlyList<Entry> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>True when the file starts like a safetensors file (header length, then '{').</summary>
    public static bool LooksLikeSafetensors(ReadOnlySpan<byte> head, long fileLength)
    {
        if (head.Length < 9) return false;
        var n = BinaryPrimitives.ReadUInt64LittleEndian(head);
        return n > 1 && n <= (ulong)Math.Min(MaxHeaderBytes, fileLength - 8) && head[8] == (byte)'{';
    }

    public static SafetensorsFile Open(string path)
    {
        var stream = File.OpenRead(path);
        try
        {
            var lengthBytes = new byte[8];
            if (stream.Read(lengthBytes) != 8) throw new ClipCheckpointException(path, "too short to be a safetensors file");
            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (headerLength > MaxHeaderBytes || (long)headerLength > stream.Length - 8)
                throw new ClipCheckpointException(path, $"the safetensors header claims {headerLength} bytes but the file has {stream.Length - 8} after the length (truncated or not a safetensors file)");
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            JsonObject json;
            try { json = JsonNode.Parse(header)?.AsObject() ?? throw new JsonException("empty header"); }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                throw new ClipCheckpointException(path, $"the safetensors header is not valid JSON: {e.Message}", e);
            }
            long dataStart = 8 + (long)headerLength;
            long dataLength = stream.Length - dataStart;
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, node) in json)
            {
                if (name == "__metadata__")
                {
                    if (node is JsonObject m)
                        foreach (var (k, v) in m) metadata[k] = v?.GetValue<string>() ?? "";
                    continue;
                }
                try
                {
                    var dtype = ParseDType((string?)node?["dtype"] ?? "");
                    var shape = node!["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                    var offsets = node["data_offsets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                    long numel = shape.Aggregate(1L, (a, b) => a * b);
                    if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] - offsets[0] != numel * TensorBytes.ElementSize(dtype))
                        throw new ClipCheckpointException(path, $"tensor '{name}' has data offsets that do not match its shape and dtype");
                    if (offsets[1] > dataLength)
                        throw new ClipCheckpointException(path, $"tensor '{name}' ends at byte {offsets[1]} of the data but the file holds {dataLength} (truncated file?)");
                    entries.Add(new Entry(name, dtype, shape, offsets[0], offsets[1]));
                }
                catch (Exception e) when (e is not ClipCheckpointException)
                {
                    throw new ClipCheckpointException(path, $"tensor '{name}' has a malformed header entry: {e.Message}", e);
                }
            }
            return new SafetensorsFile(path, stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public Tensor Read(Entry entry)
    {
        stream.Position = dataStart + entry.Begin;
        long numel = entry.Shape.Aggregate(1L, (a, b) => a * b);
        using var flat = TensorBytes.ReadTensor(stream, entry.DType, numel, path, $"tensor '{entry.Name}'");
        return flat.view(entry.Shape);
    }

    /// <summary>Writes tensors (in the given order) and string metadata, through a temporary file renamed into place.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata) m[k] = v;
            header["__metadata__"] = m;
        }
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long bytes = t.numel() * TensorBytes.ElementSize(t.dtype);
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes)),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8;
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var f = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                var len = new byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(headerBytes.Length + pad));
                f.Write(len);
                f.Write(headerBytes);
                for (int i = 0; i < pad; i++) f.WriteByte((byte)' ');
                foreach (var (_, t) in list) TensorBytes.WriteTensor(f, t);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    private static ScalarType ParseDType(string name) => name switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"unsupported dtype '{name}'"),
    };

    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {dtype} cannot be written to safetensors"),
    };

    public void Dispose() => stream.Dispose();
}
