using System.CommandLine;
using Clip.MLNet.Cli.Commands;

namespace Clip.MLNet.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        OpenMpWaitPolicy.ApplyDefault();   // before anything loads libtorch
        var root = new RootCommand("clip: OpenAI CLIP from .NET (Clip.MLNet). Embeddings, zero-shot classification, training, evaluation and benchmarks.")
        {
            CommonOptions.Verbose,
            EmbedCommand.Create(),
            PreprocessCommand.Create(),
            TokenizeCommand.Create(),
            ZeroShotCommand.Create(),
            EvalCommand.Create(),
            TrainCommand.Create(),
            DemoCommand.Create(),
            ModelsCommand.Create(),
            BenchCommand.Create(),
            IndexCommand.Create(),
            ExportOnnxCommand.Create(),
            WorkerCommand.Create(),
            SearchCommand.Create(),
            ServeCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
