using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Clip.MLNet.Indexing;

/// <summary>
/// An index's <c>index.json</c>: what it was built from and how it is cut. Every run checks it: a run with another
/// model, partition count or item list is refused.
/// </summary>
/// <param name="ModelName">The model as given: a full path, or a registered name.</param>
/// <param name="ModelSha256">SHA-256 of the model's weights (<see cref="ClipIndexer.ModelSha256"/>).</param>
/// <param name="ImageSize">The preprocessing's input size.</param>
/// <param name="Mean">The preprocessing's per-channel mean.</param>
/// <param name="Std">The preprocessing's per-channel standard deviation.</param>
/// <param name="EmbeddingDim">Columns of the embedding files.</param>
/// <param name="Partitions">N: the number of partitions.</param>
/// <param name="Items">The number of items listed (before unreadable ones were skipped).</param>
/// <param name="ItemsSha256">SHA-256 of the ordered item list (names and captions).</param>
/// <param name="InputKind"><c>images</c>, <c>manifest</c> or <c>webdataset</c>.</param>
/// <param name="InputRoot">The folder the metadata's <c>image_path</c> values are relative to (absolute).</param>
/// <param name="Input">The inputs as given.</param>
/// <param name="HasCaptions">Whether the items have captions (and the partitions <c>text_emb</c> files).</param>
public sealed record ClipIndexInfo(
    string ModelName, string ModelSha256, int ImageSize, IReadOnlyList<float> Mean, IReadOnlyList<float> Std, int EmbeddingDim,
    int Partitions, long Items, string ItemsSha256, string InputKind, string InputRoot, string Input, bool HasCaptions)
{
    /// <summary>The format tag written as <c>format</c>.</summary>
    public const string Format = "clip-mlnet-index/1";

    /// <summary>How images are resized to the input (filter, mode), as <see cref="Describe(ClipImagePreprocessor)"/> words it.</summary>
    public string Resize { get; init; } = "bicubic, shorter side to size, center crop";

    /// <summary>A preprocessor's resize in words (filter and mode; the model's own preprocessing, see <see cref="ClipModel.ImagePreprocessing"/>).</summary>
    public static string Describe(ClipImagePreprocessor preprocessor) =>
        (preprocessor.Interpolation == ClipInterpolation.Bilinear ? "bilinear" : "bicubic") + ", " + preprocessor.ResizeMode switch
        {
            ClipResizeMode.Squash => "squashed to size",
            ClipResizeMode.Longest => $"longer side to size, padded with {preprocessor.FillColor}",
            _ => "shorter side to size, center crop",
        };

    /// <summary>The file's JSON text (indented, UTF-8, fields in a fixed order).</summary>
    public string ToJson()
    {
        var node = new JsonObject
        {
            ["format"] = Format,
            ["model"] = new JsonObject { ["name"] = ModelName, ["sha256"] = ModelSha256 },
            ["preprocessing"] = new JsonObject
            {
                ["size"] = ImageSize,
                ["resize"] = Resize,
                ["mean"] = new JsonArray(Mean.Select(m => (JsonNode)JsonValue.Create(m)).ToArray()),
                ["std"] = new JsonArray(Std.Select(m => (JsonNode)JsonValue.Create(m)).ToArray()),
            },
            ["embedding_dim"] = EmbeddingDim,
            ["partitions"] = Partitions,
            ["items"] = Items,
            ["items_sha256"] = ItemsSha256,
            ["input"] = new JsonObject { ["kind"] = InputKind, ["root"] = InputRoot, ["given"] = Input },
            ["captions"] = HasCaptions,
        };
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Reads an <c>index.json</c>.</summary>
    /// <exception cref="InvalidDataException">The file is not an index description.</exception>
    public static ClipIndexInfo Read(string path)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path, Encoding.UTF8)) as JsonObject
                ?? throw new InvalidDataException("not a JSON object");
            if ((string?)node["format"] != Format) throw new InvalidDataException($"format is not {Format}");
            var model = node["model"]!.AsObject();
            var pre = node["preprocessing"]!.AsObject();
            var input = node["input"]!.AsObject();
            return new ClipIndexInfo(
                (string)model["name"]!, (string)model["sha256"]!, (int)pre["size"]!,
                pre["mean"]!.AsArray().Select(v => (float)v!).ToArray(), pre["std"]!.AsArray().Select(v => (float)v!).ToArray(),
                (int)node["embedding_dim"]!, (int)node["partitions"]!, (long)node["items"]!, (string)node["items_sha256"]!,
                (string)input["kind"]!, (string)input["root"]!, (string)input["given"]!, (bool)node["captions"]!)
            {
                Resize = (string?)pre["resize"] ?? "bicubic, shorter side to size, center crop",
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"{path}: not a clip index description ({e.Message.TrimEnd('.')})", e);
        }
    }

    /// <summary>Refuses a run that does not belong to this index, naming both sides; null when it does.</summary>
    internal string? Mismatch(ClipIndexInfo run, string path)
    {
        if (!string.Equals(ModelSha256, run.ModelSha256, StringComparison.OrdinalIgnoreCase) || EmbeddingDim != run.EmbeddingDim)
            return $"{path} belongs to an index of model {ModelName} (sha256 {ModelSha256}), this run's model is {run.ModelName} (sha256 {run.ModelSha256}); use another output folder";
        if (Partitions != run.Partitions)
            return $"{path} belongs to an index cut into {Partitions} partitions, this run asks for {run.Partitions}; use --partitions {Partitions} or another output folder";
        if (Items != run.Items || ItemsSha256 != run.ItemsSha256)
            return $"{path} belongs to an index of {Items} items (list sha256 {ItemsSha256}, from {Input}), this run lists {run.Items} items (list sha256 {run.ItemsSha256}, from {run.Input}); use another output folder";
        return null;
    }
}
