using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Holds one column's values for the rows of a batch. A batching cursor reads rows ahead of the row
/// it serves, so the values of every column passed through are kept per slot and served from here.
/// </summary>
internal abstract class ColumnCache
{
    private static readonly MethodInfo CreateTyped = typeof(ColumnCache).GetMethod(nameof(CreateFor), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Creates a cache of <paramref name="capacity"/> slots reading <paramref name="column"/> through <paramref name="getter"/>.</summary>
    public static ColumnCache Create(DataViewSchema.Column column, Delegate getter, int capacity) =>
        (ColumnCache)CreateTyped.MakeGenericMethod(column.Type.RawType).Invoke(null, new object[] { getter, capacity })!;

    /// <summary>The source cursor's getter for a column, typed by the column's raw type.</summary>
    public static Delegate SourceGetter(DataViewRow source, DataViewSchema.Column column) =>
        (Delegate)typeof(ColumnCache).GetMethod(nameof(TypedGetter), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(column.Type.RawType).Invoke(null, new object[] { source, column })!;

    private static Delegate TypedGetter<T>(DataViewRow source, DataViewSchema.Column column) => source.GetGetter<T>(column);

    private static ColumnCache CreateFor<T>(Delegate getter, int capacity) => new ColumnCache<T>((ValueGetter<T>)getter, capacity);

    /// <summary>Reads the source's current value into <paramref name="slot"/>.</summary>
    public abstract void Fill(int slot);

    /// <summary>The value in <paramref name="slot"/>, boxed (for the stage's own input).</summary>
    public abstract object? Boxed(int slot);

    /// <summary>A getter serving the slot that <paramref name="currentSlot"/> names at call time.</summary>
    public abstract Delegate MakeGetter(Func<ColumnCache> current, Func<int> currentSlot);

    /// <summary>Disposes values that own resources (images).</summary>
    public abstract void Clear();
}

internal sealed class ColumnCache<T> : ColumnCache
{
    private readonly ValueGetter<T> getter;
    private readonly T[] slots;

    public ColumnCache(ValueGetter<T> getter, int capacity)
    {
        this.getter = getter;
        slots = new T[capacity];
    }

    // Each slot is a separate destination: getters that reuse their destination's buffers (VBuffer)
    // or dispose its previous value (ML.NET's image loader) only ever touch this slot's old value.
    public override void Fill(int slot) => getter(ref slots[slot]);

    public override object? Boxed(int slot) => slots[slot];

    public override Delegate MakeGetter(Func<ColumnCache> current, Func<int> currentSlot)
    {
        var copy = ValueCopier<T>.Copy;
        return (ValueGetter<T>)((ref T dst) => copy(((ColumnCache<T>)current()).slots[currentSlot()], ref dst));
    }

    public override void Clear()
    {
        for (int i = 0; i < slots.Length; i++)
        {
            if (slots[i] is IDisposable d) d.Dispose();
            slots[i] = default!;
        }
    }
}

/// <summary>Copies a value to a getter's destination; vectors are copied so callers cannot alter the cache.</summary>
internal static class ValueCopier<T>
{
    public delegate void CopyFn(T source, ref T destination);

    public static readonly CopyFn Copy = Build();

    private static CopyFn Build()
    {
        var t = typeof(T);
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(VBuffer<>))
        {
            var method = typeof(ValueCopier<T>).GetMethod(nameof(CopyVBuffer), BindingFlags.NonPublic | BindingFlags.Static)!
                .MakeGenericMethod(t.GetGenericArguments()[0]);
            return (CopyFn)method.CreateDelegate(typeof(CopyFn));
        }
        return (T source, ref T destination) => destination = source;
    }

    private static void CopyVBuffer<TItem>(VBuffer<TItem> source, ref VBuffer<TItem> destination) => source.CopyTo(ref destination);
}
