using System.CommandLine;
using System.Globalization;
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

    public static Option<int?> Threads() => new("--threads")
    {
        Description = "libtorch intra-op threads (default: libtorch's choice, one per core). Process-wide.",
    };

    public static Option<int?> PreprocessThreads() => new("--preprocess-threads")
    {
        Description = "Threads decoding and preprocessing images, one batch ahead of the forward pass (default: 1 on the CPU, one per core with CUDA).",
    };

    /// <summary>The preprocessing threads of a command: the flag, else 1 beside a CPU model and one per core beside a GPU.</summary>
    public static int ResolvePreprocessThreads(int? value, ClipModel model)
    {
        if (value is { } n) return n > 0 ? n : throw new CliInputException($"--preprocess-threads must be positive, got {n}");
        return model.Device.type == TorchSharp.DeviceType.CPU ? 1 : Environment.ProcessorCount;
    }

    public static Option<string?> DeviceOption() => new("--device")
    {
        Description = "Where to compute: cpu (default) or cuda / cuda:N (needs a CUDA build of TorchSharp).",
    };

    /// <summary>Sets libtorch's intra-op thread count (process-wide) when <paramref name="threads"/> is given.</summary>
    public static void ApplyThreads(int? threads)
    {
        if (threads is not { } n) return;
        if (n <= 0) throw new CliInputException($"--threads must be positive, got {n}");
        ClipModel.IntraOpThreads = n;
    }

    /// <summary>The device of <c>--device</c>: the CPU when null; CUDA only where libtorch has it.</summary>
    public static Device ParseDevice(string? value)
    {
        if (value is null) return CPU;
        var v = value.Trim().ToLowerInvariant();
        if (v == "cpu") return CPU;
        if (v == "cuda" || v.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int index = 0;
            if (v.Length > 5 && !int.TryParse(v.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out index))
                throw new CliInputException($"--device: bad CUDA device '{value}' (expected cuda or cuda:N)");
            if (!TorchSharp.torch.cuda.is_available())
                throw new CliInputException($"--device {value}: CUDA is not available (this build of TorchSharp is CPU-only, or no GPU is visible)");
            if (index >= TorchSharp.torch.cuda.device_count())
                throw new CliInputException($"--device {value}: there are {TorchSharp.torch.cuda.device_count()} CUDA devices");
            return new Device(TorchSharp.DeviceType.CUDA, index);
        }
        throw new CliInputException($"--device: unknown device '{value}' (expected cpu, cuda or cuda:N)");
    }

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
    /// Loads a model for a command (a path, or a registered name: see <see cref="Pretrained"/>), with the precision,
    /// activation and device flags applied; <paramref name="vocab"/>, when given, spares a registered model's vocabulary
    /// download (a model file's tokenizer is the command's business, as before).
    /// </summary>
    public static ClipModel LoadModel(string path, string precision, string? activation, string? vocab = null, string? device = null) =>
        Pretrained.LoadModel(path, new ClipLoadOptions
        {
            Precision = ParsePrecision(precision),
            Activation = ParseActivation(activation),
            Device = ParseDevice(device),
            VocabularyPath = Pretrained.IsPath(path) ? null : vocab,
        });
}
