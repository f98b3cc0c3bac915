using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace Clip.MLNet.Text;

/// <summary>
/// CLIP's BPE vocabulary and merges, read from OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> or from a Hugging Face
/// folder's <c>vocab.json</c> + <c>merges.txt</c>. Microsoft.ML.Tokenizers reads only the Hugging Face pair of files,
/// so the OpenAI file is turned into the same vocabulary here, in memory.
/// </summary>
internal sealed class ClipBpeVocabulary
{
    public const string StartOfTextToken = "<|startoftext|>";
    public const string EndOfTextToken = "<|endoftext|>";
    public const string EndOfWordSuffix = "</w>";

    /// <summary>Merges that OpenAI's tokenizer reads from its file: 49152 - 256 - 2.</summary>
    public const int OpenAiMergeCount = 49152 - 256 - 2;

    private static readonly byte[] GzipMagic = [0x1F, 0x8B];

    private ClipBpeVocabulary(IReadOnlyList<string> merges, Dictionary<string, int> vocabulary, bool isCanonical, string source)
    {
        Merges = merges;
        Vocabulary = vocabulary;
        IsCanonical = isCanonical;
        Source = source;
    }

    /// <summary>The merges in rank order, each "left right".</summary>
    public IReadOnlyList<string> Merges { get; }

    /// <summary>Token string to id, special tokens included.</summary>
    public Dictionary<string, int> Vocabulary { get; }

    /// <summary>True when <see cref="Vocabulary"/> is exactly what OpenAI's construction gives for <see cref="Merges"/>, so the merges alone describe it.</summary>
    public bool IsCanonical { get; }

    /// <summary>Where it came from, for error messages.</summary>
    public string Source { get; }

    /// <summary>
    /// GPT-2's reversible byte-to-character table (<c>bytes_to_unicode</c>): printable Latin-1 bytes stand for
    /// themselves, the other 68 bytes take the characters from U+0100 on, in byte order. The order of this list
    /// (printable bytes first) is the order of the first 256 vocabulary ids.
    /// </summary>
    public static readonly (byte Byte, char Symbol)[] ByteSymbols = BuildByteSymbols();

    private static (byte, char)[] BuildByteSymbols()
    {
        static bool Printable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        var table = new List<(byte, char)>(256);
        for (int b = 0; b < 256; b++)
            if (Printable(b)) table.Add(((byte)b, (char)b));
        int next = 0;
        for (int b = 0; b < 256; b++)
            if (!Printable(b)) table.Add(((byte)b, (char)(256 + next++)));
        return table.ToArray();
    }

    /// <summary>OpenAI's vocabulary for a list of merges: 256 byte symbols, the same with <c>&lt;/w&gt;</c>, one token per merge, then the two special tokens.</summary>
    public static Dictionary<string, int> CanonicalVocabulary(IReadOnlyList<string> merges, string source)
    {
        var vocabulary = new Dictionary<string, int>(512 + merges.Count + 2, StringComparer.Ordinal);
        foreach (var (_, symbol) in ByteSymbols) vocabulary.Add(symbol.ToString(), vocabulary.Count);
        foreach (var (_, symbol) in ByteSymbols) vocabulary.Add(symbol + EndOfWordSuffix, vocabulary.Count);
        for (int i = 0; i < merges.Count; i++)
        {
            var merged = merges[i].Replace(" ", "", StringComparison.Ordinal);
            if (!vocabulary.TryAdd(merged, vocabulary.Count))
                throw new InvalidDataException($"{source}: merge {i + 1} ('{merges[i]}') makes the token '{merged}' a second time");
        }
        vocabulary.Add(StartOfTextToken, vocabulary.Count);
        vocabulary.Add(EndOfTextToken, vocabulary.Count);
        return vocabulary;
    }

    /// <summary>Builds a vocabulary from merges alone (OpenAI's construction).</summary>
    public static ClipBpeVocabulary FromMerges(IReadOnlyList<string> merges, string source) =>
        new(merges, CanonicalVocabulary(merges, source), isCanonical: true, source);

    /// <summary>Builds a vocabulary from a given token table and merges (a Hugging Face folder, or saved metadata).</summary>
    public static ClipBpeVocabulary FromVocabularyAndMerges(Dictionary<string, int> vocabulary, IReadOnlyList<string> merges, string source)
    {
        bool canonical;
        try
        {
            var expected = CanonicalVocabulary(merges, source);
            canonical = expected.Count == vocabulary.Count && expected.All(kv => vocabulary.TryGetValue(kv.Key, out var id) && id == kv.Value);
        }
        catch (InvalidDataException)
        {
            canonical = false;
        }
        return new(merges, vocabulary, canonical, source);
    }

