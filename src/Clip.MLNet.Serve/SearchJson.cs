using System.Text;
using System.Text.Json;
using Clip.MLNet.Search;

namespace Clip.MLNet.Serve;

/// <summary>The JSON of search results shared by <c>clip search --json</c> and <c>/api/search</c>.</summary>
public static class SearchJson
{
    /// <summary>
    /// A JSON array of <c>{"rank", "score", "path", "caption"}</c>, best first (caption null when the index has none);
    /// with <paramref name="thumbnails"/>, each object also has <c>id</c> and <c>thumbnail</c> (the URL of its thumbnail).
    /// </summary>
    public static string Write(IReadOnlyList<ClipSearchResult> results, bool thumbnails = false)
    {
        ArgumentNullException.ThrowIfNull(results);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartArray();
            foreach (var r in results)
            {
                writer.WriteStartObject();
                writer.WriteNumber("rank", r.Rank);
                writer.WriteNumber("score", r.Score);
                writer.WriteString("path", r.Path);
                if (r.Caption is null) writer.WriteNull("caption"); else writer.WriteString("caption", r.Caption);
                if (thumbnails)
                {
                    writer.WriteNumber("id", r.Id);
                    writer.WriteString("thumbnail", ThumbnailUrl(r.Id));
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>The server's URL of a result's thumbnail.</summary>
    public static string ThumbnailUrl(long id) => "/thumb/" + id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The JSON body of an error answer: <c>{"error": message}</c>.</summary>
    public static string Error(string message) => JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = message });
}
