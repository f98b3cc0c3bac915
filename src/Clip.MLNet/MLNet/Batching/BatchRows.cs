using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

/// <summary>Rows of a batch that both towers' workers use: the valid slots, their rows, and scattering results back to them.</summary>
internal static class BatchRows
{
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
