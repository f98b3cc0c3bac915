namespace Clip.MLNet.Weights;

/// <summary>
/// Finds the tokenizer an open_clip config names with <c>hf_tokenizer_name</c>. The folder's own tokenizer file wins
/// (the hub name is where open_clip would download it from): <c>spiece.model</c> (T5's SentencePiece, SigLIP),
/// <c>tokenizer.model</c> (Gemma's, SigLIP2) or, for a BERT name, <c>vocab.txt</c> (WordPiece, CLIPA). Without one the model still loads (for images, ready token ids and
/// preprocessing); <see cref="ClipModel.MissingTokenizer"/> then says what text needs.
/// </summary>
internal static class OpenClipTokenizers
{
    /// <summary>The SentencePiece file names looked for, in order.</summary>
    public static readonly string[] SentencePieceFiles = ["spiece.model", "tokenizer.model"];

    /// <summary>The BERT WordPiece vocabulary file looked for when the config names a BERT tokenizer (CLIPA).</summary>
    public const string WordPieceFile = "vocab.txt";

    public static bool IsBert(string name) => name.Contains("bert", StringComparison.OrdinalIgnoreCase);

    public static (ClipTokenizer? Tokenizer, string? Missing) Load(string modelPath, OpenClipTextTokenizer info, int contextLength)
    {
        var folder = Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        foreach (var name in SentencePieceFiles)
        {
            var file = Path.Combine(folder, name);
            if (!File.Exists(file)) continue;
            // A tokenizer that cannot be read fails text only: images and ready token ids still work.
            try { return (ClipTokenizer.FromSentencePiece(file, contextLength, info.Clean), null); }
            catch (InvalidDataException e) { return (null, e.Message); }
        }
        if (IsBert(info.HfTokenizerName!))
        {
            var vocab = Path.Combine(folder, WordPieceFile);
            if (File.Exists(vocab))
            {
                try { return (ClipTokenizer.FromWordPiece(vocab, contextLength, info.StripSepToken, info.Clean), null); }
                catch (InvalidDataException e) { return (null, e.Message); }
            }
            return (null, $"{info.ConfigPath}: text_cfg.hf_tokenizer_name is '{info.HfTokenizerName}', a BERT WordPiece tokenizer, and {folder} holds no " +
                $"{WordPieceFile} for it; put the tokenizer's {WordPieceFile} there to tokenize text (ready token ids, images and preprocessing work without it)");
        }
        var missing = $"{info.ConfigPath}: text_cfg.hf_tokenizer_name is '{info.HfTokenizerName}', and {folder} holds no tokenizer file for it " +
            $"({string.Join(" or ", SentencePieceFiles)}); put the tokenizer's SentencePiece model there to tokenize text " +
            "(ready token ids, images and preprocessing work without it)";
        return (null, missing);
    }
}
