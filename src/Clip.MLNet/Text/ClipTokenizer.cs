using System.Collections.Frozen;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Clip.MLNet.Text;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>
/// OpenAI CLIP's tokenizer, giving the same ids as the original <c>clip.tokenize</c>: ftfy's and HTML's text
/// fixes, whitespace cleanup and lower-casing, CLIP's word pattern, then byte-level BPE with the <c>&lt;/w&gt;</c>
/// end-of-word suffix (done by Microsoft.ML.Tokenizers' <see cref="Microsoft.ML.Tokenizers.BpeTokenizer"/>), framed by
/// <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c> and zero-padded to <see cref="ContextLength"/>.
/// </summary>
/// <remarks>
/// An instance is immutable and safe to use from several threads at once (Microsoft.ML.Tokenizers' word cache
/// takes a lock). Text is taken as a .NET string; unpaired surrogates become U+FFFD, as ftfy does.
/// One difference from the original is known: ftfy's repair of mojibake (text decoded with the wrong codec, such
/// as "cafÃ©") is not reproduced; such text is tokenized as it stands.
/// </remarks>
public sealed partial class ClipTokenizer
{
    private const string MetadataKind = "clip-bpe";
    private const string MetadataFormat = "1";

    private readonly ClipBpeVocabulary _vocabulary;
    private readonly string?[] _tokensById;
    private readonly Dictionary<char, byte> _bytesBySymbol;
    private readonly Lazy<IReadOnlyDictionary<string, string>> _metadata;
    private readonly SentencePieceText? _spm;
    private readonly WordPieceText? _wordPiece;

    private ClipTokenizer(ClipBpeVocabulary vocabulary, int contextLength)
    {
        if (contextLength < 2)
            throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context must hold at least the start and end tokens (2).");
        _vocabulary = vocabulary;
        ContextLength = contextLength;
        StartOfText = RequireToken(ClipBpeVocabulary.StartOfTextToken);
        EndOfText = RequireToken(ClipBpeVocabulary.EndOfTextToken);

        var specialTokens = new Dictionary<string, int>(StringComparer.Ordinal)
        {
            [ClipBpeVocabulary.StartOfTextToken] = StartOfText,
            [ClipBpeVocabulary.EndOfTextToken] = EndOfText,
        };
        try
        {
            BpeTokenizer = Microsoft.ML.Tokenizers.BpeTokenizer.Create(new BpeOptions(vocabulary.Vocabulary)
            {
                Merges = vocabulary.Merges,
                SpecialTokens = specialTokens,
                PreTokenizer = ClipPreTokenizer.Instance,
                Normalizer = ClipTextNormalizer.Instance,
                EndOfWordSuffix = ClipBpeVocabulary.EndOfWordSuffix,
                ByteLevel = true,
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // Microsoft.ML.Tokenizers checks that every merge joins known tokens and that ids are distinct;
            // say which vocabulary failed.
            throw new InvalidDataException($"{vocabulary.Source}: not a consistent BPE vocabulary ({e.Message})", e);
        }

        int maxId = vocabulary.Vocabulary.Values.Max();
        if (maxId >= 4 * vocabulary.Vocabulary.Count + 1024)
            throw new InvalidDataException($"{vocabulary.Source}: token ids go up to {maxId} for {vocabulary.Vocabulary.Count} tokens; a BPE vocabulary numbers its tokens densely");
        _tokensById = new string?[maxId + 1];
        foreach (var (token, id) in vocabulary.Vocabulary)
        {
            if (id < 0) throw new InvalidDataException($"{vocabulary.Source}: token '{token}' has a negative id {id}");
            _tokensById[id] = token;
        }
        _bytesBySymbol = ClipBpeVocabulary.ByteSymbols.ToDictionary(e => e.Symbol, e => e.Byte);
        _metadata = new Lazy<IReadOnlyDictionary<string, string>>(BuildMetadata);
    }

    private const string SentencePieceKind = "sentencepiece";

    private ClipTokenizer(SentencePieceText spm)
    {
        _spm = spm;
        _vocabulary = null!;
        _tokensById = Array.Empty<string?>();
        _bytesBySymbol = new Dictionary<char, byte>();
        ContextLength = spm.ContextLength;
        StartOfText = -1;
        EndOfText = spm.EndOfSentence;
        BpeTokenizer = null!;
        _metadata = new Lazy<IReadOnlyDictionary<string, string>>(BuildMetadata);
    }

    /// <summary>
    /// Loads a SentencePiece model (SigLIP's T5 <c>spiece.model</c>, unigram; SigLIP2's Gemma <c>tokenizer.model</c>, BPE
    /// with byte fallback) with open_clip's wrapper rule: clean the text as <paramref name="clean"/> says, encode, keep at
    /// most <paramref name="contextLength"/> - 1 pieces, append the end-of-sentence id, pad with 0 to the context. Such a
    /// tokenizer has no start token (<see cref="StartOfText"/> is -1), <see cref="EndOfText"/> is the model's
    /// end-of-sentence id and <see cref="BpeTokenizer"/> is null; <see cref="EncodeBpe"/> gives the pieces' ids.
    /// </summary>
    /// <param name="path">The SentencePiece model file.</param>
    /// <param name="contextLength">Ids per encoded text (SigLIP: 64).</param>
    /// <param name="clean">open_clip's <c>tokenizer_kwargs.clean</c>: <c>canonicalize</c> (SigLIP), <c>lower</c>, <c>whitespace</c> (the default when null).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a SentencePiece model, or the rule is unknown; the message names the file.</exception>
    public static ClipTokenizer FromSentencePiece(string path, int contextLength, string? clean = "canonicalize")
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"SentencePiece model not found: {path}", path);
        return new ClipTokenizer(new SentencePieceText(File.ReadAllBytes(path), path, clean, contextLength));
    }

