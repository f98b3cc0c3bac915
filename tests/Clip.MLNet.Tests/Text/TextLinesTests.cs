using System.Text;

namespace Clip.MLNet.Tests.Text;

/// <summary>DESIGN.md's <c>--texts FILE</c> rules, as <see cref="TextLines.ReadFile"/> implements them.</summary>
public class TextLinesTests
{
    public static TheoryData<string, string[]> Files => new()
    {
        { "a cat\na dog\n", ["a cat", "a dog"] },                  // a final line break adds no empty text
        { "a cat\na dog", ["a cat", "a dog"] },                    // a last line without a line break counts
        { "a cat\r\na dog\r\n", ["a cat", "a dog"] },              // CRLF
        { "a cat\r\na dog\nmixed\r\n", ["a cat", "a dog", "mixed"] },
        { "a cat\n\na dog\n", ["a cat", "", "a dog"] },            // a blank line is an empty text
        { "\n", [""] },
        { "\r\n\r\n", ["", ""] },
        { "", [] },
        { "a\rb\n", ["a\rb"] },                                    // a lone CR does not end a line
        { "  spaced  \n\t\n", ["  spaced  ", "\t"] },               // lines are kept as they are
        { "café\n東京タワー 🐱\n", ["café", "東京タワー 🐱"] },
        { "x\uFEFFy\n", ["x\uFEFFy"] },                            // only a leading byte-order mark is dropped
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void LinesAreTexts(string content, string[] expected)
    {
        using var folder = new TempFolder();
        var path = folder.Write("texts.txt", Encoding.UTF8.GetBytes(content));
        Assert.Equal(expected, TextLines.ReadFile(path));
    }

    [Fact]
    public void AUtf8ByteOrderMarkIsDropped()
    {
        using var folder = new TempFolder();
        var path = folder.Write("bom.txt", [0xEF, 0xBB, 0xBF, .. "a cat\n\n"u8]);
        Assert.Equal(["a cat", ""], TextLines.ReadFile(path));
        var onlyBom = folder.Write("only-bom.txt", [0xEF, 0xBB, 0xBF]);
        Assert.Empty(TextLines.ReadFile(onlyBom));
    }

    [Theory]
    [InlineData(new byte[] { (byte)'o', (byte)'k', 0x0A, (byte)'b', 0xFF, (byte)'c', 0x0A }, 2, 4)] // a byte that never occurs in UTF-8
    [InlineData(new byte[] { (byte)'a', 0x0A, (byte)'b', 0x0A, 0xC0, 0xAF }, 3, 4)]                // an overlong '/'
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 }, 1, 0)]                                               // an encoded surrogate
    [InlineData(new byte[] { (byte)'c', (byte)'a', (byte)'f', 0xC3 }, 1, 3)]                          // cut inside a sequence
    [InlineData(new byte[] { 0xEF, 0xBB, 0xBF, (byte)'x', 0x0A, 0xE9, (byte)'t', (byte)'e' }, 2, 5)] // Latin-1, after a BOM
    public void InvalidUtf8IsAnErrorNamingTheFileLineAndOffset(byte[] content, int line, int offset)
    {
        using var folder = new TempFolder();
        var path = folder.Write("bad.txt", content);
        var e = Assert.Throws<InvalidDataException>(() => TextLines.ReadFile(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"line {line},", e.Message);
        Assert.Contains($"byte offset {offset} ", e.Message);
    }

    [Fact]
    public void AMissingFileOrAFolderIsNamed()
    {
        using var folder = new TempFolder();
        var missing = Path.Combine(folder.Path, "missing.txt");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => TextLines.ReadFile(missing)).Message);
        Assert.Contains(folder.Path, Assert.Throws<FileNotFoundException>(() => TextLines.ReadFile(folder.Path)).Message);
    }
}
