using System.CommandLine;
using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip embed</c>: image and text features (and logits) into a safetensors file.</summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var run = new ModelRunOptions();
        var images = new Option<string[]>("--images") { Description = "Image files to embed.", AllowMultipleArgumentsPerToken = true };
        var texts = new Option<string?>("--texts") { Description = "A UTF-8 text file: one text per line (a blank line is an empty text)." };
        var inputs = new Option<string?>("--inputs") { Description = "A safetensors file with ready tensors: pixel_values [N,3,S,S] (float32) and/or text_tokens [M,L] (int64)." };
        var output = new Option<string>("--output") { Description = "The safetensors file to write.", Required = true };
        var raw = new Option<bool>("--raw") { Description = "Write features as the model computes them, not L2-normalized." };
        var noTruncate = new Option<bool>("--no-truncate") { Description = "Refuse texts longer than the context instead of truncating them." };

        var command = new Command("embed", "Embed images and texts; writes image_features [N,D] and text_features [M,D] (and logits_per_image [N,M] with --inputs holding both).")
        {
            images, texts, inputs, output, raw, noTruncate,
        };
        run.AddTo(command);
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var batchSize = run.BatchSize(parse);
            var inputsPath = parse.GetValue(inputs);
            var imagePaths = parse.GetValue(images) ?? Array.Empty<string>();
            var textsPath = parse.GetValue(texts);
            if (inputsPath is null && imagePaths.Length == 0 && textsPath is null)
                throw new CliInputException("nothing to embed: give --images, --texts or --inputs");
            if (inputsPath is not null && (imagePaths.Length > 0 || textsPath is not null))
                throw new CliInputException("--inputs cannot be combined with --images or --texts");

            using var clip = run.LoadModel(parse);
            var outputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                if (inputsPath is not null)
                    EmbedReadyTensors(clip, inputsPath, batchSize, !parse.GetValue(raw), outputs);
                else
                    EmbedFiles.Run(clip, parse.GetValue(run.Vocab), imagePaths, textsPath, batchSize, !parse.GetValue(raw), !parse.GetValue(noTruncate), outputs,
                        run.PreprocessThreadsFor(parse, clip));
                SafetensorsFile.Write(parse.GetValue(output)!, outputs);
            }
            finally
            {
                foreach (var t in outputs.Values) t.Dispose();
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static void EmbedReadyTensors(ClipModel clip, string path, int batchSize, bool normalize, Dictionary<string, Tensor> outputs)
    {
        if (!File.Exists(path)) throw new CliInputException($"--inputs: {path}: no such file");
        using var file = SafetensorsFile.Open(path);
        var pixelsEntry = file.Entries.FirstOrDefault(e => e.Name == "pixel_values");
        var tokensEntry = file.Entries.FirstOrDefault(e => e.Name == "text_tokens");
        if (pixelsEntry is null && tokensEntry is null)
            throw new CliInputException($"--inputs: {path} holds neither 'pixel_values' nor 'text_tokens'");

        Tensor? imageFeatures = null, textFeatures = null;
        if (pixelsEntry is not null)
        {
            if (pixelsEntry.Shape.Length != 4 || pixelsEntry.Shape[1] != 3 || pixelsEntry.Shape[2] != clip.ImageResolution || pixelsEntry.Shape[3] != clip.ImageResolution)
                throw new CliInputException($"--inputs: {path}: pixel_values is [{string.Join(", ", pixelsEntry.Shape)}], the model takes [N, 3, {clip.ImageResolution}, {clip.ImageResolution}]");
            using var pixels = file.Read(pixelsEntry);
            imageFeatures = Batched(pixels, batchSize, clip.EncodeImage);
            outputs["image_features"] = normalize ? Normalized(imageFeatures) : imageFeatures;
        }
        if (tokensEntry is not null)
        {
            if (tokensEntry.Shape.Length != 2 || tokensEntry.Shape[1] > clip.ContextLength)
                throw new CliInputException($"--inputs: {path}: text_tokens is [{string.Join(", ", tokensEntry.Shape)}], the model takes [M, L] with L <= {clip.ContextLength}");
            using var tokens = file.Read(tokensEntry);
            textFeatures = Batched(tokens, batchSize, clip.EncodeText);
            outputs["text_features"] = normalize ? Normalized(textFeatures) : textFeatures;
        }
        if (imageFeatures is not null && textFeatures is not null)
            outputs["logits_per_image"] = clip.LogitsFromFeatures(imageFeatures, textFeatures);
        if (normalize)
        {
            imageFeatures?.Dispose();
            textFeatures?.Dispose();
        }
    }

    internal static Tensor Normalized(Tensor t) => ClipModel.Normalize(t);

    internal static Tensor Batched(Tensor all, int batchSize, Func<Tensor, Tensor> encode)
    {
        var parts = new List<Tensor>();
        try
        {
            for (long start = 0; start < all.shape[0]; start += batchSize)
            {
                using var slice = all.narrow(0, start, Math.Min(batchSize, all.shape[0] - start));
                parts.Add(encode(slice));
            }
            return parts.Count == 1 ? parts[0].alias() : torch.cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
