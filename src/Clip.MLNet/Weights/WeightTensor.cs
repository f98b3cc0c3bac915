using static TorchSharp.torch;

namespace Clip.MLNet.Weights;

/// <summary>
/// One tensor of a checkpoint, not yet read: its shape and stored dtype, and a function that
/// reads it. Loading reads tensors one at a time straight into the model, so a checkpoint is never
/// held in memory whole beside the model.
/// </summary>
internal sealed record WeightTensor(long[] Shape, ScalarType DType, Func<Tensor> Read);

/// <summary>The tensors of a checkpoint by name, plus what the files said about the configuration.</summary>
internal sealed class WeightSource : IDisposable
{
    private readonly List<IDisposable> owned = new();

    public WeightSource(string path) => Path = path;

    /// <summary>The file or folder being loaded (for messages).</summary>
    public string Path { get; }

    /// <summary>Tensors under the names of the checkpoint's own layout.</summary>
    public Dictionary<string, WeightTensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>A complete configuration stored with the weights (this library's own format).</summary>
    public ClipConfig? StoredConfig { get; set; }

    /// <summary>The activation named by the files (Hugging Face <c>hidden_act</c>, open_clip <c>quick_gelu</c>).</summary>
    public ClipActivation? Activation { get; set; }

    /// <summary>Head counts named by the files, overriding the width / 64 rule.</summary>
    public int? VisionHeads { get; set; }

    /// <inheritdoc cref="VisionHeads"/>
    public int? TextHeads { get; set; }

    /// <summary>
    /// A complete configuration built from an open_clip config (timm image towers, custom text towers); the
    /// weights keep their own names (<c>visual.trunk.*</c>, <c>text.*</c>).
    /// </summary>
    public ClipConfig? FamilyConfig { get; set; }

    /// <summary>
    /// Changes an open_clip config makes to the configuration inferred from OpenAI-layout weights (text towers without a
    /// causal mask, last-position pooling, no <c>ln_pre</c>, average pooling: what the shapes cannot tell).
    /// </summary>
    public Func<ClipConfig, ClipConfig>? ConfigOverride { get; set; }

    /// <summary>The preprocessing an open_clip config's <c>preprocess_cfg</c> names; null: OpenAI's.</summary>
    public ClipPreprocessing? Preprocessing { get; set; }

    /// <summary>What an open_clip config's <c>text_cfg</c> says about the tokenizer; null when there is no such config.</summary>
    public OpenClipTextTokenizer? TextTokenizer { get; set; }

    /// <summary>Other entries of this library's own metadata (for example a serialized tokenizer).</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>Ties a reader's lifetime to this source.</summary>
    public T Own<T>(T resource) where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    public void Dispose()
    {
        foreach (var r in owned) r.Dispose();
        owned.Clear();
    }
}
