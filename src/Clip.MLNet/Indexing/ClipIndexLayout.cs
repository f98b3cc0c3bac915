using System.Globalization;

namespace Clip.MLNet.Indexing;

/// <summary>
/// The files of an index folder, in clip-retrieval's layout: <c>img_emb/img_emb_{i}.npy</c> (float16, L2-normalised),
/// <c>text_emb/text_emb_{i}.npy</c> when the items have captions, <c>metadata/metadata_{i}.parquet</c> (<c>image_path</c>,
/// <c>caption</c>; one row per embedding row), <c>failed/failed_{i}.json</c> for items that could not be read, and
/// <c>index.json</c>; <c>{i}</c> is zero-padded to the number of digits of the partition count.
/// </summary>
/// <param name="Root">The index folder.</param>
/// <param name="Partitions">The partition count N.</param>
public sealed record ClipIndexLayout(string Root, int Partitions)
{
    /// <summary>The digits of a partition number in file names (the digits of N).</summary>
    public int Digits => Partitions.ToString(CultureInfo.InvariantCulture).Length;

    /// <summary>Partition <paramref name="partition"/>'s number as written in file names.</summary>
    public string Number(int partition) => partition.ToString(CultureInfo.InvariantCulture).PadLeft(Digits, '0');

    /// <summary><c>index.json</c>.</summary>
    public string InfoPath => Path.Combine(Root, "index.json");

    /// <summary>Where partial files are written before they are renamed into place (<c>.partial</c>).</summary>
    public string PartialFolder => Path.Combine(Root, ".partial");

    /// <summary>The image embeddings of a partition; the file exists only once the partition is complete.</summary>
    public string ImageEmbeddingPath(int partition) => Path.Combine(Root, "img_emb", $"img_emb_{Number(partition)}.npy");

    /// <summary>The caption embeddings of a partition (indexes with captions).</summary>
    public string TextEmbeddingPath(int partition) => Path.Combine(Root, "text_emb", $"text_emb_{Number(partition)}.npy");

    /// <summary>The metadata of a partition: <c>image_path</c> and <c>caption</c>, one row per embedding row.</summary>
    public string MetadataPath(int partition) => Path.Combine(Root, "metadata", $"metadata_{Number(partition)}.parquet");

    /// <summary>The items of a partition that could not be read (only written when there are some).</summary>
    public string FailedPath(int partition) => Path.Combine(Root, "failed", $"failed_{Number(partition)}.json");

    /// <summary>Whether partition <paramref name="partition"/> is complete (its <c>img_emb</c> file exists).</summary>
    public bool IsComplete(int partition) => File.Exists(ImageEmbeddingPath(partition));

    /// <summary>The first item and the item count of partition <paramref name="partition"/> of <paramref name="items"/>: N contiguous ranges.</summary>
    public (long Start, long Count) Range(int partition, long items)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(partition, Partitions);
        long start = (long)((System.Numerics.BigInteger)items * partition / Partitions);
        long end = (long)((System.Numerics.BigInteger)items * (partition + 1) / Partitions);
        return (start, end - start);
    }
}
