using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Clip.MLNet.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Clip.MLNet.Benchmarks;

/// <summary>
/// ONNX Runtime's throughput on this library's ONNX export, to set beside <c>clip bench</c> (README, ONNX export):
/// <c>dotnet run -c Release --project tests/Clip.MLNet.Benchmarks -- onnx [--arch ViT-B/32|ViT-B/16|RN50] [--batch 32]
/// [--threads 2] [--seconds 10] [--precision fp32|fp16]</c>. Random weights of the architecture are exported to a
/// temporary folder, then each tower runs on random inputs (77-token texts, as <c>clip bench</c>'s default) for at
/// least the given seconds after two warm-up batches; images/s and texts/s are the median batch's. Prints one JSON object,
/// with the relative error of each export against the TorchSharp model on two random inputs.
/// </summary>
internal static class OnnxRuntimeThroughput
{
    private static readonly Dictionary<string, Func<ClipConfig>> Architectures = new(StringComparer.OrdinalIgnoreCase)
    {
        ["ViT-B/32"] = () => ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 12, 512, 12),
        ["ViT-B/16"] = () => ClipConfig.VisionTransformerConfig(512, 224, 16, 768, 12, 512, 12),
        ["RN50"] = () => ClipConfig.ResNetConfig(1024, 224, new[] { 3, 4, 6, 3 }, 64, 512, 12),
    };

    public static int Run(string[] args)
    {
        string arch = "ViT-B/32", precision = "fp32";
        int batch = 32, threads = Environment.ProcessorCount;
        double seconds = 10;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            var value = args[i + 1];
            switch (args[i])
            {
                case "--arch": arch = value; break;
                case "--batch": batch = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(value, CultureInfo.InvariantCulture); break;
                case "--precision": precision = value; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        var dir = Path.Combine(Path.GetTempPath(), "clip-onnx-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
            double imageError, textError;
            using (var model = ClipModel.Create(Architectures[arch]()))
            {
                ClipOnnxExporter.Export(model, dir, new ClipOnnxExportOptions
                {
                    Precision = precision == "fp16" ? TorchSharp.torch.ScalarType.Float16 : TorchSharp.torch.ScalarType.Float32,
                });
                (imageError, textError) = CompareWithModel(model, dir, options);
            }
            var random = new Random(0);
            double images, texts;
            using (var session = new InferenceSession(Path.Combine(dir, ClipOnnxExporter.ImageEncoderFile), options))
            {
                var pixels = new DenseTensor<float>(Enumerable.Range(0, batch * 3 * 224 * 224).Select(_ => (float)random.NextDouble() * 2 - 1).ToArray(), [batch, 3, 224, 224]);
                images = batch / MedianSeconds(() => session.Run([NamedOnnxValue.CreateFromTensor("pixel_values", pixels)]).Dispose(), seconds);
            }
            using (var session = new InferenceSession(Path.Combine(dir, ClipOnnxExporter.TextEncoderFile), options))
            {
                var ids = new long[batch * 77];
                for (int r = 0; r < batch; r++)
                {
                    ids[r * 77] = 49406;
                    for (int j = 1; j < 76; j++) ids[r * 77 + j] = random.NextInt64(1, 49406);
                    ids[r * 77 + 76] = 49407;
                }
                var tokens = new DenseTensor<long>(ids, [batch, 77]);
                texts = batch / MedianSeconds(() => session.Run([NamedOnnxValue.CreateFromTensor("text_tokens", tokens)]).Dispose(), seconds);
            }
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["runtime"] = "onnxruntime " + typeof(InferenceSession).Assembly.GetName().Version,
                ["arch"] = arch,
                ["precision"] = precision,
                ["batch"] = batch,
                ["threads"] = threads,
                ["text_tokens"] = 77,
                ["images_per_s"] = Math.Round(images, 2),
                ["texts_per_s"] = Math.Round(texts, 2),
                ["image_relative_error"] = imageError,
                ["text_relative_error"] = textError,
            }));
            return 0;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>||onnx − torchsharp|| / ||torchsharp|| of both towers' features on two random inputs (a check at full size).</summary>
    private static (double Image, double Text) CompareWithModel(ClipModel model, string dir, SessionOptions options)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        TorchSharp.torch.random.manual_seed(1);
        var pixels = TorchSharp.torch.randn(2, 3, model.ImageResolution, model.ImageResolution);
        var tokens = TorchSharp.torch.randint(1, 49406, [2, 77], dtype: TorchSharp.torch.ScalarType.Int64);
        tokens[TorchSharp.torch.TensorIndex.Colon, 0] = TorchSharp.torch.tensor(49406L);
        tokens[0, 20] = TorchSharp.torch.tensor(49407L);
        tokens[1, 76] = TorchSharp.torch.tensor(49407L);
        double Error(string file, string input, TorchSharp.torch.Tensor value, TorchSharp.torch.Tensor expected)
        {
            using var session = new InferenceSession(Path.Combine(dir, file), options);
            var dims = value.shape.Select(d => (int)d).ToArray();
            var named = value.dtype == TorchSharp.torch.ScalarType.Int64
                ? NamedOnnxValue.CreateFromTensor(input, new DenseTensor<long>(value.data<long>().ToArray(), dims))
                : NamedOnnxValue.CreateFromTensor(input, new DenseTensor<float>(value.data<float>().ToArray(), dims));
            using var results = session.Run([named]);
            var actual = TorchSharp.torch.tensor(results.First().AsTensor<float>().ToArray()).reshape(expected.shape);
            return ((actual - expected).norm() / expected.norm()).item<float>();
        }
        return (Error(ClipOnnxExporter.ImageEncoderFile, "pixel_values", pixels, model.EncodeImage(pixels)),
            Error(ClipOnnxExporter.TextEncoderFile, "text_tokens", tokens, model.EncodeText(tokens)));
    }

    private static double MedianSeconds(Action run, double seconds)
    {
        run();
        run();
        var times = new List<double>();
        double total = 0;
        while (times.Count < 3 || total < seconds)
        {
            var sw = Stopwatch.StartNew();
            run();
            times.Add(sw.Elapsed.TotalSeconds);
            total += times[^1];
        }
        times.Sort();
        int n = times.Count;
        return n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
    }
}
