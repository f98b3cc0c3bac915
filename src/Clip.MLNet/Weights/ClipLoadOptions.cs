using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>Options of <see cref="ClipModel.Load(string, ClipLoadOptions?)"/>.</summary>
public sealed class ClipLoadOptions
{
    /// <summary>
    /// The MLP activation, which weights do not record. When null: a Hugging Face <c>config.json</c>'s
    /// <c>hidden_act</c>, an open_clip config's <c>quick_gelu</c>, this library's own saved config, and
    /// otherwise QuickGELU (OpenAI's models). Set <see cref="ClipActivation.Gelu"/> for most LAION models.
    /// </summary>
    public ClipActivation? Activation { get; set; }

    /// <summary>The device to place the weights on (CPU when null).</summary>
    public Device? Device { get; set; }

    /// <summary>
    /// CLIP's BPE vocabulary (<c>bpe_simple_vocab_16e6.txt.gz</c>, or a folder with <c>vocab.json</c> and
    /// <c>merges.txt</c>) to attach as <see cref="ClipModel.Tokenizer"/>. Hugging Face folders and this
    /// library's own files bring their tokenizer without it.
    /// </summary>
    public string? VocabularyPath { get; set; }

    /// <summary>The dtype the model computes in: Float32 (default), BFloat16 or Float16. Stored weights of any float dtype convert to it.</summary>
    public ScalarType Precision { get; set; } = ScalarType.Float32;

    internal ClipLoadOptions Clone() => (ClipLoadOptions)MemberwiseClone();
}
