using Clip.MLNet.Data;

namespace Clip.MLNet.Evaluation;

/// <summary>What <see cref="ClipEvaluator"/> measures.</summary>
[Flags]
public enum EvaluationTasks
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Zero-shot classification (labelled datasets): top-1, top-5, mean per-class accuracy.</summary>
    ZeroShot = 1,
    /// <summary>A logistic-regression probe on frozen image embeddings (labelled datasets): top-1, mean per-class accuracy.</summary>
    LinearProbe = 2,
    /// <summary>Image→text and text→image recall at K (captioned datasets).</summary>
    Retrieval = 4,
    /// <summary>Every task that applies to each dataset.</summary>
    All = ZeroShot | LinearProbe | Retrieval,
}

/// <summary>A dataset to evaluate: the rows scored, optionally a training split for the linear probe, and the zero-shot prompts.</summary>
public sealed class EvaluationDataset
{
    /// <summary>Creates the entry.</summary>
    /// <param name="test">The rows evaluated.</param>
    /// <param name="train">Rows to fit the linear probe on; when null the probe is fitted on part of <paramref name="test"/> (see <see cref="EvaluationOptions.ProbeTrainFraction"/>).</param>
    /// <param name="prompts">Zero-shot classes and templates, in the dataset's label order; when null, the dataset's class names (underscores as spaces) with <see cref="EvaluationOptions.Templates"/>.</param>
    /// <param name="name">The name in reports (default: the test set's).</param>
    public EvaluationDataset(ImageDataset test, ImageDataset? train = null, ZeroShotPrompts? prompts = null, string? name = null)
    {
        Test = test ?? throw new ArgumentNullException(nameof(test));
        Train = train;
        Prompts = prompts;
        Name = name ?? test.Name;
    }

    /// <summary>
    /// Reads the datasets of specs (see <see cref="DatasetSpec"/>): the evaluated rows (a folder location's <c>test</c>
    /// split unless the spec names one), the probe's training rows (a folder location's <c>train</c> split), and the
    /// zero-shot prompts.
    /// </summary>
    /// <param name="test">The evaluated dataset.</param>
    /// <param name="train">The probe's training dataset, or null.</param>
    /// <param name="promptsFile">
    /// A prompts JSON (<see cref="ZeroShotPrompts.Load"/>) to take the classes and templates from, looked up by the spec's
    /// <see cref="DatasetSpec.PromptsName"/>; null for the dataset's class names.
    /// </param>
    /// <param name="templates">Templates replacing the prompts file's (with a prompts file), or null.</param>
    public static EvaluationDataset Load(DatasetSpec test, DatasetSpec? train = null, string? promptsFile = null, IReadOnlyList<string>? templates = null)
    {
        ArgumentNullException.ThrowIfNull(test);
        var testSet = test.Load("test");
        var trainSet = train?.Load("train");
        ZeroShotPrompts? prompts = null;
        if (promptsFile is not null && testSet.HasLabels)
        {
            prompts = ZeroShotPrompts.Load(promptsFile, test.PromptsName);
            if (templates is not null) prompts = new ZeroShotPrompts(prompts.Classes, templates);
        }
        return new EvaluationDataset(testSet, trainSet, prompts, test.Name);
    }

    /// <summary>The name in reports.</summary>
    public string Name { get; }

    /// <summary>The rows evaluated.</summary>
    public ImageDataset Test { get; }

    /// <summary>Rows to fit the linear probe on, or null.</summary>
    public ImageDataset? Train { get; }

    /// <summary>Zero-shot classes and templates, or null for the dataset's class names.</summary>
    public ZeroShotPrompts? Prompts { get; }
}

/// <summary>Options of <see cref="ClipEvaluator"/>.</summary>
public sealed class EvaluationOptions
{
    /// <summary>The tasks to run where they apply (default all).</summary>
    public EvaluationTasks Tasks { get; set; } = EvaluationTasks.All;

    /// <summary>Evaluate at most this many rows of each dataset (for captioned datasets: images, with all their captions), drawn at random with <see cref="Seed"/>; null for all.</summary>
    public int? MaxItems { get; set; }

    /// <summary>Fit the linear probe on at most this many training rows, drawn at random; null for all.</summary>
    public int? MaxTrainItems { get; set; }

    /// <summary>Templates for prompts made from a dataset's class names (default <c>{}</c>, the name alone).</summary>
    public IReadOnlyList<string>? Templates { get; set; }

    /// <summary>Images per forward pass (default 32).</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Threads decoding and preprocessing images beside the forward pass (default 1).</summary>
    public int PreprocessThreads { get; set; } = 1;

    /// <summary>Seed of every random choice: row sampling, probe splits (default 0).</summary>
    public int Seed { get; set; }

    /// <summary>
    /// With no training split, the fraction of the evaluated rows the probe is fitted on (default 0.5); it is then
    /// scored on the rest, and the report says so.
    /// </summary>
    public double ProbeTrainFraction { get; set; } = 0.5;

    /// <summary>The linear probe's search and trainer options.</summary>
    public LinearProbeOptions LinearProbe { get; set; } = new();

    /// <summary>The K values of recall at K (default 1, 5, 10).</summary>
    public IReadOnlyList<int> RecallKs { get; set; } = RetrievalMetrics.DefaultKs;
}

/// <summary>Progress of an evaluation: a step of a dataset and how far it has come.</summary>
/// <param name="Dataset">The dataset's name.</param>
/// <param name="Step">What is being done ("images", "captions", "zero-shot prompts", "linear probe: …").</param>
/// <param name="Done">Items done.</param>
/// <param name="Total">Items in all, when known.</param>
public readonly record struct EvaluationProgress(string Dataset, string Step, long Done, long? Total);
