using Clip.MLNet.Tests.Indexing;

namespace Clip.MLNet.Tests.Families;

/// <summary>
/// CLIPA's BERT WordPiece tokenizer with open_clip's HFTokenizer rule (strip_sep_token, context 32), on a small
/// vocab.txt written here; every expected id list is worked out by hand from BERT's rules (lower-case, strip
/// accents, split on punctuation, greedy longest-match WordPiece with ##, [UNK] for an uncoverable word), then
/// framed as transformers does ([CLS] pieces [SEP] [PAD]...; truncation keeps context - 2 pieces) and with
/// [SEP] turned into padding as open_clip does. Not checked against bert-base-uncased's real vocabulary.
/// </summary>
public class WordPieceTokenizerTests
{
    // The line number is the id.
    private static readonly string[] Vocabulary =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",   // 0..4
        "a", "photo", "of", "cafe", "dog",               // 5..9
        "##s", ",", "!", ".", "un",                      // 10..14
        "##believ", "##able", "the", "cat", "'",         // 15..19
        "s", "-", "x", "ray",                            // 20..23
    ];

    private static string WriteVocabulary(string folder)
    {
        var path = Path.Combine(folder, "vocab.txt");
        File.WriteAllText(path, string.Join('\n', Vocabulary) + "\n");
        return path;
    }

    private static string NewFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"clip-wordpiece-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    }

    private static int[] Row(int context, params int[] head) => [.. head, .. new int[context - head.Length]];

    public static TheoryData<string, int[]> Stripped => new()
    {
        // "a photo of dogs !": dogs = dog ##s; the [SEP] after "!" becomes 0.
        { "A photo of dogs!", Row(12, 2, 5, 6, 7, 9, 10, 12) },
        // Whitespace cleaned, lower-cased, accents stripped (É -> e), "," split off.
        { "  Café,\t CAFÉ ", Row(12, 2, 8, 11, 8) },
        // Greedy longest match: un ##believ ##able.
        { "Unbelievable.", Row(12, 2, 14, 15, 16, 13) },
        // A word the vocabulary cannot cover is one [UNK]; "'" and "-" are punctuation.
        { "the zebra cat's x-ray", Row(12, 2, 17, 1, 18, 19, 20, 22, 21, 23) },
        // Empty text: [CLS] then ([SEP] stripped) padding.
        { "", Row(12, 2) },
    };

    [Theory]
    [MemberData(nameof(Stripped))]
    public void IdsFollowBertAndOpenClipsStripSepRule(string text, int[] expected)
    {
        var folder = NewFolder();
        try
        {
            var tokenizer = ClipTokenizer.FromWordPiece(WriteVocabulary(folder), 12, stripSepToken: true);
            Assert.True(tokenizer.IsWordPiece);
            Assert.False(tokenizer.IsSentencePiece);
            Assert.Equal(expected, tokenizer.Encode(text));
            var buffer = new long[12];
            tokenizer.EncodeInto(text, buffer);
            Assert.Equal(expected.Select(i => (long)i), buffer);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void WithoutStripTheSepStaysAndTruncationKeepsContextMinusTwoPieces()
    {
        var folder = NewFolder();
        try
        {
            var path = WriteVocabulary(folder);
            var kept = ClipTokenizer.FromWordPiece(path, 12, stripSepToken: false);
            Assert.Equal(Row(12, 2, 5, 6, 7, 9, 10, 12, 3), kept.Encode("A photo of dogs!"));
            Assert.Equal(2, kept.StartOfText);
            Assert.Equal(3, kept.EndOfText);
            Assert.Equal(24, kept.VocabularySize);
            Assert.Equal([5, 6, 7, 9, 10, 12], kept.EncodeBpe("A photo of dogs!"));

            // 6 pieces into a context of 6: [CLS] + 4 pieces + [SEP] (cut inside "dogs", as transformers cuts tokens).
            var shortKept = ClipTokenizer.FromWordPiece(path, 6, stripSepToken: false);
            Assert.Equal([2, 5, 6, 7, 9, 3], shortKept.Encode("A photo of dogs!"));
            var shortStripped = ClipTokenizer.FromWordPiece(path, 6, stripSepToken: true);
            Assert.Equal([2, 5, 6, 7, 9, 0], shortStripped.Encode("A photo of dogs!"));
            var e = Assert.Throws<ClipTextTooLongException>(() => shortStripped.Encode("A photo of dogs!", truncate: false));
            Assert.Equal(8, e.TokenCount);

            Assert.Equal("##s", kept.IdToToken(10));
            Assert.Equal(8, kept.TokenToId("cafe"));
            Assert.Equal("a photo of dogs!", kept.Decode(kept.Encode("A photo of dogs!"), skipSpecialTokens: true));

            // A saved model carries the tokenizer: the metadata round trip gives the same ids.
            var restored = ClipTokenizer.FromMetadata(shortStripped.ToMetadata());
            Assert.True(restored.IsWordPiece);
            Assert.Equal(shortStripped.Encode("Café x-ray"), restored.Encode("Café x-ray"));
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void AVocabularyWithoutBertsSpecialTokensIsRefusedByName()
    {
        var folder = NewFolder();
        try
        {
            var path = Path.Combine(folder, "vocab.txt");
            File.WriteAllText(path, "[PAD]\n[UNK]\na\n");
            var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromWordPiece(path, 32, true));
            Assert.Contains(path, e.Message);
            Assert.Contains("[CLS]", e.Message);
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void ClipaFolderWithVocabTxtTokenizesTextAsReadyIds()
    {
        var folder = FamilyFixtures.CopyFolder("clipa");
        try
        {
            WriteVocabulary(folder);
            using var model = ClipModel.Load(folder);
            Assert.Null(model.MissingTokenizer);
            var tokenizer = Assert.IsType<ClipTokenizer>(model.Tokenizer);
            Assert.True(tokenizer.IsWordPiece);
            Assert.Equal(32, tokenizer.ContextLength);
            Assert.Equal(Row(32, 2, 5, 6, 7, 9, 10, 12), tokenizer.Encode("A photo of dogs!"));
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void ClipaFolderWithoutVocabTxtNamesTheMissingFile()
    {
        using var model = ClipModel.Load(FamilyFixtures.Folder("clipa"));
        Assert.Null(model.Tokenizer);
        Assert.Contains("bert-base-uncased", model.MissingTokenizer);
        Assert.Contains("vocab.txt", model.MissingTokenizer);
    }

    [Fact]
    public void ClipTokenizeModelFolderPrintsTheWordPieceIds()
    {
        var folder = FamilyFixtures.CopyFolder("clipa");
        try
        {
            WriteVocabulary(folder);
            var texts = Path.Combine(folder, "texts.txt");
            File.WriteAllText(texts, "A photo of dogs!\nUnbelievable.\n");
            var result = IndexCorpus.Cli(["tokenize", "--model", folder, "--texts", texts]);
            Assert.True(result.ExitCode == 0, result.StdErr);
            var lines = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, lines.Length);
            Assert.Equal("[" + string.Join(',', Row(32, 2, 5, 6, 7, 9, 10, 12)) + "]", lines[0]);
            Assert.Equal("[" + string.Join(',', Row(32, 2, 14, 15, 16, 13)) + "]", lines[1]);

            File.Delete(Path.Combine(folder, "vocab.txt"));
            var missing = IndexCorpus.Cli(["tokenize", "--model", folder, "--texts", texts]);
            Assert.NotEqual(0, missing.ExitCode);
            Assert.Contains("vocab.txt", missing.StdErr);
            Assert.Equal("", missing.StdOut);
        }
        finally { Directory.Delete(folder, true); }
    }
}
