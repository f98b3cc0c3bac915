namespace Clip.MLNet.Transforms;

/// <summary>
/// A CLIP transformer that runs one model with the options it was made with: the shape that
/// <see cref="ClipImageEmbeddingTransformer"/>, <see cref="ClipTextEmbeddingTransformer"/> and
/// <see cref="ClipZeroShotTransformer"/> share.
/// </summary>
/// <typeparam name="TOptions">The estimator's options type.</typeparam>
public abstract class ClipModelTransformer<TOptions> : ClipTransformerBase where TOptions : ClipStageOptions
{
    private protected ClipModelTransformer(ClipModel model, TOptions options)
    {
        Model = model;
        Options = options;
    }

    /// <summary>The model computing the outputs.</summary>
    public ClipModel Model { get; }

    /// <summary>The options the transformer was made with.</summary>
    public TOptions Options { get; }
}
