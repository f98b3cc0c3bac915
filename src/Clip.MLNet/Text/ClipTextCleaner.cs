using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace Clip.MLNet.Text;

/// <summary>
/// The text cleaning of OpenAI's tokenizer, before BPE:
/// <c>whitespace_clean(html.unescape(html.unescape(ftfy.fix_text(text))).strip()).lower()</c>.
/// Microsoft.ML.Tokenizers has no equivalent (its normalizers lower-case or apply one Unicode form), so it is
/// written here, following ftfy 6 and CPython.
/// </summary>
/// <remarks>
/// ftfy's <c>fix_text</c> is reproduced except for its mojibake repair (<c>fix_encoding</c>: re-decoding text
/// that was decoded with the wrong codec, such as "cafÃ©"), which rests on ftfy's statistical heuristics.
/// Everything else it does is here, in its order and repeated until nothing changes, as ftfy does: HTML entities
/// (only where the line has no '&lt;'), C1 controls read as Windows-1252, Latin ligatures, full- and half-width
/// forms, curly quotes, line breaks, terminal escapes, control characters, NFC.
/// </remarks>
internal static class ClipTextCleaner
{
    /// <summary>The cleaned, lower-cased text that CLIP's pre-tokenizer splits.</summary>
    public static string Clean(string text)
    {
        if (IsPlainAscii(text))
        {
            // Printable ASCII with tabs and line breaks and no '&': every ftfy fix and html.unescape leave it as is.
            return CollapseWhitespace(text).ToLowerInvariant();
        }
        text = ReplaceLoneSurrogates(text);
        text = FixText(text);
        text = PythonHtml.Unescape(PythonHtml.Unescape(text));
        return PythonLower(CollapseWhitespace(text));
    }

    /// <summary>
    /// open_clip's text cleaning for Hugging Face tokenizers (<c>tokenizer_kwargs.clean</c>): <c>canonicalize</c>
    /// (basic clean, '_' to space, ASCII punctuation removed, lower case, whitespace collapsed: SigLIP),
    /// <c>lower</c> (basic clean, whitespace collapsed, lower case), <c>whitespace</c> (basic clean, whitespace
    /// collapsed). Basic clean is ftfy's fixes and HTML unescaping twice, as for CLIP.
    /// </summary>
    /// <exception cref="ArgumentException">The rule is none of these.</exception>
    public static string CleanAs(string text, string? rule)
    {
        text = ReplaceLoneSurrogates(text);
        text = FixText(text);
        text = PythonHtml.Unescape(PythonHtml.Unescape(text));
        switch (rule ?? "whitespace")
        {
            case "canonicalize":
                var sb = new StringBuilder(text.Length);
                foreach (char c in text)
                {
                    if (c == '_') sb.Append(' ');
                    else if (c < 128 && char.IsAsciiLetterOrDigit(c) == false && c > ' ' && c != 127) continue;   // string.punctuation
                    else sb.Append(c);
                }
                return CollapseWhitespace(PythonLower(sb.ToString()));
            case "lower":
                return PythonLower(CollapseWhitespace(text));
            case "whitespace":
                return CollapseWhitespace(text);
            default:
                throw new ArgumentException($"unknown text cleaning rule '{rule}' (canonicalize, lower or whitespace)", nameof(rule));
        }
    }

    private static bool IsPlainAscii(string text)
    {
        foreach (char c in text)
            if (c is not (>= ' ' and <= '~' or '\t' or '\n' or '\r') || c == '&') return false;
        return true;
    }

