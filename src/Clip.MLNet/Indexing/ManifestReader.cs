using System.Text;
using Parquet;

namespace Clip.MLNet.Indexing;

/// <summary>Reads an index manifest: CSV (RFC 4180 quoting), TSV (tab-separated, no quoting) or Parquet, with a header naming its columns.</summary>
internal static class ManifestReader
{
    public static ClipIndexItems Read(string path, string pathColumn, string? captionColumn, CancellationToken ct)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"{path}: no such manifest", path);
        var root = Path.GetDirectoryName(full)!;
        var extension = Path.GetExtension(full).ToLowerInvariant();
        var (header, rows) = extension switch
        {
            ".csv" => ReadDelimited(full, ',', quoted: true),
            ".tsv" => ReadDelimited(full, '\t', quoted: false),
            ".parquet" => ReadParquet(full, pathColumn, captionColumn ?? "caption"),
            _ => throw new InvalidDataException($"{path}: unknown manifest type '{extension}' (expected .csv, .tsv or .parquet)"),
        };
        int pathIndex = header.IndexOf(pathColumn);
        if (pathIndex < 0)
            throw new InvalidDataException($"{path}: the manifest has no '{pathColumn}' column (its columns: {string.Join(", ", header)})");
        int captionIndex = header.IndexOf(captionColumn ?? "caption");
        if (captionColumn is not null && captionIndex < 0)
            throw new InvalidDataException($"{path}: the manifest has no '{captionColumn}' column (its columns: {string.Join(", ", header)})");
        var items = new List<ClipIndexItem>(rows.Count);
        for (int r = 0; r < rows.Count; r++)
        {
            if ((r & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            var row = rows[r];
            if (row.Length != header.Count)
                throw new InvalidDataException($"{path}: row {r + 2} has {row.Length} fields, the header has {header.Count}");
            var name = row[pathIndex] ?? "";
            var file = name.Length == 0 ? "" : Path.GetFullPath(Path.Combine(root, name));
            items.Add(new ClipIndexItem(name, captionIndex >= 0 ? row[captionIndex] ?? "" : null, file, -1, 0, 0));
        }
        return new ClipIndexItems(root, items, [], HasCaptions: captionIndex >= 0);
    }

    private static (List<string> Header, List<string?[]> Rows) ReadDelimited(string path, char delimiter, bool quoted)
    {
        using var reader = new StreamReader(path, new UTF8Encoding(false, true), detectEncodingFromByteOrderMarks: true);
        var records = new List<string?[]>();
        var fields = new List<string?>();
        var field = new StringBuilder();
        bool inQuotes = false, any = false, wasQuoted = false;
        int c;
        while ((c = reader.Read()) >= 0)
        {
            char ch = (char)c;
            if (inQuotes)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else inQuotes = false;
                }
                else field.Append(ch);
                continue;
            }
            if (ch == '"' && quoted && field.Length == 0 && !wasQuoted) { inQuotes = true; wasQuoted = true; any = true; continue; }
            if (ch == delimiter) { fields.Add(field.ToString()); field.Clear(); wasQuoted = false; any = true; continue; }
            if (ch == '\r' && reader.Peek() == '\n') continue;
            if (ch == '\n')
            {
                fields.Add(field.ToString());
                field.Clear();
                wasQuoted = false;
                if (any || fields.Count > 1 || fields[0]!.Length > 0) records.Add(fields.ToArray());
                fields.Clear();
                any = false;
                continue;
            }
            field.Append(ch);
            any = true;
        }
        if (inQuotes) throw new InvalidDataException($"{path}: a quoted field is not closed before the end of the file");
        if (any || field.Length > 0)
        {
            fields.Add(field.ToString());
            records.Add(fields.ToArray());
        }
        if (records.Count == 0) throw new InvalidDataException($"{path}: the manifest is empty (expected a header row)");
        var header = records[0].Select(h => (h ?? "").Trim()).ToList();
        records.RemoveAt(0);
        return (header, records);
    }

    private static (List<string> Header, List<string?[]> Rows) ReadParquet(string path, string pathColumn, string captionColumn)
    {
        try
        {
            return ReadParquetAsync(path, pathColumn, captionColumn).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not InvalidDataException and not IOException and not OperationCanceledException)
        {
            throw new InvalidDataException($"{path}: not a readable Parquet file ({e.Message})", e);
        }
    }

    private static async Task<(List<string> Header, List<string?[]> Rows)> ReadParquetAsync(string path, string pathColumn, string captionColumn)
    {
        using var stream = File.OpenRead(path);
        await using var reader = await ParquetReader.CreateAsync(stream);
        var fields = reader.Schema.GetDataFields();
        var header = fields.Select(f => f.Name).ToList();
        // Only the columns the index reads are loaded (and must hold strings); the others stay empty.
        var wanted = fields.Where(f => f.Name == pathColumn || f.Name == captionColumn).ToList();
        foreach (var f in wanted)
            if (f.ClrType != typeof(string) && f.ClrType != typeof(ReadOnlyMemory<char>))
                throw new InvalidDataException($"{path}: column '{f.Name}' holds {f.ClrType.Name}, not strings");
        var rows = new List<string?[]>();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            int n = checked((int)group.RowCount);
            var columns = new Dictionary<string, string?[]>();
            foreach (var f in wanted)
            {
                var values = new string?[n];
                await group.ReadAsync(f, values.AsMemory()!);
                columns[f.Name] = values;
            }
            for (int r = 0; r < n; r++)
            {
                var row = new string?[header.Count];
                for (int c = 0; c < header.Count; c++)
                    if (columns.TryGetValue(header[c], out var col)) row[c] = col[r];
                rows.Add(row);
            }
        }
        return (header, rows);
    }
}
