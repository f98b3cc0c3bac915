using System.CommandLine;
using Clip.MLNet.Weights;
using static TorchSharp.torch;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip demo</c>: the built-in default of README's main command.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Weights or a registered model name to run (default: the reference ViT in ../shared/clip-reference/vit)." };
        var command = new Command("demo", "Load a CLIP model and print its image-text logits on the reference inputs.") { model };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var reference = Path.GetFullPath(Path.Combine("..", "shared", "clip-reference"));
            var path = parse.GetValue(model) ?? Path.Combine(reference, "vit", "openai_jit.pt");
            var inputs = Path.Combine(reference, "expected.safetensors");
            if (!File.Exists(inputs)) throw new CliInputException($"reference inputs not found: {inputs}");
            using var clip = Pretrained.LoadModel(path, new ClipLoadOptions());
            using var file = SafetensorsFile.Open(inputs);
            using var pixels = file.Read(file.Entries.First(e => e.Name == "pixel_values_224"));
            using var tokens = file.Read(file.Entries.First(e => e.Name == "text_tokens"));
            var (perImage, perText) = clip.Logits(pixels, tokens);
            using (perImage)
            using (perText)
            {
                Console.WriteLine($"{path}: logits_per_image [{string.Join(", ", perImage.shape)}]");
                var values = perImage.data<float>().ToArray();
                for (int i = 0; i < perImage.shape[0]; i++)
                    Console.WriteLine(string.Join("  ", Enumerable.Range(0, (int)perImage.shape[1]).Select(j => values[i * perImage.shape[1] + j].ToString("F3", System.Globalization.CultureInfo.InvariantCulture).PadLeft(8))));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }
}
