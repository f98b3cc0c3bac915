using System.Text.Json;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// What a <c>clip index</c> run is given: the local run opens it, the cluster's submitter sends it (as JSON, the job's
/// payload) and every worker opens the same index from it.
/// </summary>
internal sealed record IndexJob
{
    public required string Model { get; init; }
    public string? Vocab { get; init; }
    public string[] Images { get; init; } = [];
    public string? Manifest { get; init; }
    public string? WebDataset { get; init; }
    public string PathColumn { get; init; } = "image_path";
    public string? CaptionColumn { get; init; }
    public required string Output { get; init; }
    public int Partitions { get; init; } = 1;
    /// <summary>The --batch given, or null (a worker's own --batch, else 32).</summary>
    public int? Batch { get; init; }
    public string Precision { get; init; } = "fp32";
    public string? Activation { get; init; }
    /// <summary>The --threads given; a worker's own --threads wins.</summary>
    public int? Threads { get; init; }
    public string? Device { get; init; }
    public int? PreprocessThreads { get; init; }
    public bool Strict { get; init; }

    /// <summary>The same job with every path absolute, as workers in other folders (and on other machines) need it.</summary>
    public IndexJob WithFullPaths() => this with
    {
        Model = Pretrained.IsPath(Model) ? Path.GetFullPath(Model) : Model,
        Vocab = Vocab is null ? null : Path.GetFullPath(Vocab),
        Images = Images.Select(Path.GetFullPath).ToArray(),
        Manifest = Manifest is null ? null : Path.GetFullPath(Manifest),
        WebDataset = WebDataset is null ? null : Path.GetFullPath(WebDataset),
        Output = Path.GetFullPath(Output),
    };

    public string Describe() => Images.Length > 0 ? $"images {string.Join(' ', Images)}" : Manifest is not null ? $"manifest {Manifest}" : $"webdataset {WebDataset}";

    public string ToJson() => JsonSerializer.Serialize(this);

    public static IndexJob FromJson(string json) =>
        JsonSerializer.Deserialize<IndexJob>(json) ?? throw new InvalidDataException("an empty index job");
}
