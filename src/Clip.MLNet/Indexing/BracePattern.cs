using System.Globalization;

namespace Clip.MLNet.Indexing;

/// <summary>Shell-style brace expansion of shard patterns: numeric ranges <c>{0000..0099}</c> (zero-padded like their first bound) and lists <c>{a,b}</c>.</summary>
internal static class BracePattern
{
    /// <summary>The expansions of <paramref name="pattern"/>, in order (the pattern itself when it has no braces).</summary>
    public static IReadOnlyList<string> Expand(string pattern)
    {
        int open = pattern.IndexOf('{');
        if (open < 0) return [pattern];
        int close = pattern.IndexOf('}', open);
        if (close < 0) throw new FormatException($"{pattern}: '{{' without a closing '}}'");
        var body = pattern[(open + 1)..close];
        var head = pattern[..open];
        var rest = Expand(pattern[(close + 1)..]);
        var result = new List<string>();
        foreach (var choice in Choices(body, pattern))
            foreach (var tail in rest)
                result.Add(head + choice + tail);
        return result;
    }

    private static IEnumerable<string> Choices(string body, string pattern)
    {
        int dots = body.IndexOf("..", StringComparison.Ordinal);
        if (dots >= 0)
        {
            var from = body[..dots];
            var to = body[(dots + 2)..];
            if (!long.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out long a) ||
                !long.TryParse(to, NumberStyles.None, CultureInfo.InvariantCulture, out long b))
                throw new FormatException($"{pattern}: '{{{body}}}' is not a numeric range like {{0000..0099}}");
            if (b < a) throw new FormatException($"{pattern}: the range '{{{body}}}' runs backwards");
            if (b - a > 10_000_000) throw new FormatException($"{pattern}: the range '{{{body}}}' is too large");
            int width = from.Length;
            var list = new List<string>();
            for (long i = a; i <= b; i++) list.Add(i.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0'));
            return list;
        }
        return body.Split(',');
    }
}
