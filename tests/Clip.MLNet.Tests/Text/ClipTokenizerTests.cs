using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text;
using Clip.MLNet.Tests.Support;
using TorchSharp;
using static Clip.MLNet.Tests.Text.TokenizerFixtures;

namespace Clip.MLNet.Tests.Text;

/// <summary>The tokenizer's API: context framing, truncation, batches, decoding, metadata, threads and loading errors.</summary>
public class ClipTokenizerTests
{
    private static readonly string LongText = string.Join(' ', Enumerable.Repeat("dog", 100));

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("\t\r\n\u3000\u00A0")]
    [InlineData("\u0000\uFEFF")] // nothing but characters that cleaning removes
    public void EmptyOrBlankTextIsStartEndAndPadding(string text)
    {
        Assert.Empty(OpenAi.EncodeBpe(text));
        var expected = new int[77];
        expected[0] = 49406;
        expected[1] = 49407;
        Assert.Equal(expected, OpenAi.Encode(text));
        Assert.Equal(expected, OpenAi.Encode(text, truncate: false));
    }

    [Fact]
    public void LongTextIsTruncatedWithTheEndTokenLast()
    {
        var dog = Id("dog</w>");
        Assert.Equal(100, OpenAi.EncodeBpe(LongText).Count);
        var ids = OpenAi.Encode(LongText);
        Assert.Equal(77, ids.Length);
        Assert.Equal(49406, ids[0]);
        Assert.All(ids[1..76], id => Assert.Equal(dog, id));
        Assert.Equal(49407, ids[76]);
    }

    [Fact]
    public void TextThatExactlyFitsNeedsNoTruncation()
    {
        var fits = string.Join(' ', Enumerable.Repeat("dog", 75));
        var ids = OpenAi.Encode(fits, truncate: false);
        Assert.Equal(49407, ids[76]);
        Assert.Throws<ClipTextTooLongException>(() => OpenAi.Encode(fits + " dog", truncate: false));
    }

    [Fact]
    public void NoTruncateNamesTheTextItsTokensAndTheContext()
    {
        var e = Assert.Throws<ClipTextTooLongException>(() => OpenAi.Encode(LongText, truncate: false));
        Assert.Equal(102, e.TokenCount);
        Assert.Equal(77, e.ContextLength);
        Assert.Null(e.Index);
        Assert.Same(LongText, e.Text);
        Assert.Contains("\"dog dog dog", e.Message);
        Assert.Contains("…", e.Message); // abbreviated
        Assert.DoesNotContain(LongText, e.Message);
        Assert.Contains("102 tokens", e.Message);
        Assert.Contains("77", e.Message);
        Assert.IsAssignableFrom<ArgumentException>(e);

        var row = new long[77];
        Assert.Throws<ClipTextTooLongException>(() => OpenAi.EncodeInto(LongText, row, truncate: false));
    }

    [Fact]
    public void NoTruncateInABatchNamesTheIndex()
    {
        var e = Assert.Throws<ClipTextTooLongException>(() => OpenAi.Tokenize(["a cat", "a dog", LongText], truncate: false));
        Assert.Equal(2, e.Index);
        Assert.StartsWith("Text 2 \"dog dog", e.Message);
    }

    [Fact]
    public void TokenizeIsOneInt64TensorOfEncodedRows()
    {
        string[] texts = ["a photo of a cat.", "", LongText];
        using var tokens = OpenAi.Tokenize(texts);
        Assert.Equal(new long[] { 3, 77 }, tokens.shape);
        Assert.Equal(torch.ScalarType.Int64, tokens.dtype);
        Assert.Equal(DeviceType.CPU, tokens.device_type);
        var values = tokens.data<long>().ToArray();
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(OpenAi.Encode(texts[i]).Select(v => (long)v), values.Skip(i * 77).Take(77));

        using var none = OpenAi.Tokenize([]);
        Assert.Equal(new long[] { 0, 77 }, none.shape);
    }

    [Fact]
    public void TokenizeMatchesTheReferenceTextTokens()
    {
        // expected.safetensors holds the reference's clip.tokenize output for the manifest's captions.
        var expected = Fixtures.Expected("text_tokens");
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixtures.ReferencePath("manifest.json")));
        var captions = manifest.RootElement.GetProperty("captions").EnumerateArray().Select(c => c.GetString()!).ToArray();
        using var tokens = OpenAi.Tokenize(captions);
        Assert.Equal(expected.shape, tokens.shape);
        using var expected64 = expected.to(torch.ScalarType.Int64);
        Assert.Equal(expected64.data<long>().ToArray(), tokens.data<long>().ToArray());
    }

    [Fact]
    public void EncodeIntoNeedsExactlyOneContext()
    {
        Assert.Throws<ArgumentException>(() => OpenAi.EncodeInto("x", new long[76]));
        Assert.Throws<ArgumentException>(() => OpenAi.EncodeInto("x", new long[78]));
        var row = Enumerable.Repeat(-1L, 77).ToArray();
        OpenAi.EncodeInto("x", row);
        Assert.Equal(new long[] { 49406, Id("x</w>"), 49407 }, row[..3]);
        Assert.All(row[3..], v => Assert.Equal(0, v)); // stale values are overwritten with padding
    }

    [Fact]
    public void OtherContextLengthsFrameTheSameWay()
    {
        var small = ClipTokenizer.FromBpeVocabulary(Fixtures.Vocab, contextLength: 8);
        Assert.Equal(8, small.ContextLength);
        var ids = small.Encode(LongText);
        Assert.Equal(new[] { 49406, Id("dog</w>"), Id("dog</w>"), Id("dog</w>"), Id("dog</w>"), Id("dog</w>"), Id("dog</w>"), 49407 }, ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipTokenizer.FromBpeVocabulary(Fixtures.Vocab, contextLength: 1));
    }

    [Fact]
    public void DecodeIsTheOriginalsDecode()
    {
        var ids = OpenAi.Encode("A photo of a Cat.");
        // The original decode keeps special tokens and reads padding (id 0) as '!'.
        Assert.Equal("<|startoftext|>a photo of a cat . <|endoftext|>" + new string('!', 69), OpenAi.Decode(ids));
        Assert.Equal("a photo of a cat . ", OpenAi.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("東京タワーの写真 ", OpenAi.Decode(OpenAi.EncodeBpe("東京タワーの写真")));
        Assert.Throws<ArgumentOutOfRangeException>(() => OpenAi.Decode([49408]));
        Assert.Throws<ArgumentOutOfRangeException>(() => OpenAi.Decode([-1]));
    }

    [Fact]
    public void TokenStringsAndIdsMapBothWays()
    {
        Assert.Equal("!", OpenAi.IdToToken(0));
        Assert.Equal("<|endoftext|>", OpenAi.IdToToken(49407));
        Assert.Null(OpenAi.IdToToken(49408));
        Assert.Equal(49406, OpenAi.TokenToId("<|startoftext|>"));
        Assert.Null(OpenAi.TokenToId("not a token"));
    }

    [Fact]
    public void MetadataRoundTripsAndIsCompact()
    {
        var small = ClipTokenizer.FromBpeVocabulary(Fixtures.Vocab, contextLength: 32);
        var metadata = small.ToMetadata();
        Assert.Equal("clip-bpe", metadata["tokenizer.kind"]);
        Assert.Equal("32", metadata["tokenizer.context_length"]);
        Assert.False(metadata.ContainsKey("tokenizer.vocab")); // the merges alone describe OpenAI's vocabulary
        Assert.InRange(metadata.Values.Sum(v => v.Length), 1, 400_000);

        var restored = ClipTokenizer.FromMetadata(metadata);
        Assert.Equal(32, restored.ContextLength);
        Assert.Equal(49408, restored.VocabularySize);
        foreach (var c in Cases)
            Assert.Equal(small.Encode(c.Text), restored.Encode(c.Text));

        // The Hugging Face folder's vocabulary is OpenAI's too, so its metadata is the same.
        Assert.Equal(OpenAi.ToMetadata(), HuggingFace.ToMetadata());
    }

    [Fact]
    public void MetadataCarriesAVocabularyThatIsNotOpenAis()
    {
        // A Hugging Face folder whose vocab.json numbers two tokens the other way round.
        using var folder = new TempFolder();
        var hf = Fixtures.ReferencePath("vit", "hf");
        var vocab = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(hf, "vocab.json")))!;
        (vocab["dog</w>"], vocab["cat</w>"]) = (vocab["cat</w>"], vocab["dog</w>"]);
        File.WriteAllText(Path.Combine(folder.Path, "vocab.json"), System.Text.Json.JsonSerializer.Serialize(vocab));
        File.Copy(Path.Combine(hf, "merges.txt"), Path.Combine(folder.Path, "merges.txt"));

        var swapped = ClipTokenizer.FromHuggingFaceFolder(folder.Path);
        Assert.Equal(new[] { Id("cat</w>") }, swapped.EncodeBpe("dog"));
        var metadata = swapped.ToMetadata();
        Assert.True(metadata.ContainsKey("tokenizer.vocab"));
        Assert.Equal(new[] { Id("cat</w>") }, ClipTokenizer.FromMetadata(metadata).EncodeBpe("dog"));
    }

    [Fact]
    public void DamagedMetadataIsReportedByEntry()
    {
        var metadata = OpenAi.ToMetadata().ToDictionary();
        metadata.Remove("tokenizer.merges");
        Assert.Contains("tokenizer.merges", Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromMetadata(metadata)).Message);
        metadata["tokenizer.merges"] = "not base64!";
        Assert.Contains("tokenizer.merges", Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromMetadata(metadata)).Message);
        metadata["tokenizer.merges"] = OpenAi.ToMetadata()["tokenizer.merges"];
        metadata["tokenizer.kind"] = "tiktoken";   // not a kind this library writes ("wordpiece" is one now: CLIPA's BERT)
        Assert.Contains("tiktoken", Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromMetadata(metadata)).Message);
    }

    [Fact]
    public void ConcurrentUseGivesTheSameIdsAsSequentialUse()
    {
        // Many distinct words so that threads fill the shared BPE cache at the same time, on a fresh instance.
        var random = new Random(7);
        var words = Cases.Select(c => c.Text).Concat(Enumerable.Range(0, 3000).Select(_ =>
            new string(Enumerable.Range(0, random.Next(1, 14)).Select(_ => (char)random.Next('a', 'z' + 1)).ToArray())
            + (random.Next(4) == 0 ? " é 😀 東京 " + random.Next(1000) : ""))).ToArray();
        var expected = words.Select(w => OpenAi.Encode(w)).ToArray();

        var shared = ClipTokenizer.FromBpeVocabulary(Fixtures.Vocab);
        var results = new ConcurrentDictionary<(int Round, int Index), int[]>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, round =>
        {
            // Each thread walks the texts from a different starting point.
            for (int k = 0; k < words.Length; k++)
            {
                int i = (k + round * 397) % words.Length;
                results[(round, i)] = shared.Encode(words[i]);
            }
        });
        for (int round = 0; round < 8; round++)
            for (int i = 0; i < words.Length; i++)
                Assert.Equal(expected[i], results[(round, i)]);
    }

    [Fact]
    public void LoadReadsEitherSource()
    {
        Assert.Equal(OpenAi.Encode("a diagram"), ClipTokenizer.Load(Fixtures.Vocab).Encode("a diagram"));
        var hf = Fixtures.ReferencePath("vit", "hf");
        Assert.Equal(OpenAi.Encode("a diagram"), ClipTokenizer.Load(hf).Encode("a diagram"));
        Assert.Equal(OpenAi.Encode("a diagram"), ClipTokenizer.Load(Path.Combine(hf, "vocab.json")).Encode("a diagram"));

        // The same vocabulary uncompressed, with Windows line ends, is accepted too.
        using var folder = new TempFolder();
        var plain = Path.Combine(folder.Path, "bpe.txt");
        File.WriteAllText(plain, string.Join("\r\n", ReadVocabLines().Take(48895)) + "\r\n");
        Assert.Equal(OpenAi.Encode("a diagram"), ClipTokenizer.Load(plain).Encode("a diagram"));
    }

    [Fact]
    public void MissingSourcesAreNamed()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-clip-vocab.txt.gz");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromBpeVocabulary(missing)).Message);
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => ClipTokenizer.Load(missing)).Message);
        Assert.Contains("no-such-folder", Assert.Throws<DirectoryNotFoundException>(() => ClipTokenizer.FromHuggingFaceFolder("/tmp/no-such-folder")).Message);

        using var folder = new TempFolder();
        File.WriteAllText(Path.Combine(folder.Path, "vocab.json"), "{}");
        var e = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromHuggingFaceFolder(folder.Path));
        Assert.Contains("merges.txt", e.Message);
    }

    [Fact]
    public void FilesThatAreNotAVocabularyAreNamed()
    {
        using var folder = new TempFolder();

        var binary = folder.Write("weights.bin", [0x80, 0x02, 0xFF, 0xFE, 0x00, 0x10, 0xC3, 0x28]);
        AssertInvalid(binary, () => ClipTokenizer.FromBpeVocabulary(binary));

        var damagedGzip = folder.Write("damaged.txt.gz", [0x1F, 0x8B, 0x08, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05]);
        AssertInvalid(damagedGzip, () => ClipTokenizer.FromBpeVocabulary(damagedGzip));

        var gzippedBinary = folder.Write("binary.gz", Gzip([0xFF, 0xFE, 0xFD, 0x0A, 0xC0, 0xAF]));
        AssertInvalid(gzippedBinary, () => ClipTokenizer.FromBpeVocabulary(gzippedBinary));

        var shortFile = folder.Write("short.txt.gz", Gzip(Encoding.UTF8.GetBytes(string.Join('\n', ReadVocabLines().Take(11)))));
        var e = AssertInvalid(shortFile, () => ClipTokenizer.FromBpeVocabulary(shortFile));
        Assert.Contains("48894", e.Message);

        var badLine = folder.Write("bad-line.txt", Encoding.UTF8.GetBytes(string.Join('\n', ReadVocabLines().Take(5)) + "\na b c\n"));
        Assert.Contains("line 6", AssertInvalid(badLine, () => ClipTokenizer.FromBpeVocabulary(badLine)).Message);

        // A merge of a token that no byte symbol or merge makes.
        var lines = ReadVocabLines().Take(48895).ToArray();
        lines[100] = "qqqz zzzq</w>";
        var unknownToken = folder.Write("unknown-token.txt", Encoding.UTF8.GetBytes(string.Join('\n', lines)));
        Assert.Contains("qqqz", AssertInvalid(unknownToken, () => ClipTokenizer.FromBpeVocabulary(unknownToken)).Message);

        var hf = folder.Sub("hf");
        File.WriteAllText(Path.Combine(hf, "vocab.json"), "<html>not json</html>");
        File.Copy(Path.Combine(Fixtures.ReferencePath("vit", "hf"), "merges.txt"), Path.Combine(hf, "merges.txt"));
        AssertInvalid(Path.Combine(hf, "vocab.json"), () => ClipTokenizer.FromHuggingFaceFolder(hf));

        var noSpecials = folder.Sub("no-specials");
        File.WriteAllText(Path.Combine(noSpecials, "vocab.json"), """{"a": 0, "b": 1}""");
        File.WriteAllText(Path.Combine(noSpecials, "merges.txt"), "#version: 0.2\n");
        Assert.Contains("<|startoftext|>", AssertInvalid(noSpecials, () => ClipTokenizer.FromHuggingFaceFolder(noSpecials)).Message);

        var sameIds = folder.Sub("same-ids");
        File.WriteAllText(Path.Combine(sameIds, "vocab.json"), """{"a": 0, "b": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}""");
        File.WriteAllText(Path.Combine(sameIds, "merges.txt"), "#version: 0.2\n");
        AssertInvalid(sameIds, () => ClipTokenizer.FromHuggingFaceFolder(sameIds));
    }

    private static InvalidDataException AssertInvalid(string path, Func<object> load)
    {
        var e = Assert.Throws<InvalidDataException>(load);
        Assert.Contains(path, e.Message);
        return e;
    }

    private static IEnumerable<string> ReadVocabLines()
    {
        using var reader = new StreamReader(new GZipStream(File.OpenRead(Fixtures.Vocab), CompressionMode.Decompress));
        while (reader.ReadLine() is { } line) yield return line;
    }

    private static byte[] Gzip(byte[] content)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest)) gzip.Write(content);
        return buffer.ToArray();
    }
}

/// <summary>A temporary folder removed after the test.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("clip-text-tests-").FullName;

    public string Write(string name, byte[] content)
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllBytes(file, content);
        return file;
    }

    public string Sub(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
