using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Reading an image column for CLIP: ML.NET images (<c>MLImage</c>, from <c>LoadImages</c>), file paths
/// (text), or encoded file bytes (a vector of bytes); each preprocessed exactly as the reference does.
/// </summary>
internal static class ImageInput
{
    public const string AcceptedTypes = "an image (MLImage, from LoadImages), a text column of image file paths, or a vector of bytes holding an encoded image";

    public static void Check(DataViewSchema inputSchema, string column)
    {
        var col = inputSchema.GetColumnOrNull(column);
        if (col is null) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{column}' not found; CLIP image transforms take {AcceptedTypes}.");
        if (!IsAccepted(col.Value.Type))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Schema mismatch for input column '{column}': expected {AcceptedTypes}, got {col.Value.Type}.");
    }

    public static bool IsAccepted(DataViewType type) =>
        type is ImageDataViewType || type is TextDataViewType || (type is VectorDataViewType v && v.ItemType == NumberDataViewType.Byte);

    public static void Check(SchemaShape inputSchema, string column)
    {
        if (!inputSchema.TryFind(column, out var col))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{column}' not found; CLIP image transforms take {AcceptedTypes}.");
        bool ok = (col.Kind == SchemaShape.Column.VectorKind.Scalar && (col.ItemType is ImageDataViewType || col.ItemType is TextDataViewType) && !col.IsKey)
            || (col.Kind != SchemaShape.Column.VectorKind.Scalar && col.ItemType == NumberDataViewType.Byte);
        if (!ok)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Schema mismatch for input column '{column}': expected {AcceptedTypes}, got {Describe(col)}.");
    }

    internal static string Describe(SchemaShape.Column col) =>
        (col.IsKey ? "Key<" : "") + (col.Kind == SchemaShape.Column.VectorKind.Scalar ? col.ItemType.ToString() : $"Vector<{col.ItemType}>") + (col.IsKey ? ">" : "");

    internal static bool TryFind(this SchemaShape shape, string name, out SchemaShape.Column column)
    {
        foreach (var c in shape)
            if (c.Name == name) { column = c; return true; }
        column = default;
        return false;
    }

    /// <summary>A CPU float tensor [capacity, 3, S, S] that preprocessing writes into directly.</summary>
    public static Tensor CreatePixelBuffer(int capacity, int size) => torch.empty(capacity, 3, size, size, ScalarType.Float32);

    public static Span<float> Slot(Tensor buffer, int slot)
    {
        long per = buffer.shape[1] * buffer.shape[2] * buffer.shape[3];
        return MemoryMarshal.Cast<byte, float>(buffer.bytes).Slice((int)(slot * per), (int)per);
    }

    /// <summary>Preprocesses one value of an image column into <paramref name="destination"/>.</summary>
    public static void Preprocess(ClipImagePreprocessor preprocessor, object? value, string? imageFolder, Span<float> destination)
    {
        switch (value)
        {
            case MLImage image:
                preprocessor.PreprocessInto(image, destination, image.Tag);
                break;
            case ReadOnlyMemory<char> path when path.Length > 0:
                preprocessor.PreprocessInto(ResolvePath(path, imageFolder), destination);
                break;
            case VBuffer<byte> bytes when bytes.Length > 0:
                if (bytes.IsDense) preprocessor.PreprocessInto(bytes.GetValues(), destination, "image bytes");
                else preprocessor.PreprocessInto(bytes.DenseValues().ToArray(), destination, "image bytes");
                break;
            case null:
                throw new InvalidDataException("the image is missing (null)");
            case ReadOnlyMemory<char>:
                throw new InvalidDataException("the image path is empty");
            case VBuffer<byte>:
                throw new InvalidDataException("the image bytes are empty");
            default:
                throw new InvalidDataException($"unsupported image value of type {value.GetType().Name}");
        }
    }

    public static string ResolvePath(ReadOnlyMemory<char> path, string? imageFolder)
    {
        var p = path.ToString();
        return string.IsNullOrEmpty(imageFolder) ? p : Path.Combine(imageFolder, p);
    }

    public static string? Describe(object? value, string? imageFolder) => value switch
    {
        MLImage image => string.IsNullOrEmpty(image.Tag) ? null : image.Tag,
        ReadOnlyMemory<char> { Length: > 0 } path => ResolvePath(path, imageFolder),
        _ => null,
    };

    /// <summary>Copies rows of a [n, D] float tensor into a row-major output array at the given slots.</summary>
    public static void ScatterRows(Tensor rows, float[] output, int width, IReadOnlyList<int> slots)
    {
        using var cpu = rows.to(ScalarType.Float32).cpu().contiguous();
        var values = MemoryMarshal.Cast<byte, float>(cpu.bytes);
        for (int i = 0; i < slots.Count; i++)
            values.Slice(i * width, width).CopyTo(output.AsSpan(slots[i] * width, width));
    }

    /// <summary>The valid slots of a batch.</summary>
    public static List<int> ValidSlots(bool[] valid, int count)
    {
        var slots = new List<int>(count);
        for (int s = 0; s < count; s++) if (valid[s]) slots.Add(s);
        return slots;
    }

    /// <summary>The first <paramref name="count"/> rows of a batch buffer, keeping only valid slots (no copy when all are valid).</summary>
    public static Tensor ValidRows(Tensor buffer, List<int> slots, int count)
    {
        if (slots.Count == count) return buffer.narrow(0, 0, count);
        using var index = torch.tensor(slots.Select(s => (long)s).ToArray());
        return buffer.index_select(0, index);
    }
}

/// <summary>
/// The part of an image transform's worker that does not depend on what it computes from the features: pixel buffers,
/// preprocessing a row into its slot, naming inputs in errors, and the image tower over the valid rows.
/// </summary>
internal abstract class ImageBatchWorker(ClipModel model, ClipImagePreprocessor preprocessor, string? imageFolder) : BatchWorker
{
    private readonly List<Tensor> buffers = new();

    protected ClipModel Model => model;

    public sealed override object CreateBuffer(int capacity)
    {
        var buffer = ImageInput.CreatePixelBuffer(capacity, preprocessor.Size).DetachFromDisposeScope();
        buffers.Add(buffer);
        return buffer;
    }

    public sealed override void Prepare(object buffer, int slot, object? value) =>
        ImageInput.Preprocess(preprocessor, value, imageFolder, ImageInput.Slot((Tensor)buffer, slot));

    public sealed override string? Describe(object? value) => ImageInput.Describe(value, imageFolder);

    public sealed override void Compute(object buffer, int count, bool[] valid, BatchOutputs outputs)
    {
        using var scope = NewDisposeScope();
        var slots = ImageInput.ValidSlots(valid, count);
        var features = model.EncodeImage(ImageInput.ValidRows((Tensor)buffer, slots, count));
        Write(features, slots, outputs);
    }

    /// <summary>Fills the outputs of the rows in <paramref name="slots"/> from their image features (one row each, in order).</summary>
    protected abstract void Write(Tensor features, IReadOnlyList<int> slots, BatchOutputs outputs);

    public override void Dispose()
    {
        foreach (var b in buffers) b.Dispose();
        buffers.Clear();
    }
}
