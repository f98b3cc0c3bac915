using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Onnx;

/// <summary>A model, or a part of one, that cannot be exported to ONNX; the message names the part.</summary>
public sealed class ClipOnnxExportException : Exception
{
    /// <summary>Creates the exception with a message naming what cannot be exported.</summary>
    public ClipOnnxExportException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the error underneath.</summary>
    public ClipOnnxExportException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Options of <see cref="ClipOnnxExporter.Export"/>.</summary>
public sealed class ClipOnnxExportOptions
{
    /// <summary>The ONNX opset (default <see cref="ClipOnnxExporter.DefaultOpset"/>); one of <see cref="ClipOnnxExporter.SupportedOpsets"/>.</summary>
    public int Opset { get; set; } = ClipOnnxExporter.DefaultOpset;

    /// <summary>
    /// The dtype of the weights and arithmetic: Float32 (default) or Float16. Inputs and outputs stay float32 (token ids
    /// int64) either way; LayerNorm computes in float32, as in the reference's half-precision models.
    /// </summary>
    public ScalarType Precision { get; set; } = ScalarType.Float32;

    /// <summary>Write into an output folder that already holds other files (they are left in place; the export's own files are replaced).</summary>
    public bool Overwrite { get; set; }

    /// <summary>
    /// The tokenizer files to copy beside the encoders: CLIP's <c>bpe_simple_vocab_16e6.txt.gz</c>, or a folder (or its
    /// <c>vocab.json</c>) with <c>vocab.json</c> and <c>merges.txt</c>. When null: the files of <see cref="ModelPath"/>
    /// when it is a Hugging Face folder, else the model's own <see cref="ClipModel.Tokenizer"/> written as
    /// <c>vocab.json</c> and <c>merges.txt</c>, else none.
    /// </summary>
    public string? VocabularyPath { get; set; }

    /// <summary>The file or folder the model was loaded from (for its tokenizer files); optional.</summary>
    public string? ModelPath { get; set; }

    /// <summary>
    /// Initializer bytes of one encoder above which its weights go to an external-data file beside it
    /// (<c>image_encoder.onnx.data</c>): protobuf cannot encode messages of 2 GiB or more. Internal for tests.
    /// </summary>
    internal long ExternalDataThreshold { get; set; } = 1_800_000_000;
}

/// <summary>What <see cref="ClipOnnxExporter.Export"/> wrote.</summary>
/// <param name="ImageEncoderPath">The image encoder, <c>image_encoder.onnx</c>.</param>
/// <param name="TextEncoderPath">The text encoder, <c>text_encoder.onnx</c>.</param>
/// <param name="ConfigPath"><c>clip_onnx.json</c>: preprocessing, context length, logit scale, tokenizer files.</param>
/// <param name="Opset">The ONNX opset of both graphs.</param>
/// <param name="IrVersion">The ONNX IR version of both files.</param>
/// <param name="Files">Every file written, the encoders' external data and the tokenizer files included.</param>
public sealed record ClipOnnxExportResult(string ImageEncoderPath, string TextEncoderPath, string ConfigPath, int Opset, int IrVersion, IReadOnlyList<string> Files);

/// <summary>
/// Exports a <see cref="ClipModel"/>'s two towers to ONNX, built from the project's own modules and weights:
/// <c>image_encoder.onnx</c> (<c>pixel_values</c> float32 [batch, 3, S, S] → <c>image_features</c> float32 [batch, D])
/// and <c>text_encoder.onnx</c> (<c>text_tokens</c> int64 [batch, sequence], sequence up to the context length →
/// <c>text_features</c> float32 [batch, D]), both unnormalised, plus <c>clip_onnx.json</c> and the tokenizer files.
/// The files run on ONNX Runtime (tested with 1.31.1; the default is opset 17 with IR version 8) and through ML.NET's
/// <c>ApplyOnnxModel</c>; this library itself does not depend on ONNX Runtime.
/// </summary>
public static class ClipOnnxExporter
{
    /// <summary>The default opset: 17, the first with LayerNormalization (IR version 8).</summary>
    public const int DefaultOpset = 17;

    /// <summary>The name of the image encoder file.</summary>
    public const string ImageEncoderFile = "image_encoder.onnx";

    /// <summary>The name of the text encoder file.</summary>
    public const string TextEncoderFile = "text_encoder.onnx";

    /// <summary>The name of the description file written beside the encoders.</summary>
    public const string ConfigFile = "clip_onnx.json";

