// Declared beside the batching engine, whose policy it is, and used by the transforms, training and indexing alike;
// the namespace stays the one the first release gave it, for source compatibility.
namespace Clip.MLNet.Transforms;

/// <summary>What a row whose input cannot be processed (a corrupt image, say) does to a transform.</summary>
public enum BadRowHandling
{
    /// <summary>Reading the row throws an exception that names the row and the input (the default).</summary>
    Error,
    /// <summary>The row gets missing outputs (NaN vectors, a missing key) and is counted in <c>SkippedRows</c>.</summary>
    Skip,
}
