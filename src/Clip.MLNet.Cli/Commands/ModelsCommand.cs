using System.CommandLine;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip models</c>: the registered pretrained models, one line each: NAME, SHA-256 or "unpinned", SOURCE.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var sources = new Option<bool>("--sources") { Description = "One line per source, in the order they are tried, instead of one line per model (its first source)." };
        var command = new Command("models",
            "List the registered pretrained models that --model NAME accepts: NAME<TAB>SHA256-or-unpinned<TAB>SOURCE (the weight file's address). " +
            $"Files are cached in ${ClipPretrained.CacheVariable} or the user cache folder; ${ClipPretrained.OfflineVariable}=1 never touches the network.")
        {
            sources,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            var registry = ClipPretrained.ResolveRegistry();
            var endpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : null;
            var all = parse.GetValue(sources);
            var stdout = Console.Out;
            foreach (var model in registry.Models)
                foreach (var source in all ? model.Sources : model.Sources.Take(1))
                    stdout.WriteLine($"{model.Name}\t{source.Weights.Sha256 ?? "unpinned"}\t{source.FileUrl(source.Weights, endpoint)}");
            return ExitCodes.Ok;
        }));
        return command;
    }
}