    /// <summary>The opsets the exporter writes: 17 to 21.</summary>
    public static IReadOnlyList<int> SupportedOpsets { get; } = [17, 18, 19, 20, 21];

    /// <summary>The IR version written with <paramref name="opset"/> (the one ONNX pairs it with: 8 for 17 and 18, 9 for 19 and 20, 10 for 21).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The opset is not one of <see cref="SupportedOpsets"/>.</exception>
    public static int IrVersionFor(int opset) => opset switch
    {
        17 or 18 => 8,
        19 or 20 => 9,
        21 => 10,
        _ => throw new ArgumentOutOfRangeException(nameof(opset), opset, UnsupportedOpset(opset)),
    };

    internal static string UnsupportedOpset(int opset) =>
        $"ONNX opset {opset} is not supported (supported: {string.Join(", ", SupportedOpsets)})";

    /// <summary>
    /// Writes <c>image_encoder.onnx</c>, <c>text_encoder.onnx</c>, <c>clip_onnx.json</c> and the tokenizer files into
    /// <paramref name="outputDirectory"/> (created when missing).
    /// </summary>
    /// <param name="model">The model; its weights are read, not changed. Any precision and device.</param>
    /// <param name="outputDirectory">The folder to write; it must be empty or missing unless <see cref="ClipOnnxExportOptions.Overwrite"/>.</param>
    /// <param name="options">Opset, precision, tokenizer files.</param>
    /// <exception cref="ArgumentOutOfRangeException">The opset is not supported, or the precision is not Float32 or Float16.</exception>
    /// <exception cref="IOException">The output folder holds other files and overwriting was not asked for; the message names the folder.</exception>
    /// <exception cref="ClipOnnxExportException">A part of the model has no ONNX export yet; the message names it.</exception>
    public static ClipOnnxExportResult Export(ClipModel model, string outputDirectory, ClipOnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(outputDirectory);
        options ??= new ClipOnnxExportOptions();
        int ir = IrVersionFor(options.Opset);
        var computeType = options.Precision switch
        {
            ScalarType.Float32 => OnnxDataType.Float,
            ScalarType.Float16 => OnnxDataType.Float16,
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Precision, $"ONNX export precision {options.Precision} is not supported: use Float32 or Float16."),
        };
        CheckOutputDirectory(outputDirectory, options.Overwrite);
        Directory.CreateDirectory(outputDirectory);

        var config = model.Config;
        var files = new List<string>();
        var weights = model.state_dict();
        var imagePath = Path.Combine(outputDirectory, ImageEncoderFile);
        var textPath = Path.Combine(outputDirectory, TextEncoderFile);
        using (torch.no_grad())
        using (torch.NewDisposeScope())   // the transposed and folded copies of the weights; the model's own tensors were taken before
        {
            var image = ClipOnnxGraphs.ImageEncoder(model.Visual, config, weights, computeType);
            files.AddRange(Save(image, imagePath, options.Opset, ir, "CLIP image encoder", model, options.ExternalDataThreshold));
            var text = ClipOnnxGraphs.TextEncoder(model.Text, config, weights, computeType);
            files.AddRange(Save(text, textPath, options.Opset, ir, "CLIP text encoder", model, options.ExternalDataThreshold));
        }

        var (tokenizer, tokenizerFiles) = WriteTokenizer(model, outputDirectory, options);
        files.AddRange(tokenizerFiles.Select(f => Path.Combine(outputDirectory, f)));
        var configPath = Path.Combine(outputDirectory, ConfigFile);
        File.WriteAllText(configPath, Describe(model, options, ir, computeType, tokenizer).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        files.Add(configPath);
        return new ClipOnnxExportResult(imagePath, textPath, configPath, options.Opset, ir, files);
    }

    private static readonly string[] OwnFiles = [ImageEncoderFile, TextEncoderFile, ConfigFile, ImageEncoderFile + ".data", TextEncoderFile + ".data"];

