using System.Text.Json;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Text;

/// <summary>The reference tokenizer cases and tokenizers loaded once for all Text tests.</summary>
internal static class TokenizerFixtures
{
    public sealed record Case(string Text, int[] BpeIds, int[] Context77Truncated, bool FtfySensitive);

    private static readonly Lazy<IReadOnlyList<Case>> CasesValue = new(() =>
    {
        using var stream = File.OpenRead(Fixtures.ReferencePath("tokenizer_cases.json"));
        using var json = JsonDocument.Parse(stream);
        return json.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("text").GetString()!,
            c.GetProperty("bpe_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("context77_truncated").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("ftfy_sensitive").GetBoolean())).ToList();
    });

    private static readonly Lazy<ClipTokenizer> FromGz = new(() => ClipTokenizer.FromBpeVocabulary(Fixtures.Vocab));
    private static readonly Lazy<ClipTokenizer> FromHf = new(() => ClipTokenizer.FromHuggingFaceFolder(Fixtures.ReferencePath("vit", "hf")));

    public static IReadOnlyList<Case> Cases => CasesValue.Value;

    /// <summary>The tokenizer read from OpenAI's bpe_simple_vocab_16e6.txt.gz (shared; it is immutable).</summary>
    public static ClipTokenizer OpenAi => FromGz.Value;

    /// <summary>The tokenizer read from the Hugging Face folder's vocab.json and merges.txt.</summary>
    public static ClipTokenizer HuggingFace => FromHf.Value;

    public static ClipTokenizer Get(string source) => source switch
    {
        "gz" => OpenAi,
        "hf" => HuggingFace,
        _ => throw new ArgumentOutOfRangeException(nameof(source), source, null),
    };

    /// <summary>The id of a token written in plain text (ASCII, no byte-level symbols needed), e.g. "dog&lt;/w&gt;".</summary>
    public static int Id(string token) => OpenAi.TokenToId(token) ?? throw new InvalidOperationException($"'{token}' is not a CLIP token");
}
