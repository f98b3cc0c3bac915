using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary>The file half of <c>clip embed</c> (images and texts files): filled in with the tokenizer and preprocessing.</summary>
internal static class EmbedFiles
{
    public static void Run(ClipModel clip, string? vocab, string[] images, string? texts, int batchSize, bool normalize, Dictionary<string, Tensor> outputs) =>
        throw new CliInputException("embedding image and text files is not available yet; use --inputs");
}