    private static void CheckOutputDirectory(string directory, bool overwrite)
    {
        if (File.Exists(directory)) throw new IOException($"{directory}: is a file, not a folder");
        if (!Directory.Exists(directory)) return;
        var present = Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        if (present.Count == 0) return;
        if (!overwrite)
        {
            var shown = string.Join(", ", present.Take(5)) + (present.Count > 5 ? $" and {present.Count - 5} more" : "");
            throw new IOException($"{directory}: the output folder is not empty ({shown}); choose an empty folder or overwrite (--force)");
        }
        // Stale files of an earlier export (an external-data file the new one may not write) go first.
        foreach (var name in OwnFiles)
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private static IEnumerable<string> Save(OnnxGraph graph, string path, int opset, int ir, string doc, ClipModel model, long externalThreshold)
    {
        var written = new List<string> { path };
        long total = graph.Initializers.Sum(t => (long)t.RawData.Length);
        if (total > externalThreshold)
        {
            // ONNX's external data: the weights in one file beside the model, each at a 64-byte aligned offset.
            var dataName = Path.GetFileName(path) + ".data";
            var dataPath = path + ".data";
            using var data = new FileStream(dataPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            foreach (var tensor in graph.Initializers.Where(t => t.RawData.Length >= 1024))
            {
                long offset = (data.Position + 63) / 64 * 64;
                while (data.Position < offset) data.WriteByte(0);
                data.Write(tensor.RawData.Span);
                tensor.ExternalData.Add(new OnnxStringEntry("location", dataName));
                tensor.ExternalData.Add(new OnnxStringEntry("offset", offset.ToString(CultureInfo.InvariantCulture)));
                tensor.ExternalData.Add(new OnnxStringEntry("length", tensor.RawData.Length.ToString(CultureInfo.InvariantCulture)));
                tensor.RawData = ReadOnlyMemory<byte>.Empty;
            }
            written.Add(dataPath);
        }
        var onnx = new OnnxModel
        {
            IrVersion = ir,
            Opset = opset,
            ProducerName = "Clip.MLNet",
            ProducerVersion = ProducerVersion,
            DocString = doc,
            Graph = graph,
        };
        onnx.Metadata.Add(new OnnxStringEntry("clip.embed_dim", model.Config.EmbedDim.ToString(CultureInfo.InvariantCulture)));
        onnx.Metadata.Add(new OnnxStringEntry("clip.image_size", model.ImageResolution.ToString(CultureInfo.InvariantCulture)));
        onnx.Metadata.Add(new OnnxStringEntry("clip.context_length", model.ContextLength.ToString(CultureInfo.InvariantCulture)));
        onnx.Metadata.Add(new OnnxStringEntry("clip.logit_scale", model.LogitScale.ToString("R", CultureInfo.InvariantCulture)));
        onnx.Save(path);
        return written;
    }

    private static string ProducerVersion =>
        typeof(ClipOnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";

    private static JsonObject Describe(ClipModel model, ClipOnnxExportOptions options, int ir, OnnxDataType computeType, JsonNode? tokenizer)
    {
        var pre = model.ImagePreprocessing;
        var json = new JsonObject
        {
            ["format"] = "clip-mlnet-onnx",
            ["format_version"] = 1,
            ["producer"] = "Clip.MLNet " + ProducerVersion,
            ["opset"] = options.Opset,
            ["ir_version"] = ir,
            ["precision"] = computeType == OnnxDataType.Float16 ? "fp16" : "fp32",
            ["embed_dim"] = model.Config.EmbedDim,
            ["image_encoder"] = new JsonObject
            {
                ["file"] = ImageEncoderFile,
                ["input"] = ClipOnnxGraphs.PixelValues,
                ["input_shape"] = new JsonArray(ClipOnnxGraphs.BatchAxis, 3, model.ImageResolution, model.ImageResolution),
                ["output"] = ClipOnnxGraphs.ImageFeatures,
                ["output_shape"] = new JsonArray(ClipOnnxGraphs.BatchAxis, model.Config.EmbedDim),
                ["architecture"] = model.Config.VisionArchitecture.ToString(),
            },
            ["text_encoder"] = new JsonObject
            {
                ["file"] = TextEncoderFile,
                ["input"] = ClipOnnxGraphs.TextTokens,
                ["input_dtype"] = "int64",
                ["input_shape"] = new JsonArray(ClipOnnxGraphs.BatchAxis, ClipOnnxGraphs.SequenceAxis),
                ["output"] = ClipOnnxGraphs.TextFeatures,
                ["output_shape"] = new JsonArray(ClipOnnxGraphs.BatchAxis, model.Config.EmbedDim),
                ["pooling"] = "argmax_token_id",
            },
            ["features_normalized"] = false,
            ["preprocessing"] = new JsonObject
            {
                ["image_size"] = pre.Size,
                ["resize"] = pre.ResizeMode switch
                {
                    ClipResizeMode.Squash => "squash",
                    ClipResizeMode.Longest => "longest_side_then_pad",
                    _ => "shortest_side",
                },
                ["interpolation"] = pre.Interpolation == ClipInterpolation.Bilinear ? "bilinear" : "bicubic",
                ["crop"] = pre.ResizeMode == ClipResizeMode.Shortest ? "center" : null,
                ["fill_color"] = pre.ResizeMode == ClipResizeMode.Longest ? pre.FillColor : null,
                ["rescale_factor"] = 1.0 / 255,
                // The model's own mean and std (OpenAI's constants for OpenAI-layout files).
                ["mean"] = new JsonArray(pre.Mean.Select(m => (JsonNode)JsonValue.Create(Math.Round((double)m, 8))!).ToArray()),
                ["std"] = new JsonArray(pre.Std.Select(m => (JsonNode)JsonValue.Create(Math.Round((double)m, 8))!).ToArray()),
                ["channel_order"] = "RGB",
                ["layout"] = "NCHW",
            },
            ["context_length"] = model.ContextLength,
            ["logit_scale"] = model.LogitScale,
            ["logit_bias"] = model.LogitBias,
            ["tokenizer"] = tokenizer,
        };
        if (tokenizer is null)
            json["tokenizer_note"] = "No tokenizer files: the model came without one and none was given (--vocab). Use CLIP's bpe_simple_vocab_16e6.txt.gz, or the vocab.json and merges.txt of the model's Hugging Face folder.";
        return json;
    }

    private static (JsonNode? Description, IReadOnlyList<string> Files) WriteTokenizer(ClipModel model, string directory, ClipOnnxExportOptions options)
    {
        var files = new List<string>();
        string? folder = null;
        string? vocabFile = null;
        if (options.VocabularyPath is { } vocab)
        {
            if (Directory.Exists(vocab)) folder = vocab;
            else if (string.Equals(Path.GetFileName(vocab), "vocab.json", StringComparison.OrdinalIgnoreCase)) folder = Path.GetDirectoryName(Path.GetFullPath(vocab));
            else if (File.Exists(vocab)) vocabFile = vocab;
            else throw new FileNotFoundException($"{vocab}: no such vocabulary file or folder", vocab);
        }
        else if (options.ModelPath is { } source && Directory.Exists(source)
                 && File.Exists(Path.Combine(source, "vocab.json")) && File.Exists(Path.Combine(source, "merges.txt")))
        {
            folder = source;
        }

        ClipTokenizer? tokenizer;
        if (vocabFile is not null)
        {
            tokenizer = ClipTokenizer.Load(vocabFile, model.ContextLength);   // checks that it is a vocabulary before copying it
            files.Add(Copy(vocabFile, directory));
        }
        else if (folder is not null)
        {
            tokenizer = ClipTokenizer.Load(folder, model.ContextLength);
            foreach (var name in new[] { "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
                if (File.Exists(Path.Combine(folder, name))) files.Add(Copy(Path.Combine(folder, name), directory));
        }
        else if (model.Tokenizer is { } own)
        {
            tokenizer = own;
            File.WriteAllText(Path.Combine(directory, "vocab.json"), JsonSerializer.Serialize(own.Vocabulary.Vocabulary.OrderBy(kv => kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value)));
            File.WriteAllText(Path.Combine(directory, "merges.txt"), "#version: 0.2\n" + string.Join("\n", own.Vocabulary.Merges) + "\n");
            files.Add("vocab.json");
            files.Add("merges.txt");
        }
        else
        {
            return (null, files);
        }
        var description = new JsonObject
        {
            ["kind"] = "clip_bpe",
            ["files"] = new JsonArray(files.Select(f => JsonValue.Create(f)).ToArray<JsonNode?>()),
            ["context_length"] = model.ContextLength,
            ["start_of_text_id"] = tokenizer.StartOfText,
            ["end_of_text_id"] = tokenizer.EndOfText,
            ["pad_id"] = 0,
            ["lowercase"] = true,
            ["truncate"] = "keep end_of_text last",
        };
        return (description, files);
    }

    private static string Copy(string file, string directory)
    {
        var name = Path.GetFileName(file);
        var target = Path.Combine(directory, name);
        if (!string.Equals(Path.GetFullPath(file), Path.GetFullPath(target), StringComparison.Ordinal))
        {
            // Written afresh rather than copied: a copy keeps the source's permissions (read-only in caches and shared folders).
            if (File.Exists(target)) File.Delete(target);
            using var source = File.OpenRead(file);
            using var destination = new FileStream(target, FileMode.CreateNew, FileAccess.Write);
            source.CopyTo(destination);
        }
        return name;
    }
}
