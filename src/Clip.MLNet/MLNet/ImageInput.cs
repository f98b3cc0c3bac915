using System.Runtime.InteropServices;
using Clip.MLNet.Batching;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Reading an image column for CLIP: ML.NET images (<c>MLImage</c>, from <c>LoadImages</c>), file paths
/// (text), or encoded file bytes (a vector of bytes); each preprocessed exactly as the reference does.
/// </summary>
internal static class ImageInput
{
    public const string AcceptedTypes = ColumnRule.ImageTypes;

    public static void Check(DataViewSchema inputSchema, string column) => ColumnRule.Image.Check(inputSchema, column);

    public static void Check(SchemaShape inputSchema, string column) => ColumnRule.Image.Check(inputSchema, column);

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
        var slots = BatchRows.ValidSlots(valid, count);
        var features = model.EncodeImage(BatchRows.ValidRows((Tensor)buffer, slots, count));
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
