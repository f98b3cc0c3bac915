using System.Diagnostics;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Families;

/// <summary>
/// A Gemma-style SentencePiece model (BPE with byte fallback, no normalization, no dummy prefix, as SigLIP2's
/// tokenizer.model is made) trained here with Debian's sentencepiece tools, then read with this library and
/// compared with spm_encode's ids. No binary from elsewhere is committed.
/// </summary>
public class SentencePieceTokenizerTests
{
    private static readonly Lazy<string> GemmaStyleModel = new(Train);

    private static string Tool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        throw new InvalidOperationException($"{name} is not installed (apt-get install -y sentencepiece); the SentencePiece tests need it and fail rather than skip.");
    }

    private static string Run(string tool, string arguments, string? stdin = null)
    {
        var info = new ProcessStartInfo(Tool(tool), arguments)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false,
            StandardOutputEncoding = System.Text.Encoding.UTF8, StandardInputEncoding = stdin is null ? null : new System.Text.UTF8Encoding(false),
        };
        using var process = Process.Start(info)!;
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{tool} {arguments} failed ({process.ExitCode}): {error.Result}");
        return output.Result;
    }

    private static string Train()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"clip-spm-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var corpus = Path.Combine(dir, "corpus.txt");
        // The zero-shot prompts' class names and templates: real caption text, lower-cased as SigLIP2 is fed.
        var lines = File.ReadAllText(Path.Combine(Fixtures.Data, "zero_shot_prompts.json")).ToLowerInvariant()
            .Split(new[] { '"', ',', '[', ']', '{', '}', ':' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.Length > 2).ToArray();
        File.WriteAllLines(corpus, lines);
        var prefix = Path.Combine(dir, "tokenizer");
        Run("spm_train", $"--input={corpus} --model_prefix={prefix} --model_type=bpe --vocab_size=600 --byte_fallback=true " +
            "--normalization_rule_name=identity --add_dummy_prefix=false --split_digits=true --character_coverage=0.9995 " +
            "--pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --minloglevel=2");
        return prefix + ".model";
    }

    private static readonly string[] Samples =
    {
        "a photo of a dog.", "a photo of the large golden retriever", "", "emoji 🙂 and 日本の寺 fall back to bytes",
        "Mixed CASE stays as written", "numbers 12345 split", "  spaced   out  ",
    };

    [Fact]
    public void GemmaStyleBpeModelMatchesSpmEncode()
    {
        var model = GemmaStyleModel.Value;
        // No cleaning rule beyond whitespace: compare the model's own encoding.
        var tokenizer = ClipTokenizer.FromSentencePiece(model, 16, clean: "whitespace");
        foreach (var text in Samples)
        {
            var cleaned = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
            var expected = cleaned.Length == 0 ? Array.Empty<int>() :
                Run("spm_encode", $"--model={model} --output_format=id", cleaned + "\n").Trim()
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            Assert.True(expected.SequenceEqual(tokenizer.EncodeBpe(text)), $"\"{text}\": spm [{string.Join(",", expected)}], got [{string.Join(",", tokenizer.EncodeBpe(text))}]");
        }
    }

    [Fact]
    public void OpenClipRuleAppendsEosTruncatesAndPads()
    {
        var tokenizer = ClipTokenizer.FromSentencePiece(GemmaStyleModel.Value, 8, clean: "canonicalize");
        Assert.Equal(1, tokenizer.EndOfText);
        Assert.Equal(-1, tokenizer.StartOfText);
        var empty = tokenizer.Encode("");
        Assert.Equal(new[] { 1, 0, 0, 0, 0, 0, 0, 0 }, empty);
        var pieces = tokenizer.EncodeBpe("A Photo, of the DOG!");
        Assert.Equal(tokenizer.EncodeBpe("a photo of the dog"), pieces);
        var longText = string.Join(' ', Enumerable.Repeat("photograph of a retriever", 10));
        var ids = tokenizer.Encode(longText);
        Assert.Equal(8, ids.Length);
        Assert.Equal(1, ids[^1]);
        Assert.Equal(tokenizer.EncodeBpe(longText).Take(7), ids.Take(7));
        Assert.Throws<ClipTextTooLongException>(() => tokenizer.Encode(longText, truncate: false));
    }

    [Fact]
    public void FolderTokenizerModelIsUsedForSigLip2()
    {
        var folder = FamilyFixtures.CopyFolder("siglip2");
        try
        {
            File.Copy(GemmaStyleModel.Value, Path.Combine(folder, "tokenizer.model"));
            using var model = ClipModel.Load(folder);
            var tokenizer = model.RequireTokenizer();
            Assert.Null(model.MissingTokenizer);
            Assert.Equal(64, tokenizer.ContextLength);
            var ids = tokenizer.Encode("A photo of a DOG.");
            Assert.Equal(tokenizer.EncodeBpe("a photo of a dog").Concat(new[] { 1 }), ids.TakeWhile(i => i != 0));
        }
        finally { Directory.Delete(folder, true); }
    }
}
