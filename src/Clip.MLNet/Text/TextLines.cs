using System.Buffers;
using System.Text.Unicode;

namespace Clip.MLNet;

/// <summary>
/// Reads a texts file the way the <c>clip</c> tool's <c>--texts FILE</c> does: UTF-8 (a byte-order mark is
/// dropped), one text per line, lines ending at '\n' or "\r\n", a last line without a line break counted, a blank
/// line an empty text, and no extra empty text after a final line break.
/// </summary>
public static class TextLines
{
    private static readonly byte[] Utf8Bom = [0xEF, 0xBB, 0xBF];

    /// <summary>The texts of a UTF-8 file, one per line.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist (or is a folder).</exception>
    /// <exception cref="InvalidDataException">The file is not valid UTF-8; the message names the file, the line and the byte offset.</exception>
    public static IReadOnlyList<string> ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) throw new FileNotFoundException($"{path} is a folder; expected a UTF-8 text file with one text per line", path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Text file not found: {path}", path);
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>The texts of UTF-8 bytes, by the rules of <see cref="ReadFile"/>; <paramref name="source"/> names them in errors.</summary>
    internal static IReadOnlyList<string> Parse(ReadOnlySpan<byte> bytes, string source)
    {
        int bomLength = bytes.StartsWith(Utf8Bom) ? Utf8Bom.Length : 0;
        var content = bytes[bomLength..];
        var text = DecodeStrict(content, bomLength, source);

        var lines = new List<string>();
        int start = 0;
        while (start < text.Length)
        {
            int newline = text.IndexOf('\n', start);
            if (newline < 0)
            {
                lines.Add(text[start..]);
                break;
            }
            int end = newline > start && text[newline - 1] == '\r' ? newline - 1 : newline;
            lines.Add(text[start..end]);
            start = newline + 1;
        }
        return lines;
    }

    /// <summary>UTF-8 to a string, refusing invalid bytes (rather than replacing them) with the place of the first one.</summary>
    private static string DecodeStrict(ReadOnlySpan<byte> content, int offsetInFile, string source)
    {
        var chars = new char[content.Length];
        var status = Utf8.ToUtf16(content, chars, out int bytesRead, out int charsWritten, replaceInvalidSequences: false);
        if (status == OperationStatus.Done) return new string(chars, 0, charsWritten);

        int line = content[..bytesRead].Count((byte)'\n') + 1;
        long fileOffset = offsetInFile + bytesRead;
        string what = status == OperationStatus.NeedMoreData ? "ends inside a UTF-8 sequence" : "is not valid UTF-8";
        throw new InvalidDataException(
            $"{source}: {what} at line {line}, byte offset {fileOffset} (byte 0x{content[bytesRead]:X2}); texts files must be UTF-8");
    }
}
