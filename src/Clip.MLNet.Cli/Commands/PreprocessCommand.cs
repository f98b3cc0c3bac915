using System.CommandLine;
using Clip.MLNet.Weights;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip preprocess</c>: images to CLIP's input tensor, <c>pixel_values</c> [N,3,S,S], in a safetensors file.</summary>
internal static class PreprocessCommand
{
    public static Command Create()
    {
        var size = new Option<int?>("--size") { Description = "Input resolution S with OpenAI's preprocessing (default 224; not with --model)." };
        var model = new Option<string>("--model") { Description = "Use this model's own preprocessing (size, mean/std, interpolation, resize mode: an open_clip folder's preprocess_cfg; OpenAI's for OpenAI-layout files)." };
        var images = new Option<string[]>("--images") { Description = "Image files (JPEG, PNG, GIF, BMP, WebP).", AllowMultipleArgumentsPerToken = true, Required = true };
        var output = new Option<string>("--output") { Description = "The safetensors file to write.", Required = true };

        var command = new Command("preprocess", "Resize, crop and normalize images exactly as CLIP's reference does; writes pixel_values [N,3,S,S] (float32).")
        {
            size, model, images, output,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var modelPath = parse.GetValue(model);
            int? requested = parse.GetValue(size);
            if (modelPath is not null && requested is not null) throw new CliInputException("give --size or --model, not both");
            int side = requested ?? 224;
            if (side <= 0 || side > 16384) throw new CliInputException($"--size must be between 1 and 16384, got {side}");
            var paths = parse.GetValue(images) ?? [];
            if (paths.Length == 0) throw new CliInputException("--images: give at least one image file");
            ClipImagePreprocessor preprocessor;
            if (modelPath is null) preprocessor = new ClipImagePreprocessor(side);
            else if (Directory.Exists(modelPath) && File.Exists(Path.Combine(modelPath, "open_clip_config.json")))
            {
                // The config says it all: no need to read (or be able to build) the weights.
                try { preprocessor = OpenClipConfig.ReadFolderPreprocessing(modelPath).CreatePreprocessor(); }
                catch (ClipCheckpointException e) { throw new CliInputException($"--model: {e.Message}", e); }
            }
            else
            {
                using var clip = CommonOptions.LoadModel(modelPath, "fp32", null);
                preprocessor = clip.CreateImagePreprocessor();
            }
            using var pixels = preprocessor.PreprocessBatch(paths);
            SafetensorsFile.Write(parse.GetValue(output)!, [new KeyValuePair<string, Tensor>("pixel_values", pixels)]);
            return ExitCodes.Ok;
        }));
        return command;
    }
}
