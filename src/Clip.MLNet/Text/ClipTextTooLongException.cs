using System.Text;

namespace Clip.MLNet;

/// <summary>
/// A text needs more tokens than the context holds and truncation was turned off. The message names the text
/// (abbreviated when long), its token count and the context length, and in a batch the text's index.
/// </summary>
/// <param name="text">The text as given.</param>
/// <param name="tokenCount">Its tokens, the start and end tokens included.</param>
/// <param name="contextLength">The tokens the context holds.</param>
/// <param name="index">The text's index in a batch, or null for a single text.</param>
public sealed class ClipTextTooLongException(string text, int tokenCount, int contextLength, int? index = null)
    : ArgumentException(FormatMessage(text, tokenCount, contextLength, index))
{
    private const int ExcerptLength = 60;

    /// <summary>The text that is too long, as given.</summary>
    public string Text { get; } = text;

    /// <summary>The tokens it needs, start and end tokens included.</summary>
    public int TokenCount { get; } = tokenCount;

    /// <summary>The tokens the context holds.</summary>
    public int ContextLength { get; } = contextLength;

    /// <summary>The text's position in the batch being tokenized, or null for a single text.</summary>
    public int? Index { get; } = index;

    private static string FormatMessage(string text, int tokenCount, int contextLength, int? index) =>
        $"{(index is { } i ? $"Text {i}" : "Text")} \"{Excerpt(text)}\" is too long: {tokenCount} tokens (with the start and end tokens) " +
        $"for a context length of {contextLength}, and truncation is off.";

    /// <summary>The text on one line, cut to about 60 characters (never inside a surrogate pair).</summary>
    internal static string Excerpt(string text)
    {
        var oneLine = new StringBuilder(Math.Min(text.Length, ExcerptLength + 1));
        foreach (char c in text)
        {
            if (oneLine.Length >= ExcerptLength) break;
            oneLine.Append(char.IsControl(c) ? ' ' : c);
        }
        if (oneLine.Length < text.Length)
        {
            if (char.IsHighSurrogate(oneLine[^1])) oneLine.Length--;
            oneLine.Append('…');
        }
        return oneLine.ToString();
    }
}
