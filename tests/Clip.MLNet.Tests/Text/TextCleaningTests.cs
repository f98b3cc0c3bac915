using Clip.MLNet.Text;

namespace Clip.MLNet.Tests.Text;

/// <summary>
/// The cleaning before BPE, checked as text: <c>whitespace_clean(html.unescape(html.unescape(ftfy.fix_text(t))).strip()).lower()</c>.
/// Expectations follow from ftfy 6's and CPython's documented rules.
/// </summary>
public class TextCleaningTests
{
    [Theory]
    // ftfy decodes complete entities repeatedly while the line has no '<'; html.unescape then runs twice more.
    [InlineData("&amp;amp;amp;amp;amp;", "&")]
    [InlineData("&lt;b&gt;", "<b>")]
    // A line with '<' is HTML to ftfy, which leaves its entities; the two html.unescape passes still run.
    [InlineData("<b>&amp;amp;amp;</b>", "<b>&amp;</b>")]
    // ... and every later line is HTML too, but earlier lines are not.
    [InlineData("&amp;amp;amp;\n<p>\n&amp;amp;amp;", "& <p> &amp;")]
    // html.unescape: legacy names without ';', the longest legacy prefix, numbers without ';'.
    [InlineData("Tom &amp Jerry", "tom & jerry")]
    [InlineData("&notit; &ampx", "¬it; &x")]
    [InlineData("&#39s &#x41", "'s a")]
    // Numeric rules: C1 numbers as Windows-1252, 0 / surrogates / too large as U+FFFD, controls removed.
    [InlineData("&#150;&#x80;&#153;", "–€™")]
    [InlineData("a&#0;b&#xD800;c&#x110000;d&#1;e", "a\uFFFDb\uFFFDc\uFFFDd" + "e")]
    // Unknown names stay as text.
    [InlineData("&nosuchentity; &", "&nosuchentity; &")]
    // ftfy's upper-cased names (value upper-cased, ß to SS), HTML5's values where they differ from HTML 4.
    [InlineData("&EACUTE;T&EACUTE; &SZLIG;", "été ss")]
    [InlineData("&lang;x&rang;", "⟨x⟩")]
    // A decoded curly quote is uncurled by ftfy in the same pass.
    [InlineData("&ldquo;hi&rdquo;", "\"hi\"")]
    public void HtmlIsDecodedAsFtfyAndPythonDo(string text, string expected) =>
        Assert.Equal(expected, ClipTextCleaner.Clean(text));

    [Theory]
    [InlineData("\u0130stanbul", "i\u0307stanbul")] // full case mapping of 'İ'
    [InlineData("ΟΔΟΣ", "οδος")] // Final_Sigma at the end of a word
    [InlineData("ΟΔΟΣ.", "οδος.")] // ... also before case-ignorable punctuation
    [InlineData("ΣΑ Σ", "σα σ")] // not final: a letter follows, or none precedes
    [InlineData("ΑΣ'Β", "ασ'β")] // the apostrophe is case-ignorable, so a letter follows
    [InlineData("STRASSE Straße ẞ", "strasse straße ß")]
    public void LowerCasingIsPythons(string text, string expected) =>
        Assert.Equal(expected, ClipTextCleaner.Clean(text));

    [Theory]
    [InlineData("  a \t\n b  ", "a b")]
    [InlineData("\u00A0\u2003a\u3000", "a")]
    [InlineData("a\u0085b", "a…b")] // U+0085 is read as Windows-1252 before it could be a line break
    [InlineData("a\u000Bb\u000Cc", "ab c")] // VT removed, FF kept as whitespace
    [InlineData("", "")]
    [InlineData(" \r\n\t ", "")]
    public void WhitespaceIsCollapsedAndStripped(string text, string expected) =>
        Assert.Equal(expected, ClipTextCleaner.Clean(text));

    [Theory]
    [InlineData("ｶﾞｷﾞ", "ガギ")] // half-width katakana to full width, voiced marks composed by NFC
    [InlineData("ＣＬＩＰ　１２３", "clip 123")]
    [InlineData("￥５", "¥5")]
    [InlineData("ŉ ﬅ", "'n ſt")] // 'ŉ' is ʼn, and ʼ is uncurled in the same pass
    [InlineData("Ǆ", "dž")]
    [InlineData("\u0091a\u0092 \u0084b\u0093", "'a' \"b\"")] // C1 quotes via Windows-1252, then uncurled
    [InlineData("\u009D", "\u009D")] // bytes that Windows-1252 leaves undefined stay
    [InlineData("\u001B[1;31mred\u001B[0m", "red")]
    [InlineData("\u206Aa\uFFF9b\u007F", "ab")]
    public void FtfyFixesTheUsualCharacterClasses(string text, string expected) =>
        Assert.Equal(expected, ClipTextCleaner.Clean(text));

    [Fact]
    public void PlainAsciiTakesTheSameRouteAsEverythingElse()
    {
        // The fast path for printable ASCII must agree with the full path; "é" forces the full path.
        foreach (var text in new[] { "A Photo  of\tthe CAT.", "x;y <z>", "it's 3.14" })
            Assert.Equal(ClipTextCleaner.Clean(text + " é")[..^2], ClipTextCleaner.Clean(text));
    }
}
