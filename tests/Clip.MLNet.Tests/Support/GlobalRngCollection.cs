namespace Clip.MLNet.Tests.Support;

/// <summary>
/// Tests whose expected numbers depend on TorchSharp's global random generator (torch.manual_seed, then a model's
/// random initialisation): any test running beside them that draws from the generator would change their weights.
/// xunit runs this collection alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    public const string Name = "TorchSharp's global random generator";
}
