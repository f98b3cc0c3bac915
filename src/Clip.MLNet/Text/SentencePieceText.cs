using Microsoft.ML.Tokenizers;

namespace Clip.MLNet.Text;

/// <summary>
/// open_clip's wrapper rule over a SentencePiece model (its <c>HFTokenizer</c> over T5's or Gemma's tokenizer): clean
/// the text as the config's <c>tokenizer_kwargs.clean</c> says, encode it with the model (Microsoft.ML.Tokenizers'
/// <see cref="SentencePieceTokenizer"/>: unigram or BPE with byte fallback, the model's own normalizer), keep at most
/// context - 1 pieces, append the end-of-sentence id, pad with the model's pad id (0 in T5's and Gemma's models) to the
/// context length. No start token: T5's tokenizer adds none, and SigLIP2's Gemma tokenizer is configured without one
/// (transformers' SigLIP2 conversion sets add_bos_token false and add_eos_token true; not checked against the hub's files here).
/// </summary>
internal sealed class SentencePieceText
{
    private readonly SentencePieceTokenizer tokenizer;
    private readonly string?[] pieces;
    private readonly bool unigram;
    private readonly int addedPieces;

    public SentencePieceText(byte[] model, string source, string? clean, int contextLength)
    {
        if (contextLength < 1)
            throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context must hold at least the end token.");
        try
        {
            var usable = WithUsableSpecialIds(model, out unigram, out int padId);
            Padding = padId;
            addedPieces = usable == model ? 0 : 1;
            using var stream = new MemoryStream(usable, writable: false);
            tokenizer = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{source}: not a SentencePiece model this library can read ({e.Message})", e);
        }
        if (clean is not (null or "canonicalize" or "lower" or "whitespace"))
            throw new InvalidDataException($"{source}: unknown tokenizer_kwargs.clean '{clean}' (canonicalize, lower or whitespace)");
        Model = model;
        Source = source;
        Clean = clean;
        ContextLength = contextLength;
        EndOfSentence = tokenizer.EndOfSentenceId;
        int max = tokenizer.Vocabulary.Values.DefaultIfEmpty(0).Max();
        pieces = new string?[max + 1];
        foreach (var (piece, id) in tokenizer.Vocabulary) if (id >= 0) pieces[id] = piece;
    }

    /// <summary>
    /// Microsoft.ML.Tokenizers 2.0.1's unigram reader indexes the pieces with the model's <c>bos_id</c> and fails
    /// when it is -1, as in T5's <c>spiece.model</c> (no start token). Such a model gets a control piece <c>&lt;s&gt;</c>
    /// appended as its start token: control pieces never come out of encoding, and no start token is added here,
    /// so the ids are those of the original model.
    /// </summary>
    private static byte[] WithUsableSpecialIds(byte[] model, out bool unigram, out int padId)
    {
        unigram = true;   // the proto's default model type
        padId = 0;
        // The model is a protobuf ModelProto: pieces are field 1 (messages: piece = 1, score = 2, type = 3),
        // trainer_spec is field 2 (bos_id = 41). The reader's types are internal, so the few fields are handled here.
        int pieces = 0;
        (int Start, int Length)? spec = null;
        int pos = 0;
        while (pos < model.Length)
        {
            ulong key = ReadVarint(model, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            int valueStart = pos;
            SkipValue(model, ref pos, wire);
            if (wire != 2) continue;
            int p = valueStart;
            int length = (int)ReadVarint(model, ref p);
            if (field == 1) pieces++;
            else if (field == 2) spec = (p, length);
        }
        if (spec is not { } s) return model;
        long bos = 1;   // the proto's default
        for (int q = s.Start; q < s.Start + s.Length;)
        {
            ulong key = ReadVarint(model, ref q);
            if (key == (3UL << 3)) { int q2 = q; unigram = ReadVarint(model, ref q2) == 1; }
            if (key == (43UL << 3)) { int q2 = q; int pad = (int)ReadVarint(model, ref q2); padId = pad >= 0 ? pad : 0; }
            SkipValue(model, ref q, (int)(key & 7));
        }
        for (int q = s.Start; q < s.Start + s.Length;)
        {
            ulong key = ReadVarint(model, ref q);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (field == 41 && wire == 0) { int q2 = q; bos = (int)ReadVarint(model, ref q2); }
            SkipValue(model, ref q, wire);
        }
        if (bos >= 0) return model;

        var output = new MemoryStream(model.Length + 64);
        pos = 0;
        while (pos < model.Length)
        {
            int fieldStart = pos;
            ulong key = ReadVarint(model, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            SkipValue(model, ref pos, wire);
            if (field == 2 && wire == 2)
            {
                var extra = new MemoryStream();
                WriteVarint(extra, (41UL << 3) | 0);
                WriteVarint(extra, (ulong)pieces);   // last value wins: bos_id = the piece appended below
                WriteVarint(output, key);
                WriteVarint(output, (ulong)(s.Length + extra.Length));
                output.Write(model, s.Start, s.Length);
                extra.WriteTo(output);
            }
            else output.Write(model, fieldStart, pos - fieldStart);
        }
        var piece = new MemoryStream();
        var text = System.Text.Encoding.UTF8.GetBytes("<s>");
        WriteVarint(piece, (1UL << 3) | 2);
        WriteVarint(piece, (ulong)text.Length);
        piece.Write(text);
        WriteVarint(piece, (3UL << 3) | 0);
        WriteVarint(piece, 3);   // CONTROL
        WriteVarint(output, (1UL << 3) | 2);
        WriteVarint(output, (ulong)piece.Length);
        piece.WriteTo(output);
        return output.ToArray();
    }

    private static ulong ReadVarint(byte[] data, ref int pos)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length) throw new InvalidDataException("truncated protobuf varint");
            byte b = data[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("malformed protobuf varint");
    }

    private static void SkipValue(byte[] data, ref int pos, int wire)
    {
        switch (wire)
        {
            case 0: ReadVarint(data, ref pos); break;
            case 1: pos += 8; break;
            case 2: { int length = (int)ReadVarint(data, ref pos); pos += length; break; }
            case 5: pos += 4; break;
            default: throw new InvalidDataException($"unsupported protobuf wire type {wire}");
        }
        if (pos > data.Length) throw new InvalidDataException("truncated protobuf message");
    }

    private static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }

