using static Clip.MLNet.Tests.Text.TokenizerFixtures;

namespace Clip.MLNet.Tests.Text;

/// <summary>
/// Consequences of CLIP's algorithm, reasoned from it rather than copied from the reference: the word pattern
/// (<c>'s|'t|...|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>), BPE within each word with <c>&lt;/w&gt;</c> on its last
/// symbol, and the cleaning before. Each would fail if the rule it names were broken.
/// </summary>
public class TokenizationRulesTests
{
    private static IReadOnlyList<int> Bpe(string text) => OpenAi.EncodeBpe(text);

    private static int[] Words(params string[] words) => words.SelectMany(w => Bpe(w)).ToArray();

    /// <summary>The text BPE-encoded as a single word (cleaned, but not split): what a wrong split would give.</summary>
    private static IReadOnlyList<int> OneWord(string text) => OpenAi.BpeTokenizer.EncodeToIds(text, considerPreTokenization: false);

    [Fact]
    public void NumbersAreOneWordPerDigit()
    {
        Assert.Equal(new[] { Id("2</w>"), Id("0</w>"), Id("2</w>"), Id("4</w>") }, Bpe("2024"));
        // A digit also ends a letter run: "mp3" is the words "mp" and "3", not one word "mp3".
        Assert.Equal(Words("mp", "3"), Bpe("mp3"));
        Assert.NotEqual(Words("mp", "3"), OneWord("mp3"));
        // Other numbers are single characters too: vulgar fractions, superscripts, Arabic-Indic digits.
        Assert.Equal(Words("½", "²"), Bpe("½²"));
        Assert.Equal(Words("٣", "٤"), Bpe("٣٤"));
    }

    [Fact]
    public void ContractionsSplitOffAfterAWord()
    {
        Assert.Equal(new[] { Id("it</w>"), Id("'s</w>") }, Bpe("it's"));
        Assert.Equal(new[] { Id("we</w>"), Id("'ll</w>") }, Bpe("we'll"));
        Assert.Equal(new[] { Id("they</w>"), Id("'re</w>") }, Bpe("They're"));
        // After punctuation the apostrophe belongs to the punctuation run, and 's' is a word of its own.
        Assert.Equal(Words("!!'", "s"), Bpe("!!'s"));
        Assert.NotEqual(Words("!!", "'s"), Bpe("!!'s"));
        // An apostrophe not followed by a contraction is punctuation.
        Assert.Equal(Words("o", "'", "neil"), Bpe("o'neil"));
    }

    [Fact]
    public void SpacesDoNotMatterBetweenDifferentClasses()
    {
        // Letters, digits and punctuation are separate words whether or not spaces separate them.
        Assert.Equal(Bpe("hello , world !"), Bpe("hello,world!"));
        Assert.Equal(Bpe("a 1 b"), Bpe("a1b"));
        // Within one class they do: "ab" is one word, "a b" two.
        Assert.NotEqual(Bpe("a b"), Bpe("ab"));
    }

    [Fact]
    public void PunctuationRunsAreOneWord()
    {
        Assert.Single(Bpe("!!!"));
        Assert.NotEqual(Words("!", "!", "!"), Bpe("!!!"));
    }

    [Fact]
    public void TextIsLowerCasedIncludingOtherScripts()
    {
        Assert.Equal(Bpe("hello world"), Bpe("HELLO World"));
        Assert.Equal(Bpe("привет мир"), Bpe("ПРИВЕТ Мир"));
        Assert.Equal(Bpe("ωμέγα"), Bpe("ΩΜΈΓΑ"));
    }

    [Fact]
    public void LettersOfOtherScriptsAreWords()
    {
        // CJK and kana are letters (Lo), so a run of them is one word: its BPE differs from per-character words.
        Assert.NotEqual(Words("東", "京"), Bpe("東京"));
        // Devanagari vowel signs are marks (Mc/Mn), not letters: they split a word like punctuation does.
        Assert.Equal(Words("नमस", "्", "त", "े"), Bpe("नमस्ते"));
    }

