using System.Text.Json.Nodes;
using Clip.MLNet.Modeling;
using Clip.MLNet.Onnx;
using Clip.MLNet.Tests.Support;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Onnx;

/// <summary>The reference ViT and ResNet, each exported once (fp32, opset 17) for the tests of this class.</summary>
public sealed class OnnxExportFixture : IDisposable
{
    private readonly TempDir dir = new();

    public OnnxExportFixture()
    {
        using (var vit = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_state_dict.pt")))
            Vit = ClipOnnxExporter.Export(vit, Path.Combine(dir.Path, "vit"), new ClipOnnxExportOptions { VocabularyPath = Fixtures.Vocab });
        using (var rn = ClipModel.Load(Fixtures.ReferencePath("rn", "openai_state_dict.pt")))
            Rn = ClipOnnxExporter.Export(rn, Path.Combine(dir.Path, "rn"), new ClipOnnxExportOptions { VocabularyPath = Fixtures.Vocab });
    }

    public ClipOnnxExportResult Vit { get; }
    public ClipOnnxExportResult Rn { get; }

    public ClipOnnxExportResult Of(string name) => name == "vit" ? Vit : Rn;

    public void Dispose() => dir.Dispose();
}

/// <summary>
/// The exported encoders, run by ONNX Runtime, compute the reference's features (1e-4 relative, fp32) for one
/// item and for the fixture's whole batch; the files carry what clip_onnx.json promises; bad input is refused.
/// </summary>
public class OnnxExportTests(OnnxExportFixture exports, Xunit.Abstractions.ITestOutputHelper log) : IClassFixture<OnnxExportFixture>
{
    internal static float[] Run(InferenceSession session, string input, Tensor value, string output)
    {
        using var cpu = value.contiguous().cpu();
        var dims = cpu.shape.Select(d => (int)d).ToArray();
        NamedOnnxValue named = cpu.dtype == ScalarType.Int64
            ? NamedOnnxValue.CreateFromTensor(input, new DenseTensor<long>(cpu.data<long>().ToArray(), dims))
            : NamedOnnxValue.CreateFromTensor(input, new DenseTensor<float>(cpu.to(ScalarType.Float32).data<float>().ToArray(), dims));
        using var results = session.Run([named]);
        Assert.Equal(output, results.First().Name);
        return results.First().AsTensor<float>().ToArray();
    }

    internal static SessionOptions TwoThreads() => new() { IntraOpNumThreads = 2, InterOpNumThreads = 1 };

    private double RelativeError(float[] actual, Tensor expected)
    {
        using var a = torch.tensor(actual).reshape(expected.shape);
        double error = Fixtures.RelativeError(a, expected);
        log.WriteLine($"[{string.Join(", ", expected.shape)}]: relative error {error:E2}");
        return error;
    }

    [Theory]
    [InlineData("vit")]
    [InlineData("rn")]
    public void ImageEncoderMatchesTheReference(string model)
    {
        using var session = new InferenceSession(exports.Of(model).ImageEncoderPath, TwoThreads());
        var pixels = Fixtures.Expected("pixel_values_224");
        var expected = Fixtures.Expected($"{model}.image_features");
        Assert.InRange(RelativeError(Run(session, "pixel_values", pixels, "image_features"), expected), 0, 1e-4);
        using var one = pixels.narrow(0, 0, 1);
        using var first = expected.narrow(0, 0, 1);
        Assert.InRange(RelativeError(Run(session, "pixel_values", one, "image_features"), first), 0, 1e-4);
    }

