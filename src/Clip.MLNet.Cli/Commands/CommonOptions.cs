using System.CommandLine;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary>Options several commands share, parsed the same way everywhere.</summary>
internal static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Print stack traces with errors.",
        Recursive = true,
    };

    public static Option<string> Model(bool required = true) => new("--model")
    {
        Description = "A weight file (OpenAI .pt, PyTorch state dict, safetensors), a Hugging Face model folder, or a registered model name ('clip models' lists them; downloaded into the cache on first use).",
        Required = required,
    };

    public static Option<string?> Vocab() => new("--vocab")
    {
        Description = "CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) or a folder with vocab.json and merges.txt.",
    };

    public static Option<string> Precision() => new("--precision")
    {
        Description = "Compute precision: fp32, bf16 or fp16.",
        DefaultValueFactory = _ => "fp32",
    };

    public static Option<string?> Activation() => new("--activation")
    {
        Description = "MLP activation when the weights do not say: quick_gelu (OpenAI models) or gelu (most LAION models).",
    };

    public static Option<int> Batch(int defaultValue = 32) => new("--batch")
    {
        Description = "Items per forward pass.",
        DefaultValueFactory = _ => defaultValue,
    };

    public static ScalarType ParsePrecision(string value) => value.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "fp16" or "float16" or "half" => ScalarType.Float16,
        _ => throw new CliInputException($"--precision: unknown value '{value}' (expected fp32, bf16 or fp16)"),
    };

    public static ClipActivation? ParseActivation(string? value) => value is null
        ? null
        : ClipActivationNames.TryParse(value) ?? throw new CliInputException($"--activation: unknown value '{value}' (expected quick_gelu or gelu)");

    public static int CheckBatch(int batch) => batch > 0 ? batch : throw new CliInputException($"--batch must be positive, got {batch}");

    /// <summary>
    /// Loads a model for a command (a path, or a registered name: see <see cref="Pretrained"/>), with the precision
    /// and activation flags applied; <paramref name="vocab"/>, when given, spares a registered model's vocabulary download
    /// (a model file's tokenizer is the command's business, as before).
    /// </summary>
    public static ClipModel LoadModel(string path, string precision, string? activation, string? vocab = null) =>
        Pretrained.LoadModel(path, new ClipLoadOptions
        {
            Precision = ParsePrecision(precision),
            Activation = ParseActivation(activation),
            VocabularyPath = Pretrained.IsPath(path) ? null : vocab,
        });
}