    /// <summary>
    /// A Python string may hold unpaired surrogates; ftfy turns them into U+FFFD (<c>fix_surrogates</c>). Doing it
    /// first is equivalent (no earlier fix touches them) and lets .NET's normalization run (it rejects them).
    /// </summary>
    internal static string ReplaceLoneSurrogates(string text)
    {
        int bad = FirstLoneSurrogate(text);
        if (bad < 0) return text;
        var chars = text.ToCharArray();
        for (int i = bad; i < chars.Length; i++)
        {
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) i++;
            else if (char.IsSurrogate(chars[i])) chars[i] = '\uFFFD';
        }
        return new string(chars);
    }

    private static int FirstLoneSurrogate(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            return i;
        }
        return -1;
    }

    /// <summary>ftfy's <c>fix_text</c> with its default configuration, less <c>fix_encoding</c>.</summary>
    internal static string FixText(string text)
    {
        // ftfy fixes line by line (each segment ends after a '\n'). HTML entities are decoded until a line
        // holds a '<': from that line on the text is taken to be HTML, whose entities are for the reader.
        var output = new StringBuilder(text.Length);
        bool unescapeHtml = true;
        int position = 0;
        while (position < text.Length)
        {
            int lineEnd = text.IndexOf('\n', position);
            lineEnd = lineEnd < 0 ? text.Length : lineEnd + 1;
            string segment = text.Substring(position, lineEnd - position);
            if (unescapeHtml && segment.Contains('<')) unescapeHtml = false;
            output.Append(FixSegment(segment, unescapeHtml));
            position = lineEnd;
        }
        return output.ToString();
    }

    private static string FixSegment(string text, bool unescapeHtml)
    {
        while (true)
        {
            string original = text;
            if (unescapeHtml) text = UnescapeHtmlEntities(text);
            text = TranslateCharacters(text);
            text = FixLineBreaks(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlCharacters(text);
            if (!text.IsNormalized(NormalizationForm.FormC)) text = text.Normalize(NormalizationForm.FormC);
            if (text == original) return text;
        }
    }

    /// <summary>
    /// ftfy's <c>unescape_html</c>: only complete references <c>&amp;#?[0-9A-Za-z]{1,24};</c>; named ones from
    /// HTML5's table or an upper-cased HTML5 name (<c>&amp;EACUTE;</c> is "É"), numeric ones when Python decodes
    /// the whole reference.
    /// </summary>
    internal static string UnescapeHtmlEntities(string text)
    {
        int amp = text.IndexOf('&');
        if (amp < 0) return text;
        var output = new StringBuilder(text.Length);
        output.Append(text, 0, amp);
        int i = amp;
        while (i < text.Length)
        {
            char c = text[i];
            if (c != '&')
            {
                output.Append(c);
                i++;
                continue;
            }
            int start = i + 1;
            bool numeric = start < text.Length && text[start] == '#';
            int nameStart = numeric ? start + 1 : start;
            int end = nameStart;
            while (end < text.Length && end - nameStart <= 24 && char.IsAsciiLetterOrDigit(text[end])) end++;
            int length = end - nameStart;
            if (length is < 1 or > 24 || end >= text.Length || text[end] != ';')
            {
                output.Append('&');
                i++;
                continue;
            }
            string reference = text.Substring(i, end + 1 - i);
            string? replacement = numeric ? DecodeWholeNumericReference(reference) : DecodeFtfyNamedEntity(text.Substring(nameStart, length));
            output.Append(replacement ?? reference);
            i = end + 1;
        }
        return output.ToString();
    }

    private static string? DecodeWholeNumericReference(string reference)
    {
        var decoded = PythonHtml.Unescape(reference);
        // A partial decode ("&#12a;" read as "&#12") keeps its ';' and is refused, as in ftfy.
        return decoded.Contains(';') ? null : decoded;
    }

    private static string? DecodeFtfyNamedEntity(string name)
    {
        if (PythonHtml.TryGetNamedEntity(name, out var value)) return value;
        // ftfy adds, for every all-lower-case HTML5 name, its upper-cased form (value upper-cased too), unless
        // Python's html.unescape already reads that form as something else.
        if (name != name.ToUpperInvariant()) return null;
        var lower = name.ToLowerInvariant();
        if (lower == name || !PythonHtml.TryGetNamedEntity(lower, out var lowerValue)) return null;
        var probe = new StringBuilder();
        var reference = "&" + name + ";";
        PythonHtml.TryDecodeReference(reference, 0, probe);
        if (probe.ToString() != reference) return null;
        return PythonUpper(lowerValue);
    }

    // The per-character fixes, composed in ftfy's order: fix_c1_controls, fix_latin_ligatures,
    // fix_character_width, uncurl_quotes.
    private static readonly FrozenDictionary<char, string> CharacterFixes = BuildCharacterFixes();

    private static FrozenDictionary<char, string> BuildCharacterFixes()
    {
        var ligatures = new Dictionary<char, string>
        {
            ['\u0132'] = "IJ", ['\u0133'] = "ij", ['\u0149'] = "\u02BCn",
            ['\u01F1'] = "DZ", ['\u01F2'] = "Dz", ['\u01F3'] = "dz",
            ['\u01C4'] = "D\u017D", ['\u01C5'] = "D\u017E", ['\u01C6'] = "d\u017E",
            ['\u01C7'] = "LJ", ['\u01C8'] = "Lj", ['\u01C9'] = "lj",
            ['\u01CA'] = "NJ", ['\u01CB'] = "Nj", ['\u01CC'] = "nj",
            ['\uFB00'] = "ff", ['\uFB01'] = "fi", ['\uFB02'] = "fl", ['\uFB03'] = "ffi", ['\uFB04'] = "ffl",
            ['\uFB05'] = "\u017Ft", ['\uFB06'] = "st",
        };
        // ftfy's width map: the ideographic space, and every character of U+FF01-U+FFEF that NFKC changes.
        var width = new Dictionary<char, string> { ['\u3000'] = " " };
        for (char c = '\uFF01'; c < '\uFFF0'; c++)
        {
            var s = c.ToString();
            var nfkc = s.Normalize(NormalizationForm.FormKC);
            if (nfkc != s) width[c] = nfkc;
        }
        static string Quotes(char c) => c switch
        {
            '\u02BC' or >= '\u2018' and <= '\u201B' => "'",
            >= '\u201C' and <= '\u201F' => "\"",
            _ => c.ToString(),
        };
        static string Map(string s, Func<char, string> f) => string.Concat(s.Select(f));

        var fixes = new Dictionary<char, string>();
        var candidates = Enumerable.Range(0x80, 0x20).Select(i => (char)i)
            .Concat(ligatures.Keys).Concat(width.Keys).Concat("\u02BC\u2018\u2019\u201A\u201B\u201C\u201D\u201E\u201F");
        foreach (char c in candidates.Distinct())
        {
            string s = c is >= '\u0080' and <= '\u009F' ? PythonHtml.Windows1252ForC1(c).ToString() : c.ToString();
            s = Map(s, ch => ligatures.TryGetValue(ch, out var r) ? r : ch.ToString());
            s = Map(s, ch => width.TryGetValue(ch, out var r) ? r : ch.ToString());
            s = Map(s, Quotes);
            if (s != c.ToString()) fixes[c] = s;
        }
        return fixes.ToFrozenDictionary();
    }

    private static string TranslateCharacters(string text)
    {
        int first = 0;
        while (first < text.Length && (text[first] < 0x80 || !CharacterFixes.ContainsKey(text[first]))) first++;
        if (first == text.Length) return text;
        var output = new StringBuilder(text.Length + 8);
        output.Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if (c >= 0x80 && CharacterFixes.TryGetValue(c, out var replacement)) output.Append(replacement);
            else output.Append(c);
        }
        return output.ToString();
    }

    private static string FixLineBreaks(string text)
    {
        if (text.AsSpan().IndexOfAny("\r\u2028\u2029\u0085") < 0) return text;
        return text.Replace("\r\n", "\n").Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');
    }

    /// <summary>ftfy's <c>remove_terminal_escapes</c>: <c>ESC [ (digits or ;)* letter</c>, where a digit is any Unicode decimal digit, as Python's <c>\d</c>.</summary>
    private static string RemoveTerminalEscapes(string text)
    {
        int esc = text.IndexOf('\u001B');
        if (esc < 0) return text;
        var output = new StringBuilder(text.Length);
        output.Append(text, 0, esc);
        int i = esc;
        while (i < text.Length)
        {
            if (text[i] == '\u001B' && i + 1 < text.Length && text[i + 1] == '[')
            {
                int j = i + 2;
                while (j < text.Length)
                {
                    if (text[j] == ';') { j++; continue; }
                    if (Rune.TryGetRuneAt(text, j, out var rune) && Rune.IsDigit(rune)) { j += rune.Utf16SequenceLength; continue; }
                    break;
                }
                if (j < text.Length && char.IsAsciiLetter(text[j]))
                {
                    i = j + 1;
                    continue;
                }
            }
            output.Append(text[i]);
            i++;
        }
        return output.ToString();
    }

    /// <summary>ftfy's <c>remove_control_chars</c>: C0 controls but tab, line feed, form feed and carriage return; DEL; U+206A-U+206F; the BOM; U+FFF9-U+FFFC.</summary>
    private static bool IsRemovedControl(char c) =>
        c is <= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or >= '\u206A' and <= '\u206F' or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';

    private static string RemoveControlCharacters(string text)
    {
        int first = 0;
        while (first < text.Length && !IsRemovedControl(text[first])) first++;
        if (first == text.Length) return text;
        var output = new StringBuilder(text.Length);
        output.Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
            if (!IsRemovedControl(text[i])) output.Append(text[i]);
        return output.ToString();
    }

    /// <summary>
    /// <c>re.sub(r'\s+', ' ', text).strip()</c> with the <c>regex</c> module's <c>\s</c>, which is Unicode's
    /// White_Space: exactly <see cref="char.IsWhiteSpace(char)"/> (no White_Space character lies outside the BMP).
    /// </summary>
    internal static string CollapseWhitespace(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && char.IsWhiteSpace(text[start])) start++;
        while (end > start && char.IsWhiteSpace(text[end - 1])) end--;
        var span = text.AsSpan(start, end - start);
        bool clean = true;
        for (int i = 0; i < span.Length && clean; i++)
            if (char.IsWhiteSpace(span[i]) && (span[i] != ' ' || (i + 1 < span.Length && char.IsWhiteSpace(span[i + 1])))) clean = false;
        if (clean) return span.Length == text.Length ? text : span.ToString();

        var output = new StringBuilder(span.Length);
        bool inSpace = false;
        foreach (char c in span)
        {
            if (char.IsWhiteSpace(c))
            {
                if (!inSpace) output.Append(' ');
                inSpace = true;
            }
            else
            {
                output.Append(c);
                inSpace = false;
            }
        }
        return output.ToString();
    }

    /// <summary>
    /// Python's <c>str.lower()</c>. .NET's invariant lower-casing agrees with it on every code point but two:
    /// 'İ' (U+0130) becomes "i̇" (i + U+0307) in Python, and 'Σ' becomes 'ς' at the end of a word (Unicode's
    /// Final_Sigma rule, which Python applies).
    /// </summary>
    internal static string PythonLower(string text)
    {
        if (text.AsSpan().IndexOfAny('\u0130', '\u03A3') < 0) return text.ToLowerInvariant();
        var output = new StringBuilder(text.Length + 4);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\u0130') output.Append("i\u0307");
            else if (c == '\u03A3') output.Append(IsFinalSigma(text, i) ? '\u03C2' : '\u03C3');
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                output.Append(text.AsSpan(i, 2).ToString().ToLowerInvariant());
                i++;
            }
            else output.Append(char.ToLowerInvariant(c));
        }
        return output.ToString();
    }

    /// <summary>Unicode's Final_Sigma: a cased letter before (skipping case-ignorable characters), none after.</summary>
    private static bool IsFinalSigma(string text, int index)
    {
        int j = index;
        while (j > 0)
        {
            Rune before;
            if (char.IsLowSurrogate(text[j - 1]) && j >= 2 && char.IsHighSurrogate(text[j - 2])) before = new Rune(text[j - 2], text[j - 1]);
            else if (!Rune.TryCreate(text[j - 1], out before)) before = Rune.ReplacementChar;
            if (!IsCaseIgnorable(before))
            {
                if (!IsCased(before)) return false;
                break;
            }
            j -= before.Utf16SequenceLength;
        }
        if (j == 0) return false;
        int k = index + 1;
        while (k < text.Length)
        {
            if (!Rune.TryGetRuneAt(text, k, out var after)) after = Rune.ReplacementChar;
            if (!IsCaseIgnorable(after)) return !IsCased(after);
            k += after.Utf16SequenceLength;
        }
        return true;
    }

    /// <summary>Unicode's Cased property, approximated: letters with case, and anything that changes under case mapping.</summary>
    private static bool IsCased(Rune r)
    {
        var category = Rune.GetUnicodeCategory(r);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            || Rune.ToLowerInvariant(r) != r || Rune.ToUpperInvariant(r) != r;
    }

    /// <summary>Unicode's Case_Ignorable: marks, format characters, modifier letters and symbols, and the word-internal punctuation of UAX #29.</summary>
    private static bool IsCaseIgnorable(Rune r)
    {
        var category = Rune.GetUnicodeCategory(r);
        return category is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
                   or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
               || r.Value is '\'' or '.' or ':' or '\u00B7' or '\u0387' or '\u055F' or '\u05F4' or '\u2018' or '\u2019'
                   or '\u2024' or '\u2027' or '\uFE13' or '\uFE52' or '\uFE55' or '\uFF07' or '\uFF0E' or '\uFF1A';
    }

    /// <summary>Python's <c>str.upper()</c> for an entity value: as .NET's, but 'ß' becomes "SS" (full case mapping).</summary>
    private static string PythonUpper(string text) => text.Replace("\u00DF", "SS", StringComparison.Ordinal).ToUpperInvariant();
}
