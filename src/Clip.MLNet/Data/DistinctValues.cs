namespace Clip.MLNet.Data;

/// <summary>The distinct values of a list in first-seen order, and for each item the index of its value among them.</summary>
internal static class DistinctValues
{
    /// <summary>
    /// Returns <c>Values</c>, the distinct items in the order they first appear, and <c>IndexOf</c>, for each item the
    /// position of its value in <c>Values</c> (equal items share an index: identical captions, a photo listed twice).
    /// </summary>
    public static (List<T> Values, long[] IndexOf) Of<T>(IReadOnlyList<T> items, IEqualityComparer<T>? comparer = null) where T : notnull
    {
        var positions = new Dictionary<T, int>(comparer);
        var values = new List<T>();
        var indexOf = new long[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            if (!positions.TryGetValue(items[i], out int position))
            {
                position = values.Count;
                positions[items[i]] = position;
                values.Add(items[i]);
            }
            indexOf[i] = position;
        }
        return (values, indexOf);
    }
}
