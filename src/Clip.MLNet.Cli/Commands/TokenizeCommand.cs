using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using Clip.MLNet.Weights;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip tokenize</c>: one JSON array of token ids per line of a texts file, on stdout.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var vocab = CommonOptions.Vocab();
        var model = CommonOptions.Model(required: false);
        model.Description = "A Hugging Face model folder (its vocab.json and merges.txt are used), an open_clip hub folder (the tokenizer its open_clip_config.json names: SigLIP's spiece.model, SigLIP2's tokenizer.model; ids padded to its context length), or a registered model name (its vocabulary is downloaded; other model files carry no vocabulary: give --vocab).";
        var texts = new Option<string>("--texts") { Description = "A UTF-8 text file: one text per line (a blank line is an empty text).", Required = true };
        var context = new Option<int?>("--context") { Description = "Token ids per text, start and end tokens included (default: the model's context length for open_clip folders, else 77)." };
        var noTruncate = new Option<bool>("--no-truncate") { Description = "Fail on a text longer than the context instead of truncating it (the end token is kept last)." };

        var command = new Command("tokenize", "Print CLIP's token ids for each line of a text file: one JSON array of --context ids per line.")
        {
            vocab, model, texts, context, noTruncate,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            int? requested = parse.GetValue(context);
            if (requested is < 2) throw new CliInputException($"--context must be at least 2 (the start and end tokens), got {requested}");
            var tokenizer = LoadTokenizer(parse.GetValue(vocab), parse.GetValue(model), requested);
            int contextLength = tokenizer.ContextLength;
            var textsPath = parse.GetValue(texts)!;
            if (!File.Exists(textsPath)) throw new CliInputException($"--texts: {textsPath}: no such file");
            IReadOnlyList<string> lines;
            try
            {
                lines = TextLines.ReadFile(textsPath);
            }
            catch (InvalidDataException e)
            {
                throw new CliInputException($"--texts {e.Message}", e);
            }
            bool truncate = !parse.GetValue(noTruncate);

            // Encode everything before printing, so that a failure leaves no partial output on stdout.
            var rows = new long[(long)lines.Count * contextLength];
            for (int i = 0; i < lines.Count; i++)
            {
                try
                {
                    tokenizer.EncodeInto(lines[i], rows.AsSpan(i * contextLength, contextLength), truncate);
                }
                catch (ClipTextTooLongException e)
                {
                    throw new CliInputException(
                        $"--texts {textsPath}, line {i + 1}: \"{ClipTextTooLongException.Excerpt(e.Text)}\" is {e.TokenCount} tokens with the start and end tokens, over the context of {e.ContextLength} (--no-truncate is set)", e);
                }
            }

            using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
            var line = new StringBuilder(contextLength * 6 + 2);
            for (int i = 0; i < lines.Count; i++)
            {
                line.Clear().Append('[');
                for (int j = 0; j < contextLength; j++)
                {
                    if (j > 0) line.Append(',');
                    line.Append(rows[i * contextLength + j]);
                }
                stdout.Write(line.Append("]\n"));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>The tokenizer from --vocab, else from a Hugging Face folder or a registered model name given as --model.</summary>
    private static ClipTokenizer LoadTokenizer(string? vocab, string? model, int? requestedContext)
    {
        int contextLength = requestedContext ?? 77;
        if (vocab is null && model is not null && Directory.Exists(model) && File.Exists(Path.Combine(model, "open_clip_config.json")))
        {
            try
            {
                var tokenizer = OpenClipFolderTokenizer(model, requestedContext);
                if (tokenizer is not null) return tokenizer;
            }
            catch (ClipCheckpointException e) { throw new CliInputException($"--model: {e.Message}", e); }
        }
        if (vocab is not null)
        {
            if (!File.Exists(vocab) && !Directory.Exists(vocab)) throw new CliInputException($"--vocab: {vocab}: no such file or folder");
            return ClipTokenizer.Load(vocab, contextLength);
        }
        if (model is null)
            throw new CliInputException("give --vocab FILE (bpe_simple_vocab_16e6.txt.gz) or --model FOLDER|NAME (a Hugging Face folder with vocab.json and merges.txt, or a registered model name)");
        if (Directory.Exists(model))
        {
            if (!File.Exists(Path.Combine(model, "vocab.json")) || !File.Exists(Path.Combine(model, "merges.txt")))
                throw new CliInputException($"--model: {model} has no vocab.json and merges.txt; give the vocabulary with --vocab FILE");
            return ClipTokenizer.FromHuggingFaceFolder(model, contextLength);
        }
        if (File.Exists(model))
            throw new CliInputException($"--model: {model} is a weight file, which carries no tokenizer vocabulary; give --vocab FILE (bpe_simple_vocab_16e6.txt.gz)");
        return Pretrained.LoadTokenizer(model, contextLength);
    }

    /// <summary>
    /// The tokenizer an open_clip folder's config names (SigLIP's T5 and SigLIP2's Gemma SentencePiece models),
    /// at the config's context length unless --context overrides it; null when the config names CLIP's BPE.
    /// </summary>
    private static ClipTokenizer? OpenClipFolderTokenizer(string folder, int? requestedContext)
    {
        var configPath = Path.Combine(folder, "open_clip_config.json");
        JsonNode? text;
        try { text = JsonNode.Parse(File.ReadAllText(configPath))?["model_cfg"]?["text_cfg"]; }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            throw new ClipCheckpointException(configPath, $"not a valid open_clip config: {e.Message}", e);
        }
        int configContext = text?["context_length"]?.GetValue<int>() ?? 77;
        var hfName = (string?)text?["hf_tokenizer_name"];
        if (hfName is null)
        {
            // CLIP's BPE: a Hugging Face vocabulary in the folder, if any.
            if (File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")))
                return ClipTokenizer.FromHuggingFaceFolder(folder, requestedContext ?? configContext);
            throw new CliInputException($"--model: {configPath} names CLIP's BPE tokenizer, and the folder has no vocab.json and merges.txt; give the vocabulary with --vocab FILE (bpe_simple_vocab_16e6.txt.gz)");
        }
        var info = new OpenClipTextTokenizer(configPath, hfName, (string?)text?["tokenizer_kwargs"]?["clean"], configContext,
            text?["tokenizer_kwargs"]?["strip_sep_token"]?.GetValue<bool>() ?? false);
        var (tokenizer, missing) = OpenClipTokenizers.Load(folder, info, requestedContext ?? configContext);
        return tokenizer ?? throw new CliInputException($"--model: {missing}");
    }
}
