using Microsoft.ML;
using Microsoft.ML.Data;
using Parquet;

namespace Clip.MLNet.Indexing;

/// <summary>One metadata row of an index partition.</summary>
/// <param name="ImagePath">The item's name: its path relative to the input root, as written in the manifest, or <c>SHARD_FILE/KEY</c>.</param>
/// <param name="Caption">Its caption, or null.</param>
public sealed record ClipIndexEntry(string ImagePath, string? Caption);

/// <summary>Reads an index folder written by <see cref="ClipIndexer"/> (or any folder in clip-retrieval's layout with an <c>index.json</c>).</summary>
public static class ClipIndexReader
{
    /// <summary>The index's <c>index.json</c>.</summary>
    /// <exception cref="FileNotFoundException">The folder has no <c>index.json</c>.</exception>
    public static ClipIndexInfo ReadInfo(string folder)
    {
        var path = Path.Combine(folder, "index.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{folder}: not an index folder (no index.json)", path);
        return ClipIndexInfo.Read(path);
    }

    /// <summary>The layout of an index folder, its partition count read from <c>index.json</c>.</summary>
    public static ClipIndexLayout ReadLayout(string folder) => new(Path.GetFullPath(folder), ReadInfo(folder).Partitions);

    /// <summary>The rows of a partition's metadata file, in order.</summary>
    public static IReadOnlyList<ClipIndexEntry> ReadMetadata(string parquetPath) => ReadMetadataAsync(parquetPath).GetAwaiter().GetResult();

    private static async Task<IReadOnlyList<ClipIndexEntry>> ReadMetadataAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        await using var reader = await ParquetReader.CreateAsync(stream);
        var fields = reader.Schema.GetDataFields();
        var pathField = fields.FirstOrDefault(f => f.Name == "image_path") ?? throw new InvalidDataException($"{path}: no image_path column");
        var captionField = fields.FirstOrDefault(f => f.Name == "caption");
        var rows = new List<ClipIndexEntry>();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            int n = checked((int)group.RowCount);
            var names = new string?[n];
            await group.ReadAsync(pathField, names.AsMemory()!);
            var captions = new string?[n];
            if (captionField is not null) await group.ReadAsync(captionField, captions.AsMemory()!);
            for (int i = 0; i < n; i++) rows.Add(new ClipIndexEntry(names[i] ?? "", captions[i]));
        }
        return rows;
    }

    /// <summary>
    /// The complete partitions of an index as an ML.NET <see cref="IDataView"/>, read lazily partition by partition:
    /// <c>ImageEmbedding</c> (float vector of the embedding size, L2-normalised), <c>TextEmbedding</c> when the index has
    /// captions, <c>ImagePath</c>, <c>Caption</c> (text) and <c>Partition</c> (int).
    /// </summary>
    public static IDataView LoadDataView(MLContext mlContext, string folder)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var info = ReadInfo(folder);
        var layout = new ClipIndexLayout(Path.GetFullPath(folder), info.Partitions);
        var schema = SchemaDefinition.Create(typeof(IndexRow));
        schema[nameof(IndexRow.ImageEmbedding)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, info.EmbeddingDim);
        if (info.HasCaptions)
            schema[nameof(IndexRow.TextEmbedding)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, info.EmbeddingDim);
        else
            schema.Remove(schema[nameof(IndexRow.TextEmbedding)]);
        return mlContext.Data.LoadFromEnumerable(new Rows(layout, info), schema);
    }

    internal sealed class IndexRow
    {
        public float[] ImageEmbedding = [];
        public float[] TextEmbedding = [];
        public string ImagePath = "";
        public string Caption = "";
        public int Partition;
    }

    /// <summary>The rows, re-read from the files on every enumeration (every cursor).</summary>
    private sealed class Rows(ClipIndexLayout layout, ClipIndexInfo info) : IEnumerable<IndexRow>
    {
        public IEnumerator<IndexRow> GetEnumerator()
        {
            for (int p = 0; p < layout.Partitions; p++)
            {
                if (!layout.IsComplete(p)) continue;
                var metadata = ReadMetadata(layout.MetadataPath(p));
                using var images = new RowReader(layout.ImageEmbeddingPath(p), metadata.Count, info.EmbeddingDim);
                using var texts = info.HasCaptions ? new RowReader(layout.TextEmbeddingPath(p), metadata.Count, info.EmbeddingDim) : null;
                for (int i = 0; i < metadata.Count; i++)
                {
                    yield return new IndexRow
                    {
                        ImageEmbedding = images.Next(),
                        TextEmbedding = texts?.Next() ?? [],
                        ImagePath = metadata[i].ImagePath,
                        Caption = metadata[i].Caption ?? "",
                        Partition = p,
                    };
                }
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Reads a float16 (or float32) embedding file row by row as float32.</summary>
    private sealed class RowReader : IDisposable
    {
        private readonly FileStream stream;
        private readonly byte[] row;
        private readonly int columns;
        private readonly int elementBytes;

        public RowReader(string path, int expectedRows, int columns)
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16);
            var info = NpyFile.ReadInfo(stream, path);
            if (info.Rows != expectedRows || info.Columns != columns)
            {
                stream.Dispose();
                throw new InvalidDataException($"{path}: {info.Rows} x {info.Columns}, its metadata has {expectedRows} rows of {columns} (index.json)");
            }
            this.columns = columns;
            elementBytes = info.ElementBytes;
            if (elementBytes == 8) { stream.Dispose(); throw new InvalidDataException($"{path}: float64 embeddings are not read"); }
            stream.Position = info.DataOffset;
            row = new byte[columns * elementBytes];
        }

        public float[] Next()
        {
            stream.ReadExactly(row);
            var values = new float[columns];
            if (elementBytes == 2)
            {
                var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(row);
                for (int i = 0; i < columns; i++) values[i] = (float)halves[i];
            }
            else System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(row).CopyTo(values);
            return values;
        }

        public void Dispose() => stream.Dispose();
    }
}
