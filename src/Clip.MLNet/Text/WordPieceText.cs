using Microsoft.ML.Tokenizers;

namespace Clip.MLNet.Text;

/// <summary>
/// open_clip's <c>HFTokenizer</c> rule over a BERT WordPiece vocabulary (CLIPA's <c>bert-base-uncased</c>): clean the
/// text as the config's <c>tokenizer_kwargs.clean</c> says (whitespace by default), then BERT's own steps
/// (Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>: lower-casing, accent stripping, splitting on punctuation and
/// around CJK characters, greedy longest-match WordPiece with <c>##</c> continuations, <c>[UNK]</c> for a word it cannot
/// cover), framed as transformers frames it with <c>max_length</c> truncation and padding: <c>[CLS]</c>, at most
/// context - 2 pieces, <c>[SEP]</c>, <c>[PAD]</c> up to the context. With <c>strip_sep_token</c> (CLIPA) every
/// <c>[SEP]</c> then becomes the pad id, as open_clip does after tokenizing.
/// </summary>
internal sealed class WordPieceText
{
    public const string Kind = "wordpiece";

    private readonly BertTokenizer tokenizer;
    private readonly string?[] tokens;
    private readonly Dictionary<string, int> ids;

    public WordPieceText(byte[] vocabulary, string source, string? clean, int contextLength, bool stripSepToken)
    {
        if (contextLength < 2)
            throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context must hold at least [CLS] and [SEP] (2).");
        if (clean is not (null or "canonicalize" or "lower" or "whitespace"))
            throw new InvalidDataException($"{source}: unknown tokenizer_kwargs.clean '{clean}' (canonicalize, lower or whitespace)");
        var lines = ReadLines(vocabulary, source);
        ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Count; i++) ids[lines[i]] = i;   // a repeated token keeps its last line, as transformers' load_vocab does
        int Require(string token) => ids.TryGetValue(token, out var id)
            ? id
            : throw new InvalidDataException($"{source}: the WordPiece vocabulary has no {token} token");
        Classification = Require("[CLS]");
        Separator = Require("[SEP]");
        Padding = Require("[PAD]");
        Require("[UNK]");
        Require("[MASK]");   // Microsoft.ML.Tokenizers' BertTokenizer requires it
        try
        {
            using var stream = new MemoryStream(vocabulary, writable: false);
            tokenizer = BertTokenizer.Create(stream, new BertOptions
            {
                LowerCaseBeforeTokenization = true,
                RemoveNonSpacingMarks = true,      // bert-base-uncased: strip_accents follows do_lower_case
                IndividuallyTokenizeCjk = true,
                ApplyBasicTokenization = true,
                SplitOnSpecialTokens = true,
            });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{source}: not a WordPiece vocabulary this library can read ({e.Message})", e);
        }
        tokens = lines.ToArray();
        Vocabulary = vocabulary;
        Source = source;
        Clean = clean;
        ContextLength = contextLength;
        StripSepToken = stripSepToken;
    }

    private static List<string> ReadLines(byte[] vocabulary, string source)
    {
        string text;
        try { text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(vocabulary); }
        catch (System.Text.DecoderFallbackException e) { throw new InvalidDataException($"{source}: not UTF-8 text, so not a vocab.txt ({e.Message})", e); }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0) throw new InvalidDataException($"{source}: the WordPiece vocabulary is empty");
        return lines;
    }

    public byte[] Vocabulary { get; }
    public string Source { get; }
    public string? Clean { get; }
    public int ContextLength { get; }
    public bool StripSepToken { get; }
    public int Classification { get; }
    public int Separator { get; }
    public int Padding { get; }
    public int VocabularySize => tokens.Length;
    public BertTokenizer Tokenizer => tokenizer;

    /// <summary>The WordPiece ids of the cleaned text, without [CLS]/[SEP] and without truncation.</summary>
    public IReadOnlyList<int> EncodePieces(string text) =>
        tokenizer.EncodeToIds(ClipTextCleaner.CleanAs(text, Clean), addSpecialTokens: false);

    public void EncodeInto(string text, Span<long> destination, bool truncate, int? index)
    {
        if (destination.Length != ContextLength)
            throw new ArgumentException($"The destination holds {destination.Length} values; one encoded text is {ContextLength}.", nameof(destination));
        var pieces = EncodePieces(text);
        int room = ContextLength - 2;
        int count = pieces.Count;
        if (count > room)
        {
            if (!truncate) throw new ClipTextTooLongException(text, count + 2, ContextLength, index);
            count = room;
        }
        destination[0] = Classification;
        for (int i = 0; i < count; i++) destination[i + 1] = pieces[i];
        destination[count + 1] = Separator;
        destination[(count + 2)..].Fill(Padding);
        if (StripSepToken)
            for (int i = 0; i < destination.Length; i++)
                if (destination[i] == Separator) destination[i] = Padding;   // open_clip replaces every [SEP], one typed as text included
    }

    public string? IdToToken(int id) => (uint)id < (uint)tokens.Length ? tokens[id] : null;

    public int? TokenToId(string token) => ids.TryGetValue(token, out var id) ? id : null;

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var list = ids.ToList();
        foreach (var id in list)
            if ((uint)id >= (uint)tokens.Length) throw new ArgumentOutOfRangeException(nameof(ids), id, $"Id {id} is not in the vocabulary of {tokens.Length} tokens.");
        if (skipSpecialTokens)
            list = list.Where(id => id != Classification && id != Separator && id != Padding).ToList();
        return tokenizer.Decode(list, skipSpecialTokens) ?? "";
    }
}
