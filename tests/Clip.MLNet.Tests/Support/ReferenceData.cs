using System.Text.Json.Nodes;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Support;

/// <summary>The reference manifest's images and captions, as test inputs.</summary>
internal static class ReferenceData
{
    private static readonly Lazy<JsonObject> Manifest = new(() => JsonNode.Parse(File.ReadAllText(Fixtures.ReferencePath("manifest.json")))!.AsObject());

    public static IReadOnlyList<string> ImageNames => Manifest.Value["images"]!.AsArray().Select(n => (string)n!).ToArray();
    public static IReadOnlyList<string> ImagePaths => ImageNames.Select(n => Fixtures.ReferencePath("images", n)).ToArray();
    public static IReadOnlyList<string> Captions => Manifest.Value["captions"]!.AsArray().Select(n => (string)n!).ToArray();

    /// <summary>The reference ViT with its vocabulary (loaded once per test class; do not dispose).</summary>
    public static ClipModel Vit => VitModel.Value;
    private static readonly Lazy<ClipModel> VitModel = new(() =>
        ClipModel.Load(Fixtures.ReferencePath("vit", "openai_jit.pt"), new ClipLoadOptions { VocabularyPath = Fixtures.Vocab }));

    public sealed class ImageRow
    {
        public string Image { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    public static IDataView ImageView(MLContext ml, IEnumerable<string>? paths = null, IEnumerable<string>? labels = null)
    {
        var p = (paths ?? ImagePaths).ToArray();
        var l = (labels ?? p.Select(x => Path.GetFileName(x).StartsWith("china", StringComparison.Ordinal) ? "china" : "flower")).ToArray();
        return ml.Data.LoadFromEnumerable(p.Select((x, i) => new ImageRow { Image = x, Label = l[i] }));
    }

    public static float[][] Column(IDataView view, string name)
    {
        var col = view.Schema[name];
        var rows = new List<float[]>();
        using var cursor = view.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<Microsoft.ML.Data.VBuffer<float>>(col);
        var value = default(Microsoft.ML.Data.VBuffer<float>);
        while (cursor.MoveNext())
        {
            getter(ref value);
            rows.Add(value.DenseValues().ToArray());
        }
        return rows.ToArray();
    }

    public static float[] Row(Tensor t, long i) => t[i].to(ScalarType.Float32).cpu().data<float>().ToArray();

    public static double RelativeError(float[] actual, float[] expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            num += Math.Pow(actual[i] - expected[i], 2);
            den += Math.Pow(expected[i], 2);
        }
        return Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-30);
    }
}