    /// <summary>
    /// Reads OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> (gzip, or the same text uncompressed): a header line,
    /// then merges, of which OpenAI's tokenizer uses the first 48894 (the file holds more).
    /// </summary>
    public static ClipBpeVocabulary ReadOpenAiFile(string path)
    {
        if (Directory.Exists(path))
            throw new InvalidDataException($"{path}: is a folder; expected CLIP's BPE vocabulary file (bpe_simple_vocab_16e6.txt.gz) or use a Hugging Face folder loader");
        if (!File.Exists(path))
            throw new FileNotFoundException($"CLIP BPE vocabulary not found: {path}", path);

        using var file = File.OpenRead(path);
        Span<byte> head = stackalloc byte[2];
        int headLength = file.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        file.Position = 0;
        bool gzip = headLength == 2 && head.SequenceEqual(GzipMagic);
        using Stream content = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
        // Strict UTF-8: a binary file passed by mistake is reported, not tokenized with garbage merges.
        using var reader = new StreamReader(content, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: false);

        int lineNumber = 0;
        string? ReadLine()
        {
            try
            {
                var line = reader.ReadLine();
                if (line is not null) lineNumber++;
                return line;
            }
            catch (InvalidDataException e)
            {
                // GZipStream reports damaged data without the file name.
                throw new InvalidDataException($"{path}: damaged gzip data ({e.Message})", e);
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"{path}: not a CLIP BPE vocabulary (not UTF-8 text{(gzip ? " inside the gzip" : "")}, line {lineNumber + 1})", e);
            }
        }

        if (ReadLine() is null)
            throw new InvalidDataException($"{path}: is empty; expected CLIP's BPE vocabulary (a header line and {OpenAiMergeCount} merges)");
        var merges = new List<string>(OpenAiMergeCount);
        while (merges.Count < OpenAiMergeCount && ReadLine() is { } mergeLine)
            merges.Add(ParseMerge(mergeLine, path, lineNumber, splitOnAnyWhitespace: true));
        if (merges.Count < OpenAiMergeCount)
            throw new InvalidDataException($"{path}: has {merges.Count} merge lines after its header; CLIP's BPE vocabulary has at least {OpenAiMergeCount}");
        return FromMerges(merges, path);
    }

    /// <summary>Reads a Hugging Face tokenizer folder's <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    public static ClipBpeVocabulary ReadHuggingFaceFolder(string folder)
    {
        if (!Directory.Exists(folder))
        {
            if (File.Exists(folder))
                throw new InvalidDataException($"{folder}: is a file; expected a Hugging Face folder with vocab.json and merges.txt");
            throw new DirectoryNotFoundException($"Tokenizer folder not found: {folder}");
        }
        var vocabPath = Path.Combine(folder, "vocab.json");
        var mergesPath = Path.Combine(folder, "merges.txt");
        foreach (var required in new[] { vocabPath, mergesPath })
            if (!File.Exists(required))
                throw new FileNotFoundException($"{folder}: has no {Path.GetFileName(required)} (a Hugging Face CLIP tokenizer folder has vocab.json and merges.txt)", required);

        Dictionary<string, int> vocabulary;
        try
        {
            using var stream = File.OpenRead(vocabPath);
            vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(stream)
                ?? throw new InvalidDataException($"{vocabPath}: is JSON null; expected an object of token ids");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{vocabPath}: not a JSON object of token ids ({e.Message})", e);
        }
        if (vocabulary.Count == 0)
            throw new InvalidDataException($"{vocabPath}: holds no tokens");

        var merges = new List<string>(OpenAiMergeCount);
        string text;
        try
        {
            text = File.ReadAllText(mergesPath, new UTF8Encoding(false, throwOnInvalidBytes: true));
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{mergesPath}: not UTF-8 text", e);
        }
        int lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var line = rawLine.EndsWith('\r') ? rawLine[..^1] : rawLine;
            // Hugging Face skips its "#version" header and blank lines.
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            merges.Add(ParseMerge(line, mergesPath, lineNumber, splitOnAnyWhitespace: false));
        }
        return FromVocabularyAndMerges(vocabulary, merges, folder);
    }

    /// <summary>One merge line as "left right". OpenAI splits on any whitespace (<c>str.split()</c>), Hugging Face on one space.</summary>
    private static string ParseMerge(string line, string path, int lineNumber, bool splitOnAnyWhitespace)
    {
        string[] parts = splitOnAnyWhitespace
            ? line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            : line.Split(' ');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new InvalidDataException($"{path}: line {lineNumber} is not a merge of two tokens: '{Abbreviate(line)}'");
        return splitOnAnyWhitespace ? $"{parts[0]} {parts[1]}" : line;
    }

    private static string Abbreviate(string s) => s.Length <= 60 ? s : s[..57] + "...";
}