    [Theory]
    [InlineData("vit")]
    [InlineData("rn")]
    public void TextEncoderMatchesTheReference(string model)
    {
        using var session = new InferenceSession(exports.Of(model).TextEncoderPath, TwoThreads());
        var tokens = Fixtures.Expected("text_tokens").to(ScalarType.Int64);
        var expected = Fixtures.Expected($"{model}.text_features");
        Assert.InRange(RelativeError(Run(session, "text_tokens", tokens, "text_features"), expected), 0, 1e-4);
        using var one = tokens.narrow(0, 0, 1);
        using var first = expected.narrow(0, 0, 1);
        Assert.InRange(RelativeError(Run(session, "text_tokens", one, "text_features"), first), 0, 1e-4);

        // The sequence axis is dynamic: tokens cut after the longest text give the same features.
        long longest = tokens.argmax(1).max().item<long>() + 1;
        Assert.True(longest < tokens.shape[1]);
        using var cut = tokens.narrow(1, 0, longest);
        Assert.InRange(RelativeError(Run(session, "text_tokens", cut, "text_features"), expected), 0, 1e-4);
    }

    [Fact]
    public void FilesDescribeTheExport()
    {
        var vit = exports.Vit;
        Assert.Equal(17, vit.Opset);
        Assert.Equal(8, vit.IrVersion);
        using var session = new InferenceSession(vit.ImageEncoderPath, TwoThreads());
        var input = session.InputMetadata["pixel_values"];
        Assert.Equal(new[] { -1, 3, 224, 224 }, input.Dimensions);
        Assert.Equal("batch", input.SymbolicDimensions[0]);
        Assert.Equal(new[] { -1, 64 }, session.OutputMetadata["image_features"].Dimensions);
        using var text = new InferenceSession(vit.TextEncoderPath, TwoThreads());
        Assert.Equal(typeof(long), text.InputMetadata["text_tokens"].ElementType);
        Assert.Equal(new[] { -1, -1 }, text.InputMetadata["text_tokens"].Dimensions);

        var json = JsonNode.Parse(File.ReadAllText(vit.ConfigPath))!;
        Assert.Equal(77, (int)json["context_length"]!);
        Assert.Equal(224, (int)json["preprocessing"]!["image_size"]!);
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_state_dict.pt"));
        Assert.Equal(model.LogitScale, (float)json["logit_scale"]!, 5);
        Assert.Equal("bpe_simple_vocab_16e6.txt.gz", (string)json["tokenizer"]!["files"]![0]!);
        var copied = Path.Combine(Path.GetDirectoryName(vit.ConfigPath)!, "bpe_simple_vocab_16e6.txt.gz");
        Assert.Equal(File.ReadAllBytes(Fixtures.Vocab), File.ReadAllBytes(copied));
        Assert.Null(json["logit_bias"]);
    }