    [Fact]
    public void LettersAndDigitsOutsideTheBmpAreClassifiedWhole()
    {
        // "𝐇𝐞𝐥𝐥𝐨" (mathematical bold) is letters: the '!' after it is a separate word. A UTF-16 regex would see
        // surrogates, put them in the punctuation class and make "𝐇𝐞𝐥𝐥𝐨!" one word.
        Assert.Equal(Words("𝐇𝐞𝐥𝐥𝐨", "!"), Bpe("𝐇𝐞𝐥𝐥𝐨!"));
        Assert.NotEqual(Words("𝐇𝐞𝐥𝐥𝐨", "!"), OneWord("𝐇𝐞𝐥𝐥𝐨!"));
        // Mathematical digits are numbers: one word each.
        Assert.Equal(Words("𝟏", "𝟐"), Bpe("𝟏𝟐"));
        // CJK extension B is letters: it joins the Latin letter after it in one word.
        Assert.NotEqual(Words("𠀀", "a"), Bpe("𠀀a"));
    }

    [Fact]
    public void EmojiAreBytesInPunctuationRuns()
    {
        // An emoji is not a letter or number: adjacent emoji form one punctuation-class word.
        Assert.NotEqual(Words("🐱", "🐶"), Bpe("🐱🐶"));
        Assert.Equal(Words("🐱", "🐶"), Bpe("🐱 🐶"));
        // Byte-level BPE loses nothing: decoding gives the emoji back.
        Assert.Equal("🐱 🐶 ", OpenAi.Decode(Bpe("🐱 🐶")));
        // A zero-width joiner sequence stays one word (ZWJ is a format character, not whitespace).
        Assert.Equal("👨‍👩‍👧 ", OpenAi.Decode(Bpe("👨‍👩‍👧")));
    }

    [Fact]
    public void SpecialTokenTextIsASpecialTokenOnlyWhereAWordStarts()
    {
        Assert.Equal(new[] { OpenAi.EndOfText }, Bpe("<|endoftext|>"));
        Assert.Equal(new[] { Id("x</w>"), OpenAi.StartOfText }, Bpe("x<|startoftext|>"));
        // After punctuation, '<|' joins that run and the name becomes a plain word.
        Assert.DoesNotContain(OpenAi.EndOfText, Bpe("!<|endoftext|>"));
        // Lower-casing comes first, so upper-case spellings are special too.
        Assert.Equal(new[] { OpenAi.EndOfText }, Bpe("<|ENDOFTEXT|>"));
    }

    [Fact]
    public void CombiningYpogegrammeniIsDropped()
    {
        // U+0345 is a mark that case-folds to a letter: in the IGNORECASE pattern it matches no alternative, so
        // findall skips it. It separates words like a space, and nothing of it is encoded.
        Assert.Equal(Bpe("a b"), Bpe("a\u0345b"));
        Assert.Equal(Words("!", "!"), Bpe("!\u0345!"));
    }

    [Fact]
    public void FullWidthAsciiIsAscii()
    {
        for (char c = '\uFF01'; c <= '\uFF5E'; c++)
        {
            char ascii = (char)(c - 0xFEE0);
            Assert.True(Bpe($"x{ascii}y").SequenceEqual(Bpe($"x{c}y")), $"U+{(int)c:X4} should tokenize as '{ascii}'");
        }
        Assert.Equal(Bpe("a b"), Bpe("a\u3000b"));
    }

    [Fact]
    public void CurlyQuotesAreStraight()
    {
        foreach (var single in "\u2018\u2019\u201A\u201B\u02BC")
            Assert.Equal(Bpe("don't 'x'"), Bpe($"don{single}t {single}x{single}"));
        foreach (var @double in "\u201C\u201D\u201E\u201F")
            Assert.Equal(Bpe("\"x\""), Bpe($"{@double}x{@double}"));
        // Guillemets and primes are not quotes to ftfy.
        Assert.NotEqual(Bpe("\"x\""), Bpe("«x»"));
    }

