using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Clip.MLNet.Text;

/// <summary>
/// Splits cleaned text into CLIP's words, as OpenAI's pattern does with Python's <c>regex</c> module:
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (case-insensitive), every match one word, unmatched characters dropped.
/// </summary>
/// <remarks>
/// Written by hand rather than as a <see cref="RegexPreTokenizer"/> because .NET's regular expressions classify
/// UTF-16 code units: a letter or digit outside the BMP (CJK extension B, mathematical alphanumerics such as
/// "𝐇𝐞𝐥𝐥𝐨", Adlam, Osage ...) is two surrogates to .NET, which fall in the punctuation class, while Python sees
/// one letter. Here every code point is classified whole. Two more details of the Python pattern are kept: under
/// IGNORECASE 's' also matches 'ſ' (U+017F), and U+0345 (combining ypogegrammeni) matches no alternative
/// (it is not a letter, yet case-folds to one, which excludes it from the negated class), so it is dropped.
/// </remarks>
internal sealed class ClipPreTokenizer : PreTokenizer
{
    public static readonly ClipPreTokenizer Instance = new();

    private static readonly string[] SpecialTokens = [ClipBpeVocabulary.StartOfTextToken, ClipBpeVocabulary.EndOfTextToken];
    private static readonly string[] Contractions = ["s", "t", "re", "ve", "m", "ll", "d"];

    private enum CharClass { Letter, Number, Space, Other, Dropped }

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text ?? "");

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

    /// <summary>The words of <paramref name="text"/> as (offset, length) in UTF-16 units.</summary>
    public static List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
    {
        var words = new List<(int, int)>(text.Length / 4 + 1);
        int i = 0;
        while (i < text.Length)
        {
            int matched = MatchSpecialOrContraction(text, i);
            if (matched > 0)
            {
                words.Add((i, matched));
                i += matched;
                continue;
            }
            var (cls, length) = Classify(text, i);
            switch (cls)
            {
                case CharClass.Number:
                    words.Add((i, length));
                    i += length;
                    break;
                case CharClass.Letter:
                case CharClass.Other:
                    int end = i + length;
                    while (end < text.Length)
                    {
                        var (next, nextLength) = Classify(text, end);
                        if (next != cls) break;
                        end += nextLength;
                    }
                    words.Add((i, end - i));
                    i = end;
                    break;
                default:
                    i += length;
                    break;
            }
        }
        return words;
    }

    private static int MatchSpecialOrContraction(ReadOnlySpan<char> text, int start)
    {
        char first = text[start];
        if (first == '<')
        {
            foreach (var special in SpecialTokens)
                if (MatchesIgnoringCase(text[start..], special)) return special.Length;
        }
        else if (first == '\'')
        {
            foreach (var ending in Contractions)
                if (MatchesIgnoringCase(text[(start + 1)..], ending)) return 1 + ending.Length;
        }
        return 0;
    }

    /// <summary>Whether <paramref name="text"/> starts with <paramref name="pattern"/> (lower-case ASCII) under the regex module's simple case folding.</summary>
    private static bool MatchesIgnoringCase(ReadOnlySpan<char> text, string pattern)
    {
        if (text.Length < pattern.Length) return false;
        for (int k = 0; k < pattern.Length; k++)
        {
            char c = text[k], p = pattern[k];
            if (c == p || (char.IsAsciiLetter(c) && (c | 0x20) == p)) continue;
            if (p == 's' && c == '\u017F') continue; // LATIN SMALL LETTER LONG S folds to 's'
            return false;
        }
        return true;
    }

    private static (CharClass Class, int Length) Classify(ReadOnlySpan<char> text, int index)
    {
        if (Rune.DecodeFromUtf16(text[index..], out var rune, out int length) != System.Buffers.OperationStatus.Done)
            return (CharClass.Other, 1); // an unpaired surrogate: not a letter, number or space
        if (rune.Value == 0x345) return (CharClass.Dropped, length);
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return (CharClass.Letter, length);
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return (CharClass.Number, length);
        }
        // \s in the regex module is Unicode's White_Space, which is char.IsWhiteSpace (all of it in the BMP).
        return length == 1 && char.IsWhiteSpace(text[index]) ? (CharClass.Space, 1) : (CharClass.Other, length);
    }
}