    public byte[] Model { get; }
    public string Source { get; }
    public string? Clean { get; }
    public int ContextLength { get; }
    public int EndOfSentence { get; }
    /// <summary>The padding id: the model's <c>pad_id</c> (0 in T5's and Gemma's models), 0 when it has none.</summary>
    public int Padding { get; }
    /// <summary>The model's pieces (without the start piece added for the reader, see <see cref="WithUsableSpecialIds"/>).</summary>
    public int VocabularySize => tokenizer.Vocabulary.Count - addedPieces;
    public SentencePieceTokenizer Tokenizer => tokenizer;

    /// <summary>The pieces' ids of the cleaned text, without end token and truncation.</summary>
    public IReadOnlyList<int> EncodePieces(string text)
    {
        var ids = tokenizer.EncodeToIds(ClipTextCleaner.CleanAs(text, Clean), addBeginningOfSentence: false, addEndOfSentence: false);
        if (!unigram || tokenizer.ByteFallback) return ids;
        // SentencePiece's unigram encoder merges a run of unknown characters into one unknown piece
        // ("日本の寺" with none of them in the vocabulary is one <unk>); Microsoft.ML.Tokenizers gives one per character.
        int unk = tokenizer.UnknownId;
        var merged = new List<int>(ids.Count);
        foreach (var id in ids)
            if (!(id == unk && merged.Count > 0 && merged[^1] == unk)) merged.Add(id);
        return merged;
    }

    public void EncodeInto(string text, Span<long> destination, bool truncate, int? index)
    {
        if (destination.Length != ContextLength)
            throw new ArgumentException($"The destination holds {destination.Length} values; one encoded text is {ContextLength}.", nameof(destination));
        var ids = EncodePieces(text);
        int room = ContextLength - 1;
        int count = ids.Count;
        if (count > room)
        {
            if (!truncate) throw new ClipTextTooLongException(text, count + 1, ContextLength, index);
            count = room;
        }
        for (int i = 0; i < count; i++) destination[i] = ids[i];
        destination[count] = EndOfSentence;
        destination[(count + 1)..].Fill(Padding);
    }

    public string? IdToPiece(int id) => (uint)id < (uint)pieces.Length ? pieces[id] : null;

    public int? PieceToId(string piece) => tokenizer.Vocabulary.TryGetValue(piece, out var id) ? id : null;

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var list = ids.ToList();
        if (skipSpecialTokens)
        {
            int end = list.IndexOf(EndOfSentence);
            if (end >= 0) list = list.Take(end).ToList();
        }
        return tokenizer.Decode(list, considerSpecialTokens: !skipSpecialTokens) ?? "";
    }
}