    [Fact]
    public void LatinLigaturesAreLetters()
    {
        Assert.Equal(Bpe("fluffiest office"), Bpe("ﬂuﬃeﬆ oﬀice"));
        Assert.Equal(Bpe("ijssel"), Bpe("Ĳssel"));
        Assert.Equal(Bpe("ljubljana"), Bpe("ǈubljana"));
        // Æ and œ are letters in their own right, which ftfy keeps.
        Assert.NotEqual(Bpe("aesop"), Bpe("æsop"));
    }

    [Fact]
    public void TextIsNfcNormalized()
    {
        Assert.Equal(Bpe("café"), Bpe("cafe\u0301"));
        Assert.Equal(Bpe("Å"), Bpe("A\u030A"));
        Assert.Equal(Bpe("가"), Bpe("\u1100\u1161"));
        // NFC, not NFKC: a superscript stays a superscript.
        Assert.NotEqual(Bpe("x2"), Bpe("x²"));
    }

    [Fact]
    public void ControlCharactersAreRemovedButWhitespaceIsKept()
    {
        Assert.Equal(Bpe("ab"), Bpe("a\u0000b"));
        Assert.Equal(Bpe("ab"), Bpe("a\u000Bb")); // ftfy removes the vertical tab instead of treating it as space
        Assert.Equal(Bpe("a b"), Bpe("a\u000Cb")); // the form feed is kept, and is whitespace
        Assert.Equal(Bpe("hello"), Bpe("\uFEFFhello"));
        Assert.Equal(Bpe("red"), Bpe("\u001B[31mred\u001B[0m"));
        // The zero-width space is a format character that ftfy keeps: punctuation to the pattern.
        Assert.NotEqual(Bpe("ab"), Bpe("a\u200Bb"));
    }

    [Fact]
    public void C1ControlsAreReadAsWindows1252()
    {
        Assert.Equal(Bpe("\"quoted\""), Bpe("\u0093quoted\u0094"));
        Assert.Equal(Bpe("5€"), Bpe("5\u0080"));
        // U+0085 is whitespace to Python, but ftfy reads it as an ellipsis before anything else sees it.
        Assert.Equal(Bpe("a…b"), Bpe("a\u0085b"));
    }

    [Fact]
    public void HtmlEntitiesAreDecoded()
    {
        Assert.Equal(Bpe("fish & chips"), Bpe("fish &amp; chips"));
        Assert.Equal(Bpe("fish & chips"), Bpe("fish &amp;amp;amp; chips")); // ftfy repeats until nothing changes
        Assert.Equal(Bpe("don't"), Bpe("don&#39;t"));
        Assert.Equal(Bpe("don't"), Bpe("don&#x27;t"));
        Assert.Equal(Bpe("a b"), Bpe("a&nbsp;b"));
        Assert.Equal(Bpe("fish & chips"), Bpe("fish &amp chips")); // Python decodes legacy names without ';'
    }

    [Fact]
    public void WhitespaceOfEveryKindSeparatesWords()
    {
        foreach (var space in "\t\n\r\u00A0\u1680\u2000\u2003\u200A\u2028\u2029\u202F\u205F\u3000")
            Assert.Equal(Bpe("a b"), Bpe($"{space}a{space}{space}b{space}"));
    }

    [Fact]
    public void UnpairedSurrogatesBecomeReplacementCharacters()
    {
        Assert.Equal(Bpe("a\uFFFDb"), Bpe("a\uD800b"));
        Assert.Equal(Bpe("\uFFFD"), Bpe("\uDC00"));
        Assert.Equal(Bpe("x\uFFFD"), Bpe("x\uD83D"));
        // A real pair is kept.
        Assert.Equal("😀 ", OpenAi.Decode(Bpe("\uD83D\uDE00")));
    }
}
