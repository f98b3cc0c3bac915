using System.CommandLine;
using Clip.MLNet.Onnx;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip export-onnx</c>: both towers as ONNX files (<c>image_encoder.onnx</c>, <c>text_encoder.onnx</c>) plus <c>clip_onnx.json</c>.</summary>
internal static class ExportOnnxCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var vocab = CommonOptions.Vocab();
        var output = new Option<string>("--output") { Description = "The folder to write (created when missing; must be empty unless --force).", Required = true };
        var opset = new Option<int>("--opset")
        {
            Description = $"ONNX opset: {string.Join(", ", ClipOnnxExporter.SupportedOpsets)} (default {ClipOnnxExporter.DefaultOpset}, IR version {ClipOnnxExporter.IrVersionFor(ClipOnnxExporter.DefaultOpset)}).",
            DefaultValueFactory = _ => ClipOnnxExporter.DefaultOpset,
        };
        var precision = new Option<string>("--precision")
        {
            Description = "Weights and arithmetic of the graphs: fp32 or fp16 (inputs and outputs stay float32 either way).",
            DefaultValueFactory = _ => "fp32",
        };
        var activation = CommonOptions.Activation();
        var force = new Option<bool>("--force") { Description = "Write into an output folder that holds other files (the export's own files are replaced)." };

        var command = new Command("export-onnx",
            "Export both towers to ONNX: image_encoder.onnx (pixel_values [N,3,S,S] -> image_features [N,D]) and text_encoder.onnx (text_tokens int64 [M,L] -> text_features [M,D]), unnormalised, plus clip_onnx.json and the tokenizer files.")
        {
            model, vocab, output, opset, precision, activation, force,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            int n = parse.GetValue(opset);
            if (!ClipOnnxExporter.SupportedOpsets.Contains(n))
                throw new CliInputException($"--opset: {n} is not supported (supported: {string.Join(", ", ClipOnnxExporter.SupportedOpsets)})");
            var dtype = parse.GetValue(precision)!.Trim().ToLowerInvariant() switch
            {
                "fp32" or "float32" => ScalarType.Float32,
                "fp16" or "float16" or "half" => ScalarType.Float16,
                var other => throw new CliInputException($"--precision: unknown value '{other}' (expected fp32 or fp16)"),
            };
            var outputDir = parse.GetValue(output)!;
            bool overwrite = parse.GetValue(force);
            if (File.Exists(outputDir)) throw new CliInputException($"--output: {outputDir} is a file, not a folder");
            if (!overwrite && Directory.Exists(outputDir) && Directory.EnumerateFileSystemEntries(outputDir).Any())
                throw new CliInputException($"--output: {outputDir} is not empty; choose an empty folder or add --force");
            var vocabPath = parse.GetValue(vocab);
            if (vocabPath is not null && !File.Exists(vocabPath) && !Directory.Exists(vocabPath))
                throw new CliInputException($"--vocab: {vocabPath}: no such file or folder");

            var modelPath = parse.GetValue(model)!;
            // The weights load in float32; the export converts them to the precision asked for.
            using var clip = CommonOptions.LoadModel(modelPath, "fp32", parse.GetValue(activation), vocabPath);
            var result = ClipOnnxExporter.Export(clip, outputDir, new ClipOnnxExportOptions
            {
                Opset = n,
                Precision = dtype,
                Overwrite = overwrite,
                VocabularyPath = vocabPath,
                ModelPath = Pretrained.IsPath(modelPath) ? modelPath : null,
            });
            foreach (var file in result.Files) Console.WriteLine(file);
            return ExitCodes.Ok;
        }));
        return command;
    }
}
