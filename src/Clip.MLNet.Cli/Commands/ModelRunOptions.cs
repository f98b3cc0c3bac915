using System.CommandLine;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// The options of a command that runs a model over many inputs (embed, zero-shot, index): which model, its vocabulary,
/// batch, precision, activation, threads, device and preprocessing threads, declared once and read the same way.
/// </summary>
internal sealed class ModelRunOptions
{
    public Option<string> Model { get; } = CommonOptions.Model();
    public Option<string?> Vocab { get; } = CommonOptions.Vocab();
    public Option<int> Batch { get; } = CommonOptions.Batch();
    public Option<string> Precision { get; } = CommonOptions.Precision();
    public Option<string?> Activation { get; } = CommonOptions.Activation();
    public Option<int?> Threads { get; } = CommonOptions.Threads();
    public Option<string?> Device { get; } = CommonOptions.DeviceOption();
    public Option<int?> PreprocessThreads { get; } = CommonOptions.PreprocessThreads();

    /// <summary>Adds the options to <paramref name="command"/>, after the ones it already has.</summary>
    public void AddTo(Command command)
    {
        foreach (Option option in new Option[] { Model, Vocab, Batch, Precision, Activation, Threads, Device, PreprocessThreads })
            command.Options.Add(option);
    }

    /// <summary>The checked <c>--batch</c>.</summary>
    public int BatchSize(ParseResult parse) => CommonOptions.CheckBatch(parse.GetValue(Batch));

    /// <summary>Applies <c>--threads</c> (process-wide), then loads the model with the precision, activation, vocabulary and device flags.</summary>
    public ClipModel LoadModel(ParseResult parse)
    {
        CommonOptions.ApplyThreads(parse.GetValue(Threads));
        return CommonOptions.LoadModel(parse.GetValue(Model)!, parse.GetValue(Precision)!, parse.GetValue(Activation), parse.GetValue(Vocab), parse.GetValue(Device));
    }

    /// <summary>The preprocessing threads beside <paramref name="model"/> (see <see cref="CommonOptions.ResolvePreprocessThreads"/>).</summary>
    public int PreprocessThreadsFor(ParseResult parse, ClipModel model) => CommonOptions.ResolvePreprocessThreads(parse.GetValue(PreprocessThreads), model);
}