    private ClipTokenizer(WordPieceText wordPiece)
    {
        _wordPiece = wordPiece;
        _vocabulary = null!;
        _tokensById = Array.Empty<string?>();
        _bytesBySymbol = new Dictionary<char, byte>();
        ContextLength = wordPiece.ContextLength;
        StartOfText = wordPiece.Classification;
        EndOfText = wordPiece.Separator;
        BpeTokenizer = null!;
        _metadata = new Lazy<IReadOnlyDictionary<string, string>>(BuildMetadata);
    }

    /// <summary>
    /// Loads a BERT WordPiece vocabulary (<c>vocab.txt</c>, one token a line, the line number its id: CLIPA's
    /// <c>bert-base-uncased</c>) with open_clip's <c>HFTokenizer</c> rule: clean the text as <paramref name="clean"/> says,
    /// lower-case it, strip accents, split on whitespace, punctuation and around CJK characters, cut words into
    /// WordPiece tokens (<c>##</c> continuations, <c>[UNK]</c> for a word the vocabulary cannot cover), frame them as
    /// <c>[CLS]</c>, at most <paramref name="contextLength"/> - 2 tokens, <c>[SEP]</c>, and pad with <c>[PAD]</c>;
    /// with <paramref name="stripSepToken"/> (CLIPA's <c>tokenizer_kwargs.strip_sep_token</c>) <c>[SEP]</c> becomes
    /// padding. <see cref="StartOfText"/> is <c>[CLS]</c>'s id, <see cref="EndOfText"/> <c>[SEP]</c>'s,
    /// <see cref="BpeTokenizer"/> is null and <see cref="EncodeBpe"/> gives the WordPiece ids.
    /// </summary>
    /// <param name="path">The vocabulary file (<c>vocab.txt</c>).</param>
    /// <param name="contextLength">Ids per encoded text (CLIPA: 32).</param>
    /// <param name="stripSepToken">Whether <c>[SEP]</c> becomes padding (CLIPA: true).</param>
    /// <param name="clean">open_clip's <c>tokenizer_kwargs.clean</c>: <c>whitespace</c> (the default when null), <c>lower</c> or <c>canonicalize</c>.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a WordPiece vocabulary (not UTF-8, or without one of [CLS], [SEP], [PAD], [UNK] and [MASK]), or the rule is unknown; the message names the file.</exception>
    public static ClipTokenizer FromWordPiece(string path, int contextLength, bool stripSepToken, string? clean = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"WordPiece vocabulary not found: {path}", path);
        return new ClipTokenizer(new WordPieceText(File.ReadAllBytes(path), path, clean, contextLength, stripSepToken));
    }

    /// <summary>Whether this is a BERT WordPiece tokenizer (<see cref="FromWordPiece"/>).</summary>
    public bool IsWordPiece => _wordPiece is not null;

    /// <summary>Whether this is a SentencePiece tokenizer (<see cref="FromSentencePiece"/>) rather than CLIP's BPE.</summary>
    public bool IsSentencePiece => _spm is not null;

    private int RequireToken(string token) => _vocabulary.Vocabulary.TryGetValue(token, out var id)
        ? id
        : throw new InvalidDataException($"{_vocabulary.Source}: the vocabulary has no {token} token");

    /// <summary>
    /// Loads OpenAI's vocabulary file <c>bpe_simple_vocab_16e6.txt.gz</c> (gzip, or the same text uncompressed).
    /// </summary>
    /// <param name="path">The vocabulary file.</param>
    /// <param name="contextLength">Tokens per encoded text, start and end tokens included (CLIP: 77).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not CLIP's vocabulary (not gzip or text, too few merges, malformed lines); the message names it.</exception>
    public static ClipTokenizer FromBpeVocabulary(string path, int contextLength = 77)
    {
        ArgumentNullException.ThrowIfNull(path);
        return new ClipTokenizer(ClipBpeVocabulary.ReadOpenAiFile(path), contextLength);
    }

    /// <summary>Loads the tokenizer of a Hugging Face CLIP folder: its <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    /// <param name="folder">The model or tokenizer folder.</param>
    /// <param name="contextLength">Tokens per encoded text, start and end tokens included (CLIP: 77).</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">vocab.json or merges.txt is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed (vocab.json not JSON, a bad merge line, merges of unknown tokens); the message names it.</exception>
    public static ClipTokenizer FromHuggingFaceFolder(string folder, int contextLength = 77)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return new ClipTokenizer(ClipBpeVocabulary.ReadHuggingFaceFolder(folder), contextLength);
    }

    /// <summary>
    /// Loads a tokenizer from OpenAI's vocabulary file (<c>.txt.gz</c> or <c>.txt</c>) or from a folder with
    /// <c>vocab.json</c> and <c>merges.txt</c> (a <c>vocab.json</c> path stands for its folder).
    /// </summary>
    /// <param name="path">A vocabulary file or a Hugging Face folder.</param>
    /// <param name="contextLength">Tokens per encoded text, start and end tokens included (CLIP: 77).</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file or folder is not a CLIP vocabulary; the message names it.</exception>
    public static ClipTokenizer Load(string path, int contextLength = 77)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) return FromHuggingFaceFolder(path, contextLength);
        if (!File.Exists(path)) throw new FileNotFoundException($"Tokenizer vocabulary not found: {path}", path);
        if (string.Equals(Path.GetFileName(path), "vocab.json", StringComparison.OrdinalIgnoreCase))
            return FromHuggingFaceFolder(Path.GetDirectoryName(Path.GetFullPath(path))!, contextLength);
        return FromBpeVocabulary(path, contextLength);
    }

    /// <summary>
    /// Learns a byte-level BPE vocabulary from <paramref name="texts"/> (typically the captions of a training set), for
    /// models trained from scratch: no download, and every frequent caption word becomes one token. Words never seen
    /// fall back to smaller pieces, down to single bytes, as in CLIP's own vocabulary. The result behaves and
    /// serializes like any CLIP tokenizer.
    /// </summary>
    /// <param name="texts">The corpus; cleaned and split exactly as encoding will do.</param>
    /// <param name="contextLength">Tokens per encoded text, start and end tokens included.</param>
    /// <param name="maxMerges">Upper bound on learned merges (vocabulary size = 514 + merges).</param>
    public static ClipTokenizer Train(IEnumerable<string> texts, int contextLength = 77, int maxMerges = 16_000)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (maxMerges < 0) throw new ArgumentOutOfRangeException(nameof(maxMerges));
        var merges = ClipBpeTrainer.LearnMerges(texts, maxMerges);
        return new ClipTokenizer(ClipBpeVocabulary.FromMerges(merges, "a vocabulary learned from training texts"), contextLength);
    }

    /// <summary>Tokens per encoded text, the start and end tokens included (77 for every published CLIP model).</summary>
    public int ContextLength { get; }

    /// <summary>The id of <c>&lt;|startoftext|&gt;</c> (49406 in CLIP's vocabulary).</summary>
    public int StartOfText { get; }

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> (49407 in CLIP's vocabulary); the text model pools its features at this token.</summary>
    public int EndOfText { get; }

    /// <summary>The vocabulary and merges underneath (written out by the ONNX export).</summary>
    internal ClipBpeVocabulary Vocabulary => _vocabulary;

    /// <summary>The number of tokens in the vocabulary, special tokens included (49408 for CLIP).</summary>
    public int VocabularySize => _spm?.VocabularySize ?? _wordPiece?.VocabularySize ?? _vocabulary.Vocabulary.Count;

    /// <summary>
    /// The Microsoft.ML.Tokenizers tokenizer underneath, with CLIP's cleaning (as its normalizer) and CLIP's word
    /// pattern (as its pre-tokenizer): its ids are <see cref="EncodeBpe"/>'s. Its own <c>Decode</c> drops the
    /// spaces between words; use <see cref="Decode(IEnumerable{int})"/>. Null for SentencePiece tokenizers
    /// (<see cref="IsSentencePiece"/>).
    /// </summary>
    public BpeTokenizer BpeTokenizer { get; }

    /// <summary>The BPE ids of a text, without the start and end tokens and without truncation.</summary>
    /// <param name="text">Any text; empty or blank text has no ids.</param>
    public IReadOnlyList<int> EncodeBpe(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_spm is not null) return _spm.EncodePieces(text);
        if (_wordPiece is not null) return _wordPiece.EncodePieces(text);
        return BpeTokenizer.EncodeToIds(text);
    }

    /// <summary>
    /// The ids the text model takes: start token, BPE ids, end token, zeros up to <see cref="ContextLength"/>.
    /// A longer text keeps its first <see cref="ContextLength"/> - 2 BPE ids and ends with the end token.
    /// </summary>
    /// <param name="text">Any text; empty or blank text gives [start, end, 0, ...].</param>
    /// <param name="truncate">When false, a text that does not fit throws <see cref="ClipTextTooLongException"/>.</param>
    public int[] Encode(string text, bool truncate = true)
    {
        if (_spm is not null)
        {
            var row = new long[ContextLength];
            _spm.EncodeInto(text, row, truncate, index: null);
            return row.Select(v => (int)v).ToArray();
        }
        if (_wordPiece is not null)
        {
            var row = new long[ContextLength];
            _wordPiece.EncodeInto(text, row, truncate, index: null);
            return row.Select(v => (int)v).ToArray();
        }
        var ids = new int[ContextLength];
        var bpe = EncodeBpe(text);
        int count = FittedCount(text, bpe, truncate, index: null);
        ids[0] = StartOfText;
        for (int i = 0; i < count; i++) ids[i + 1] = bpe[i];
        ids[count + 1] = EndOfText;
        return ids;
    }

    /// <summary>As <see cref="Encode"/>, written into <paramref name="destination"/> (for filling a batch buffer row by row).</summary>
    /// <param name="text">Any text.</param>
    /// <param name="destination">Exactly <see cref="ContextLength"/> values; every one is written.</param>
    /// <param name="truncate">When false, a text that does not fit throws <see cref="ClipTextTooLongException"/>.</param>
    public void EncodeInto(string text, Span<long> destination, bool truncate = true) =>
        EncodeInto(text, destination, truncate, index: null);

    private void EncodeInto(string text, Span<long> destination, bool truncate, int? index)
    {
        if (_spm is not null)
        {
            _spm.EncodeInto(text, destination, truncate, index);
            return;
        }
        if (_wordPiece is not null)
        {
            _wordPiece.EncodeInto(text, destination, truncate, index);
            return;
        }
        if (destination.Length != ContextLength)
            throw new ArgumentException($"The destination holds {destination.Length} values; one encoded text is {ContextLength}.", nameof(destination));
        var bpe = EncodeBpe(text);
        int count = FittedCount(text, bpe, truncate, index);
        destination[0] = StartOfText;
        for (int i = 0; i < count; i++) destination[i + 1] = bpe[i];
        destination[count + 1] = EndOfText;
        destination[(count + 2)..].Clear();
    }

    private int FittedCount(string text, IReadOnlyList<int> bpe, bool truncate, int? index)
    {
        int room = ContextLength - 2;
        if (bpe.Count <= room) return bpe.Count;
        if (!truncate) throw new ClipTextTooLongException(text, bpe.Count + 2, ContextLength, index);
        return room;
    }

    /// <summary>Encodes a batch into one int64 tensor of shape [texts.Count, <see cref="ContextLength"/>] on the CPU.</summary>
    /// <param name="texts">The texts; none may be null.</param>
    /// <param name="truncate">When false, a text that does not fit throws <see cref="ClipTextTooLongException"/> naming its index.</param>
    public Tensor Tokenize(IReadOnlyList<string> texts, bool truncate = true)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var ids = new long[(long)texts.Count * ContextLength];
        for (int i = 0; i < texts.Count; i++)
        {
            var text = texts[i] ?? throw new ArgumentException($"Text {i} is null.", nameof(texts));
            EncodeInto(text, ids.AsSpan(i * ContextLength, ContextLength), truncate, i);
        }
        return torch.tensor(ids, new long[] { texts.Count, ContextLength }, dtype: ScalarType.Int64);
    }

    /// <summary>
    /// Text from ids as OpenAI's <c>decode</c> gives it: tokens joined, bytes decoded as UTF-8 (invalid bytes
    /// become U+FFFD), each <c>&lt;/w&gt;</c> a space. Special tokens appear as text and padding zeros as '!'
    /// (id 0), exactly as in the original; see <see cref="Decode(IEnumerable{int}, bool)"/> to leave them out.
    /// Cleaning is not undone: the text is lower-case, with its fixes applied.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids) => Decode(ids, skipSpecialTokens: false);

    /// <summary>As <see cref="Decode(IEnumerable{int})"/>; with <paramref name="skipSpecialTokens"/> the start and end tokens and the zero padding after the last end token are left out.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (_spm is not null) return _spm.Decode(ids, skipSpecialTokens);
        if (_wordPiece is not null) return _wordPiece.Decode(ids, skipSpecialTokens);
        var list = ids as IReadOnlyList<int> ?? ids.ToList();
        int end = list.Count;
        if (skipSpecialTokens)
        {
            int lastEnd = -1;
            for (int i = list.Count - 1; i >= 0; i--)
                if (list[i] == EndOfText) { lastEnd = i; break; }
            if (lastEnd >= 0 && Enumerable.Range(lastEnd + 1, list.Count - lastEnd - 1).All(i => list[i] == 0)) end = lastEnd;
        }
        var bytes = new List<byte>(end * 4);
        for (int i = 0; i < end; i++)
        {
            int id = list[i];
            if (skipSpecialTokens && (id == StartOfText || id == EndOfText)) continue;
            var token = (uint)id < (uint)_tokensById.Length ? _tokensById[id] : null;
            if (token is null) throw new ArgumentOutOfRangeException(nameof(ids), id, $"Id {id} (position {i}) is not in the vocabulary of {VocabularySize} tokens.");
            foreach (char c in token)
            {
                // Special tokens are plain ASCII, which is its own byte symbol.
                bytes.Add(_bytesBySymbol.TryGetValue(c, out var b) ? b : (byte)'?');
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(ClipBpeVocabulary.EndOfWordSuffix, " ", StringComparison.Ordinal);
    }

    /// <summary>The token string of an id (byte-level symbols, <c>&lt;/w&gt;</c> ending a word), or null when the id is not in the vocabulary.</summary>
    public string? IdToToken(int id) => _spm is not null ? _spm.IdToPiece(id) : _wordPiece is not null ? _wordPiece.IdToToken(id) : (uint)id < (uint)_tokensById.Length ? _tokensById[id] : null;

    /// <summary>The id of a token string (byte-level symbols, as <see cref="IdToToken"/> gives), or null.</summary>
    public int? TokenToId(string token) => _spm is not null ? _spm.PieceToId(token) : _wordPiece is not null ? _wordPiece.TokenToId(token) : _vocabulary.Vocabulary.TryGetValue(token, out var id) ? id : null;

    /// <summary>
    /// The tokenizer as string entries, for a saved model to carry: <c>tokenizer.kind</c>, <c>tokenizer.format</c>,
    /// <c>tokenizer.context_length</c>, and <c>tokenizer.merges</c> (the merges, one "left right" per line,
    /// gzip-compressed and base64-encoded: about 0.3 MB). The vocabulary follows from the merges in OpenAI's
    /// construction; a vocabulary that does not (a custom Hugging Face one) is added as
    /// <c>tokenizer.vocab</c> (its JSON, compressed the same way).
    /// </summary>
    public IReadOnlyDictionary<string, string> ToMetadata() => _metadata.Value;

    private IReadOnlyDictionary<string, string> BuildMetadata()
    {
        if (_wordPiece is not null)
        {
            var wp = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["tokenizer.kind"] = WordPieceText.Kind,
                ["tokenizer.format"] = MetadataFormat,
                ["tokenizer.context_length"] = ContextLength.ToString(CultureInfo.InvariantCulture),
                ["tokenizer.vocab"] = Convert.ToBase64String(_wordPiece.Vocabulary),
                ["tokenizer.strip_sep_token"] = _wordPiece.StripSepToken ? "true" : "false",
            };
            if (_wordPiece.Clean is { } wpClean) wp["tokenizer.clean"] = wpClean;
            return wp.ToFrozenDictionary(StringComparer.Ordinal);
        }
        if (_spm is not null)
        {
            var spm = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["tokenizer.kind"] = SentencePieceKind,
                ["tokenizer.format"] = MetadataFormat,
                ["tokenizer.context_length"] = ContextLength.ToString(CultureInfo.InvariantCulture),
                ["tokenizer.model"] = Convert.ToBase64String(_spm.Model),
            };
            if (_spm.Clean is { } clean) spm["tokenizer.clean"] = clean;
            return spm.ToFrozenDictionary(StringComparer.Ordinal);
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["tokenizer.kind"] = MetadataKind,
            ["tokenizer.format"] = MetadataFormat,
            ["tokenizer.context_length"] = ContextLength.ToString(CultureInfo.InvariantCulture),
            ["tokenizer.merges"] = Compress(string.Join('\n', _vocabulary.Merges)),
        };
        if (!_vocabulary.IsCanonical)
            metadata["tokenizer.vocab"] = Compress(JsonSerializer.Serialize(_vocabulary.Vocabulary));
        return metadata.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>Rebuilds a tokenizer from <see cref="ToMetadata"/>'s entries (other entries are ignored).</summary>
    /// <exception cref="InvalidDataException">An entry is missing or damaged; the message names it.</exception>
    public static ClipTokenizer FromMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        string Require(string key) => metadata.TryGetValue(key, out var value)
            ? value
            : throw new InvalidDataException($"Tokenizer metadata has no '{key}' entry.");
        if (metadata.TryGetValue("tokenizer.kind", out var spmKind) && spmKind == SentencePieceKind)
        {
            if (!int.TryParse(Require("tokenizer.context_length"), NumberStyles.None, CultureInfo.InvariantCulture, out var spmContext))
                throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.context_length' is not a number: '{metadata["tokenizer.context_length"]}'.");
            byte[] model;
            try { model = Convert.FromBase64String(Require("tokenizer.model")); }
            catch (FormatException e) { throw new InvalidDataException("Tokenizer metadata: 'tokenizer.model' is not base64.", e); }
            metadata.TryGetValue("tokenizer.clean", out var clean);
            return new ClipTokenizer(new SentencePieceText(model, "tokenizer metadata", clean, spmContext));
        }
        if (metadata.TryGetValue("tokenizer.kind", out var wpKind) && wpKind == WordPieceText.Kind)
        {
            if (!int.TryParse(Require("tokenizer.context_length"), NumberStyles.None, CultureInfo.InvariantCulture, out var wpContext))
                throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.context_length' is not a number: '{metadata["tokenizer.context_length"]}'.");
            byte[] vocab;
            try { vocab = Convert.FromBase64String(Require("tokenizer.vocab")); }
            catch (FormatException e) { throw new InvalidDataException("Tokenizer metadata: 'tokenizer.vocab' is not base64.", e); }
            metadata.TryGetValue("tokenizer.clean", out var wpClean);
            bool strip = metadata.TryGetValue("tokenizer.strip_sep_token", out var s) && s == "true";
            return new ClipTokenizer(new WordPieceText(vocab, "tokenizer metadata", wpClean, wpContext, strip));
        }
        if (Require("tokenizer.kind") is var kind && kind != MetadataKind)
            throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.kind' is '{kind}'; this library reads '{MetadataKind}'.");
        if (Require("tokenizer.format") is var format && format != MetadataFormat)
            throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.format' is '{format}'; this library reads format {MetadataFormat}.");
        if (!int.TryParse(Require("tokenizer.context_length"), NumberStyles.None, CultureInfo.InvariantCulture, out var contextLength))
            throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.context_length' is not a number: '{metadata["tokenizer.context_length"]}'.");
        var merges = Decompress(Require("tokenizer.merges"), "tokenizer.merges").Split('\n');
        const string source = "tokenizer metadata";
        var vocabulary = metadata.TryGetValue("tokenizer.vocab", out var vocabText)
            ? ClipBpeVocabulary.FromVocabularyAndMerges(ParseVocabulary(Decompress(vocabText, "tokenizer.vocab")), merges, source)
            : ClipBpeVocabulary.FromMerges(merges, source);
        return new ClipTokenizer(vocabulary, contextLength);
    }

    private static Dictionary<string, int> ParseVocabulary(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, int>>(json) ?? throw new InvalidDataException("Tokenizer metadata: 'tokenizer.vocab' is null.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Tokenizer metadata: 'tokenizer.vocab' is not a JSON object of token ids ({e.Message}).", e);
        }
    }

    private static string Compress(string text)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true))
            gzip.Write(Encoding.UTF8.GetBytes(text));
        return Convert.ToBase64String(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static string Decompress(string base64, string key)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(Convert.FromBase64String(base64)), CompressionMode.Decompress);
            using var reader = new StreamReader(gzip, new UTF8Encoding(false, throwOnInvalidBytes: true));
            return reader.ReadToEnd();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or DecoderFallbackException)
        {
            throw new InvalidDataException($"Tokenizer metadata: '{key}' is not base64 of gzip-compressed UTF-8 text ({e.Message}).", e);
        }
    }

    /// <summary>Plugs CLIP's text cleaning into Microsoft.ML.Tokenizers as its normalizer.</summary>
    private sealed class ClipTextNormalizer : Normalizer
    {
        public static readonly ClipTextNormalizer Instance = new();

        public override string Normalize(string original) => ClipTextCleaner.Clean(original ?? "");

        public override string Normalize(ReadOnlySpan<char> original) => ClipTextCleaner.Clean(original.ToString());
    }
}
