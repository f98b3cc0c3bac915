using Clip.MLNet.Imaging;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary>The file half of <c>clip embed</c>: images preprocessed and texts tokenized exactly as the reference does.</summary>
internal static class EmbedFiles
{
    public static void Run(ClipModel clip, string? vocab, string[] images, string? texts, int batchSize, bool normalize, bool truncate,
        Dictionary<string, Tensor> outputs, int preprocessThreads = 1)
    {
        if (images.Length > 0)
        {
            // Decoding and preprocessing run on a background thread one batch ahead of the forward pass.
            var preprocessor = clip.CreateImagePreprocessor();
            using var prefetcher = new ImageBatchPrefetcher(preprocessor, images, batchSize, prefetch: 1, threads: preprocessThreads);
            var parts = new List<Tensor>();
            try
            {
                try
                {
                    foreach (var (_, pixels) in prefetcher.Batches())
                        parts.Add(clip.EncodeImage(pixels));
                }
                catch (ClipImageException e) when (e.Index is { } i)
                {
                    throw new CliInputException($"--images item {i + 1} ({e.Input}): {e.Problem}", e);
                }
                using var features = cat(parts, 0);
                outputs["image_features"] = normalize ? ClipModel.Normalize(features) : features.alias();
            }
            finally
            {
                foreach (var p in parts) p.Dispose();
            }
        }
        if (texts is not null)
        {
            var tokenizer = Tokenizer(clip, vocab);
            var lines = TextLines.ReadFile(texts);
            var parts = new List<Tensor>();
            try
            {
                for (int start = 0; start < lines.Count; start += batchSize)
                {
                    var chunk = lines.Skip(start).Take(batchSize).ToArray();
                    Tensor tokens;
                    try { tokens = tokenizer.Tokenize(chunk, truncate); }
                    catch (ClipTextTooLongException e) when (e.Index is { } i)
                    {
                        throw new CliInputException($"--texts {texts}, line {start + i + 1}: {e.Message}", e);
                    }
                    using (tokens) parts.Add(clip.EncodeText(tokens));
                }
                using var features = parts.Count == 0 ? zeros(0, clip.Config.EmbedDim) : cat(parts, 0);
                outputs["text_features"] = normalize ? ClipModel.Normalize(features) : features.alias();
            }
            finally
            {
                foreach (var p in parts) p.Dispose();
            }
        }
    }

    /// <summary>The tokenizer for a command: <c>--vocab</c>, else the model's own (Hugging Face folders, saved models).</summary>
    public static ClipTokenizer Tokenizer(ClipModel clip, string? vocab)
    {
        if (vocab is not null) return ClipTokenizer.Load(vocab, clip.ContextLength);
        return clip.Tokenizer ?? throw new CliInputException(clip.MissingTokenizer ??
            "--vocab is required: this model file carries no tokenizer (give CLIP's bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json and merges.txt)");
    }
}
