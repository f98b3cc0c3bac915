using Clip.MLNet.Weights;

namespace Clip.MLNet;

public sealed partial class ClipModel
{
    /// <summary>
    /// Loads a registered pretrained model by name (<c>"ViT-B/32"</c>, <c>"RN50"</c>,
    /// <c>"laion/CLIP-ViT-H-14-laion2B-s32B-b79K"</c>, ...; <see cref="ClipModelRegistry.Models"/> lists them),
    /// downloading its files into the cache the first time. Cached files are used only when their SHA-256
    /// matches; downloads are verified before they are moved into place. The model comes with its
    /// <see cref="Tokenizer"/> and its registered activation.
    /// </summary>
    /// <param name="name">A registered name or alias, in any case.</param>
    /// <param name="options">Cache folder, offline mode, progress, cancellation, and the load options; defaults when null.</param>
    /// <exception cref="ClipUnknownModelException">No model has that name; the message gives the closest ones.</exception>
    /// <exception cref="ClipDownloadException">The files could not be had: offline with an empty cache, no network, a hash mismatch, a full disk. The message says what to do.</exception>
    /// <exception cref="ClipCheckpointException">The files are not the registered model (they do not load, or their image size differs).</exception>
    /// <exception cref="OperationCanceledException">The options' token was cancelled; a partial download is resumed next time.</exception>
    public static ClipModel FromPretrained(string name, ClipPretrainedOptions? options = null)
    {
        ClipNative.Initialize();
        options ??= new ClipPretrainedOptions();
        return LoadPretrained(ClipPretrained.Download(name, options), options);
    }

    /// <summary>
    /// <see cref="FromPretrained(string, ClipPretrainedOptions?)"/> with an asynchronous download; the weights
    /// are then read on the continuation.
    /// </summary>
    public static async Task<ClipModel> FromPretrainedAsync(string name, ClipPretrainedOptions? options = null)
    {
        options ??= new ClipPretrainedOptions();
        var files = await ClipPretrained.DownloadAsync(name, options).ConfigureAwait(false);
        return LoadPretrained(files, options);
    }

    private static ClipModel LoadPretrained(ClipPretrainedFiles files, ClipPretrainedOptions options)
    {
        var load = options.Load.Clone();
        load.Activation ??= files.Model.Activation;
        load.VocabularyPath ??= files.VocabularyPath;
        var model = Load(files.ModelPath, load);
        if (model.ImageResolution != files.Model.ImageSize)
        {
            model.Dispose();
            throw new ClipCheckpointException(files.ModelPath,
                $"the registry gives {files.Model.Name} {files.Model.ImageSize}px images but these weights take {model.ImageResolution}px: the files are not the registered model");
        }
        return model;
    }
}

public sealed partial class ClipTokenizer
{
    /// <summary>
    /// The tokenizer of a registered pretrained model: its vocabulary is downloaded into the cache (and verified)
    /// the first time, without the model's weights. <see cref="ClipPretrainedOptions.VocabularyPath"/>, when set, is used instead.
    /// </summary>
    /// <param name="name">A registered model name or alias.</param>
    /// <param name="contextLength">Tokens per encoded text, start and end tokens included (CLIP: 77).</param>
    /// <param name="options">Cache folder, offline mode, progress, cancellation; defaults when null.</param>
    /// <exception cref="ClipUnknownModelException">No model has that name.</exception>
    /// <exception cref="ClipDownloadException">The vocabulary could not be had.</exception>
    public static ClipTokenizer FromPretrained(string name, int contextLength = 77, ClipPretrainedOptions? options = null) =>
        Load(ClipPretrained.DownloadVocabularyAsync(name, options).GetAwaiter().GetResult(), contextLength);
}
