using static TorchSharp.torch;

namespace Clip.MLNet.Weights;

/// <summary>Moving raw little-endian tensor bytes between streams and CPU tensors without extra copies.</summary>
internal static class TensorBytes
{
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"dtype {dtype} is not supported in checkpoints"),
    };

    /// <summary>Reads <paramref name="numel"/> elements from <paramref name="stream"/> into a new 1-D CPU tensor.</summary>
    public static Tensor ReadTensor(Stream stream, ScalarType dtype, long numel, string file, string what)
    {
        var t = empty(numel, dtype);
        try
        {
            var span = t.bytes;
            long expected = numel * ElementSize(dtype);
            if (span.Length != expected) throw new InvalidOperationException("unexpected tensor byte layout");
            int read = 0;
            while (read < span.Length)
            {
                int n = stream.Read(span[read..]);
                if (n == 0) throw new ClipCheckpointException(file, $"{what} ends after {read} of {expected} bytes (truncated file?)");
                read += n;
            }
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>Writes a CPU tensor's bytes (made contiguous) to <paramref name="stream"/>.</summary>
    public static void WriteTensor(Stream stream, Tensor tensor)
    {
        using var cpu = tensor.detach().cpu().contiguous();
        stream.Write(cpu.bytes);
    }
}
