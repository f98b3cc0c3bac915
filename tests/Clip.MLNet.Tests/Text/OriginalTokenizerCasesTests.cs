namespace Clip.MLNet.Tests.Text;

/// <summary>
/// Texts that pin the subtle rules of the original tokenizer, beyond the shared fixture. The ids were computed
/// offline with OpenAI's clip/simple_tokenizer.py, ftfy 6.3.1 and the regex module (Python 3.11), from
/// bpe_simple_vocab_16e6.txt.gz; the comment on each row says which rule it exercises.
/// </summary>
public class OriginalTokenizerCasesTests
{
    public static TheoryData<string, int[]> Cases => new()
    {
        // ftfy decodes entities again and again while a line has no '<'; then html.unescape runs twice
        { "&amp;amp;amp;amp; &lt;b&gt;", new[] { 261, 283, 321, 285 } },
        // a line with '<' is HTML to ftfy: only the two html.unescape passes run, which leave '&amp;'
        { "<b>&amp;amp;amp;</b>", new[] { 283, 321, 29, 261, 6259, 26, 34308, 321, 285 } },
        // html.unescape reads references without ';', and the longest legacy name ('not')
        { "Tom &amp Jerry &notit; &#39s", new[] { 2435, 261, 9164, 126, 361, 585, 282, 568 } },
        // numeric references: Windows-1252 for C1 numbers; U+FFFD for 0, surrogates, out of range; nothing for controls
        { "&#150; &#x80; &#0; &#x110000; &#55296; &#11;", new[] { 1224, 6309, 39802, 39802, 39802 } },
        // ftfy's upper-cased entity names; HTML5's angle brackets
        { "&EACUTE;t&EACUTE; &NTILDE; &lang;x&rang;", new[] { 3459, 39694, 127, 365, 158, 253, 357, 343, 158, 253, 358 } },
        // entities ftfy decodes are then uncurled; after a '<' they are decoded later and stay curly
        { "&ldquo;quoted&rdquo; <i>&ldquo;kept&rdquo;</i>", new[] { 728, 506, 27706, 728, 507, 283, 328, 29, 728, 506, 7737, 728, 251, 34308, 328, 285 } },
        // C1 controls read as Windows-1252, then uncurled; U+0085 becomes an ellipsis, not a line break
        { "\u0093smart\u0094 \u0085 \u0080 \u0096", new[] { 257, 4115, 257, 959, 6309, 1224 } },
        // Latin ligatures and digraphs; 'ŉ' becomes an apostrophe and n
        { "\u0149 \u0133ssel \u01C5 \uFB05", new[] { 262, 333, 7337, 19373, 67, 129, 378, 129, 123, 339 } },
        // half-width katakana (voiced marks composed by NFC), full-width symbols, ideographic space
        { "\uFF76\uFF9E\uFF77\uFF9E \uFF8A\uFF9F\uFF9D \uFFE3 \uFF61 \uFFE5\u3000x", new[] { 3909, 105, 3909, 362, 2429, 239, 26875, 136, 482, 38000, 20199, 343 } },
        // the modifier-letter apostrophe is uncurled, so the contraction splits off
        { "\u02BCtis don\u02BCt", new[] { 713, 533, 847, 713 } },
        // Python's lower() applies Final_Sigma
        { "\u039F\u0394\u039F\u03A3 \u03A3\u0391 \u03A3 \u0391\u03A3. \u0391\u03A3'\u0392", new[] { 138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 365, 139, 481, 138, 109, 139, 480, 269, 138, 109, 139, 481, 262, 138, 366 } },
        // Python's lower() turns 'İ' into 'i' + U+0307
        { "\u0130stanbul", new[] { 328, 16384, 11231 } },
        // U+0345 matches no alternative of the pattern and is dropped
        { "a\u0345b !\u0345! \u1FBC", new[] { 320, 321, 256, 256, 157, 122, 367 } },
        // under IGNORECASE the contraction 's also matches 'ſ'
        { "x'\u017F y'\u017Ft", new[] { 343, 6, 129, 379, 344, 6, 129, 379, 339 } },
        // letters and digits outside the BMP are classified whole
        { "\U0001D407\U0001D41E\U0001D425\U0001D425\U0001D428 \U0001D7CF\U0001D7D0 \U00020000\U00020001a", new[] { 15889, 229, 15889, 252, 15889, 98, 15889, 98, 15889, 357, 6874, 253, 493, 6874, 253, 494, 172, 254, 222, 222, 172, 254, 222, 223, 320 } },
        // terminal escapes and control characters removed; form feed is whitespace; the zero-width space stays
        { "\u001B[31mred\u001B[0m \u000Bv\u000Cf \u001Cx\u007F\u200B\uFEFF\u2028y\u2029z", new[] { 736, 341, 325, 343, 9844, 344, 345 } },
        // special tokens are recognised only where a match starts
        { "<|startoftext|><|endoftext|>x <|\u017Ftartoftext|> !<|endoftext|>", new[] { 49406, 49407, 343, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 0, 27, 347, 40786, 4160, 91, 285 } },
        // emoji are punctuation-class runs, encoded as bytes
        { "\U0001F600\U0001F44D\U0001F3FD\U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F1EB\U0001F1F7", new[] { 12832, 4686, 8514, 25023, 26304, 964, 356, 16223 } },
        // 'ẞ' lower-cases to 'ß', not to 'ss'
        { "Stra\u00DFe STRASSE \u1E9E", new[] { 1894, 127, 253, 324, 1894, 8938, 127, 509 } },
        // NFC turns the angstrom sign into 'Å' and the ohm sign into 'Ω'
        { "\u00C5ngstr\u00F6m \u212B \u2126", new[] { 23176, 10352, 807, 7255, 332, 127, 354, 38065 } },
        // NFC composes Hangul jamo into the syllable
        { "\u1100\u1161\u11A8 \uAC01", new[] { 21122, 479, 21122, 479 } },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void IdsMatchTheOriginalTokenizer(string text, int[] expected)
    {
        Assert.Equal(expected, TokenizerFixtures.OpenAi.EncodeBpe(text));
        Assert.Equal(expected, TokenizerFixtures.HuggingFace.EncodeBpe(text));
    }
}
