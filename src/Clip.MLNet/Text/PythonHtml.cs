using System.Net;
using System.Text;

namespace Clip.MLNet.Text;

/// <summary>
/// HTML character references decoded the way Python's <c>html.unescape</c> does, which OpenAI's tokenizer
/// applies twice. <see cref="WebUtility.HtmlDecode(string)"/> differs from it in ways that change tokens:
/// it ignores references without a semicolon (<c>&amp;amp</c>, <c>&amp;#39</c>), keeps C1 numbers
/// (<c>&amp;#150;</c> is an en dash in Python) and keeps invalid numbers as text. So the scanning and the numeric
/// rules are written here, and only the lookup of a named entity is left to WebUtility.
/// </summary>
/// <remarks>
/// Named entities: WebUtility knows the 253 HTML 4 names (plus <c>apos</c>); Python knows the 2231 of HTML5.
/// The HTML 4 names cover what captions use (<c>amp lt gt quot apos nbsp</c>, Latin-1 letters, typographic
/// punctuation); the rest of HTML5's names (<c>&amp;NewLine;</c>, <c>&amp;bigstar;</c> ...) are left as text.
/// </remarks>
internal static class PythonHtml
{
    // Windows-1252 reading of the bytes 0x80-0x9F, with the five undefined bytes left as they are: what Python's
    // html.unescape returns for &#128;-&#159; and what ftfy's fix_c1_controls ("sloppy-windows-1252") does.
    private const string Windows1252C1 =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    /// <summary>The Windows-1252 character for a C1 control U+0080-U+009F (itself where 1252 leaves the byte undefined).</summary>
    public static char Windows1252ForC1(char c) => Windows1252C1[c - 0x80];

    // HTML5 keeps a few upper-case aliases of HTML 4 names; they are not in WebUtility's table.
    private static readonly Dictionary<string, string> UpperCaseAliases = new(StringComparer.Ordinal)
    {
        ["AMP"] = "&", ["LT"] = "<", ["GT"] = ">", ["QUOT"] = "\"", ["COPY"] = "\u00A9", ["REG"] = "\u00AE", ["TRADE"] = "\u2122",
    };

    // The only names whose HTML5 value differs from HTML 4 (and so from WebUtility).
    private static readonly Dictionary<string, string> Html5Changes = new(StringComparer.Ordinal)
    {
        ["lang"] = "\u27E8", ["rang"] = "\u27E9",
    };

    /// <summary>The value of <c>&amp;name;</c> in HTML5, for the names this class knows (see remarks).</summary>
    public static bool TryGetNamedEntity(string name, out string value)
    {
        if (UpperCaseAliases.TryGetValue(name, out value!) || Html5Changes.TryGetValue(name, out value!)) return true;
        if (name.Length == 0 || name.Length > 32 || !name.All(char.IsAsciiLetterOrDigit))
        {
            value = "";
            return false;
        }
        var reference = "&" + name + ";";
        var decoded = WebUtility.HtmlDecode(reference);
        value = decoded;
        return decoded != reference;
    }

    /// <summary>
    /// The value of <c>&amp;name</c> without a semicolon. HTML5 allows that for 106 legacy names: the HTML 4
    /// Latin-1 names (values U+00A0-U+00FF) and amp, lt, gt, quot with their upper-case aliases plus COPY and REG.
    /// </summary>
    private static bool TryGetLegacyEntity(string name, out string value)
    {
        if (name is "AMP" or "LT" or "GT" or "QUOT" or "COPY" or "REG") return UpperCaseAliases.TryGetValue(name, out value!);
        if (name is "amp" or "lt" or "gt" or "quot") return TryGetNamedEntity(name, out value);
        return TryGetNamedEntity(name, out value) && value.Length == 1 && value[0] is >= '\u00A0' and <= '\u00FF';
    }