    [Fact]
    public void HuggingFaceFolderBringsItsTokenizerFiles()
    {
        using var dir = new TempDir();
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "hf"));
        var result = ClipOnnxExporter.Export(model, dir.Path, new ClipOnnxExportOptions { ModelPath = Fixtures.ReferencePath("vit", "hf") });
        var json = JsonNode.Parse(File.ReadAllText(result.ConfigPath))!;
        var files = json["tokenizer"]!["files"]!.AsArray().Select(n => (string)n!).ToArray();
        Assert.Contains("vocab.json", files);
        Assert.Contains("merges.txt", files);
        Assert.True(File.Exists(dir.File("merges.txt")));
    }

    [Fact]
    public void ExactGeluModelMatchesTheReference()
    {
        using var dir = new TempDir();
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "hf-gelu"));
        Assert.Equal(ClipActivation.Gelu, model.Config.Activation);
        var result = ClipOnnxExporter.Export(model, dir.Path);
        using var image = new InferenceSession(result.ImageEncoderPath, TwoThreads());
        Assert.InRange(RelativeError(Run(image, "pixel_values", Fixtures.Expected("pixel_values_224"), "image_features"), Fixtures.Expected("vit_gelu.image_features")), 0, 1e-4);
        using var text = new InferenceSession(result.TextEncoderPath, TwoThreads());
        var tokens = Fixtures.Expected("text_tokens").to(ScalarType.Int64);
        Assert.InRange(RelativeError(Run(text, "text_tokens", tokens, "text_features"), Fixtures.Expected("vit_gelu.text_features")), 0, 1e-4);
    }

    [Fact]
    public void NoTokenizerIsSaidInTheDescription()
    {
        using var dir = new TempDir();
        using var model = ClipModel.Load(Fixtures.ReferencePath("rn", "openai_state_dict.pt"));
        var result = ClipOnnxExporter.Export(model, dir.Path);
        var json = JsonNode.Parse(File.ReadAllText(result.ConfigPath))!.AsObject();
        Assert.True(json.ContainsKey("tokenizer"));
        Assert.Null(json["tokenizer"]);
        Assert.Contains("--vocab", (string)json["tokenizer_note"]!);
    }

    [Fact]
    public void ExternalDataAndAnotherOpsetRun()
    {
        // A threshold of zero moves every weight into image_encoder.onnx.data, as models over 2 GB need.
        using var dir = new TempDir();
        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_state_dict.pt"));
        var result = ClipOnnxExporter.Export(model, dir.Path, new ClipOnnxExportOptions { Opset = 21, ExternalDataThreshold = 0 });
        Assert.Equal(10, result.IrVersion);
        Assert.True(File.Exists(dir.File("image_encoder.onnx.data")));
        Assert.True(new FileInfo(dir.File("image_encoder.onnx")).Length < 100_000);
        using var session = new InferenceSession(result.ImageEncoderPath, TwoThreads());
        var pixels = Fixtures.Expected("pixel_values_224");
        Assert.InRange(RelativeError(Run(session, "pixel_values", pixels, "image_features"), Fixtures.Expected("vit.image_features")), 0, 1e-4);
    }

    [Theory]
    [InlineData("vit")]
    [InlineData("rn")]
    public void HalfPrecisionExportKeepsFloat32Edges(string name)
    {
        using var dir = new TempDir();
        using var model = ClipModel.Load(Fixtures.ReferencePath(name, "openai_state_dict.pt"));
        var result = ClipOnnxExporter.Export(model, dir.Path, new ClipOnnxExportOptions { Precision = ScalarType.Float16 });
        Assert.True(new FileInfo(result.TextEncoderPath).Length < new FileInfo(exports.Of(name).TextEncoderPath).Length * 0.6);
        using var image = new InferenceSession(result.ImageEncoderPath, TwoThreads());
        Assert.Equal(typeof(float), image.InputMetadata["pixel_values"].ElementType);
        Assert.InRange(RelativeError(Run(image, "pixel_values", Fixtures.Expected("pixel_values_224"), "image_features"), Fixtures.Expected($"{name}.image_features")), 0, 2e-3);
        using var text = new InferenceSession(result.TextEncoderPath, TwoThreads());
        var tokens = Fixtures.Expected("text_tokens").to(ScalarType.Int64);
        Assert.InRange(RelativeError(Run(text, "text_tokens", tokens, "text_features"), Fixtures.Expected($"{name}.text_features")), 0, 2e-3);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(22)]
    [InlineData(0)]
    public void UnknownOpsetIsRefused(int opset)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ClipOnnxExporter.Export(ReferenceData.Vit, dir.File("out"), new ClipOnnxExportOptions { Opset = opset }));
        Assert.Contains($"opset {opset}", e.Message);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void NonEmptyOutputFolderIsRefusedUnlessOverwriting()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("notes.txt"), "mine");
        var e = Assert.Throws<IOException>(() => ClipOnnxExporter.Export(ReferenceData.Vit, dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("notes.txt", e.Message);
        Assert.False(File.Exists(dir.File("image_encoder.onnx")));

        ClipOnnxExporter.Export(ReferenceData.Vit, dir.Path, new ClipOnnxExportOptions { Overwrite = true });
        Assert.True(File.Exists(dir.File("image_encoder.onnx")));
        Assert.Equal("mine", File.ReadAllText(dir.File("notes.txt")));
        // Exporting again over its own files needs the flag too, and works with it.
        Assert.Throws<IOException>(() => ClipOnnxExporter.Export(ReferenceData.Vit, dir.Path));
        ClipOnnxExporter.Export(ReferenceData.Vit, dir.Path, new ClipOnnxExportOptions { Overwrite = true });
    }

    [Fact]
    public void UnsupportedPrecisionIsRefused()
    {
        using var dir = new TempDir();
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            ClipOnnxExporter.Export(ReferenceData.Vit, dir.File("out"), new ClipOnnxExportOptions { Precision = ScalarType.BFloat16 }));
    }

    private sealed class UnknownTower : ImageEncoder
    {
        public UnknownTower() : base(nameof(UnknownTower)) { }
        public override int InputResolution => 224;
        public override Tensor forward(Tensor x) => x;
    }

    [Fact]
    public void TowerWithoutAnExportIsNamed()
    {
        using var tower = new UnknownTower();
        var e = Assert.Throws<ClipOnnxExportException>(() =>
            ClipOnnxGraphs.ImageEncoder(tower, ReferenceData.Vit.Config, new Dictionary<string, Tensor>(), OnnxDataType.Float));
        Assert.Contains("UnknownTower", e.Message);
    }

    [Theory]
    [InlineData("siglip", "image tower")]
    [InlineData("clipa", "image tower")]
    [InlineData("quickgelu", null)]
    public void Family_towers_without_an_export_are_named_and_the_rest_exports(string family, string? refused)
    {
        using var model = ClipModel.Load(Families.FamilyFixtures.Folder(family));
        using var dir = new TempDir();
        if (refused is null)
        {
            // OpenAI's layout with quick_gelu and head_width: exported, with the model's own preprocessing in clip_onnx.json.
            ClipOnnxExporter.Export(model, dir.Path, new ClipOnnxExportOptions());
            Assert.True(File.Exists(Path.Combine(dir.Path, "image_encoder.onnx")));
            return;
        }
        var e = Assert.Throws<ClipOnnxExportException>(() => ClipOnnxExporter.Export(model, dir.Path, new ClipOnnxExportOptions()));
        Assert.Contains(refused, e.Message);
        Assert.Contains("no ONNX export yet", e.Message);
    }

    public sealed class PixelRow
    {
        [VectorType(3 * 224 * 224)]
        [ColumnName("pixel_values")]
        public float[] Pixels { get; set; } = [];
    }

    public sealed class FeatureRow
    {
        [ColumnName("image_features")]
        public float[] Features { get; set; } = [];
    }

    [Fact]
    public void ApplyOnnxModelOnTheExportMatchesTheTorchSharpModel()
    {
        // ML.NET's OnnxTransformer on the exported image encoder, fed by the project's preprocessing.
        var ml = new MLContext(seed: 1);
        var paths = ReferenceData.ImagePaths.Take(3).ToArray();
        var images = ml.Data.LoadFromEnumerable(paths.Select(p => new ReferenceData.ImageRow { Image = p }));
        var preprocessor = new ClipImagePreprocessor(224);
        var pipeline = ml.Transforms.CustomMapping<ReferenceData.ImageRow, PixelRow>((row, pixels) => pixels.Pixels = preprocessor.Preprocess(row.Image), contractName: null)
            .Append(ml.Transforms.ApplyOnnxModel(outputColumnNames: ["image_features"], inputColumnNames: ["pixel_values"], modelFile: exports.Vit.ImageEncoderPath));
        var output = pipeline.Fit(images).Transform(images);
        var rows = ml.Data.CreateEnumerable<FeatureRow>(output, reuseRowObject: false).ToArray();
        Assert.Equal(paths.Length, rows.Length);

        using var model = ClipModel.Load(Fixtures.ReferencePath("vit", "openai_state_dict.pt"));
        using var scope = NewDisposeScope();
        var expected = model.EncodeImage(preprocessor.PreprocessBatch(paths));
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(64, rows[i].Features.Length);
            Assert.InRange(ReferenceData.RelativeError(rows[i].Features, ReferenceData.Row(expected, i)), 0, 1e-4);
        }
    }
}