    /// <summary>Python's <c>html.unescape(text)</c>.</summary>
    public static string Unescape(string text)
    {
        int amp = text.IndexOf('&');
        if (amp < 0) return text;
        var result = new StringBuilder(text.Length);
        result.Append(text, 0, amp);
        int i = amp;
        while (i < text.Length)
        {
            if (text[i] != '&')
            {
                int next = text.IndexOf('&', i);
                if (next < 0) next = text.Length;
                result.Append(text, i, next - i);
                i = next;
                continue;
            }
            int consumed = TryDecodeReference(text, i, result);
            if (consumed == 0)
            {
                result.Append('&');
                i++;
            }
            else
            {
                i += consumed;
            }
        }
        return result.ToString();
    }

    /// <summary>
    /// Decodes the reference at <paramref name="start"/> (an '&amp;') into <paramref name="output"/> as Python's
    /// pattern <c>&amp;(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f &lt;&amp;#;]{1,32};?)</c> and its replacement
    /// function do; returns the characters consumed, 0 when nothing matches there.
    /// </summary>
    public static int TryDecodeReference(string text, int start, StringBuilder output)
    {
        int i = start + 1;
        if (i < text.Length && text[i] == '#')
        {
            int digitsStart;
            bool hex = i + 1 < text.Length && (text[i + 1] == 'x' || text[i + 1] == 'X') && i + 2 < text.Length && char.IsAsciiHexDigit(text[i + 2]);
            if (hex)
            {
                digitsStart = i + 2;
            }
            else if (i + 1 < text.Length && char.IsAsciiDigit(text[i + 1]))
            {
                digitsStart = i + 1;
            }
            else
            {
                return 0;
            }
            int end = digitsStart;
            while (end < text.Length && (hex ? char.IsAsciiHexDigit(text[end]) : char.IsAsciiDigit(text[end]))) end++;
            long number = ParseCapped(text.AsSpan(digitsStart, end - digitsStart), hex ? 16 : 10);
            if (end < text.Length && text[end] == ';') end++;
            AppendCodePoint(number, output);
            return end - start;
        }

        int nameEnd = i;
        while (nameEnd < text.Length && nameEnd - i < 32 && text[nameEnd] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';')) nameEnd++;
        if (nameEnd == i) return 0;
        bool semicolon = nameEnd < text.Length && text[nameEnd] == ';';
        string name = text.Substring(i, nameEnd - i);
        int consumedEnd = semicolon ? nameEnd + 1 : nameEnd;

        if (semicolon ? TryGetNamedEntity(name, out var value) : TryGetLegacyEntity(name, out value))
        {
            output.Append(value);
            return consumedEnd - start;
        }
        // The longest legacy name that the reference starts with (at least two characters), the rest kept as text.
        for (int length = name.Length - (semicolon ? 0 : 1); length >= 2; length--)
        {
            if (TryGetLegacyEntity(name[..length], out value))
            {
                output.Append(value).Append(text, i + length, consumedEnd - (i + length));
                return consumedEnd - start;
            }
        }
        output.Append('&').Append(text, i, consumedEnd - i);
        return consumedEnd - start;
    }

    /// <summary>Parses digits; anything past U+10FFFF is reported as 0x110000 (Python's ints do not overflow, and all such numbers decode alike).</summary>
    private static long ParseCapped(ReadOnlySpan<char> digits, int radix)
    {
        long value = 0;
        foreach (var c in digits)
        {
            value = value * radix + (char.IsAsciiDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
            if (value > 0x10FFFF) return 0x110000;
        }
        return value;
    }

    /// <summary>Python's rules for a numeric reference: C1 numbers and 0 and 13 remapped, surrogates and out-of-range numbers become U+FFFD, control and non-characters vanish.</summary>
    private static void AppendCodePoint(long number, StringBuilder output)
    {
        switch (number)
        {
            case 0x00: output.Append('\uFFFD'); return;
            case 0x0D: output.Append('\r'); return;
            case >= 0x80 and <= 0x9F: output.Append(Windows1252C1[(int)number - 0x80]); return;
            case >= 0xD800 and <= 0xDFFF or > 0x10FFFF: output.Append('\uFFFD'); return;
            case >= 0x01 and <= 0x08 or 0x0B or >= 0x0E and <= 0x1F or 0x7F or >= 0xFDD0 and <= 0xFDEF: return;
            case var n when (n & 0xFFFE) == 0xFFFE: return;
            default: output.Append(char.ConvertFromUtf32((int)number)); return;
        }
    }
}
