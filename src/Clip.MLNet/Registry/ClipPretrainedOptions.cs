using static TorchSharp.torch;

namespace Clip.MLNet;

/// <summary>Options of <see cref="ClipModel.FromPretrained(string, ClipPretrainedOptions?)"/> and <see cref="ClipPretrained"/>.</summary>
public sealed class ClipPretrainedOptions
{
    /// <summary>
    /// Where downloaded files are kept. When null: the <c>CLIP_MLNET_CACHE</c> environment variable, else the
    /// platform's user cache folder (<c>$XDG_CACHE_HOME/clip-mlnet</c> or <c>~/.cache/clip-mlnet</c> on Linux,
    /// <c>~/Library/Caches/clip-mlnet</c> on macOS, <c>%LOCALAPPDATA%\clip-mlnet</c> on Windows).
    /// </summary>
    public string? CacheFolder { get; set; }

    /// <summary>
    /// Never touch the network: use the cache or fail, saying which file to place where. When null:
    /// on if the <c>CLIP_MLNET_OFFLINE</c> (or <c>HF_HUB_OFFLINE</c>) environment variable is <c>1</c>/<c>true</c>/<c>yes</c>/<c>on</c>.
    /// </summary>
    public bool? Offline { get; set; }

    /// <summary>
    /// How the weights are loaded once the files are there: activation, device, precision, vocabulary. The same
    /// options <see cref="ClipModel.Load(string, ClipLoadOptions?)"/> takes; where <see cref="ClipLoadOptions.Activation"/>
    /// is null the registry entry's activation is used, and where <see cref="ClipLoadOptions.VocabularyPath"/> is null
    /// the registered vocabulary is downloaded.
    /// </summary>
    public ClipLoadOptions Load { get; set; } = new();

    /// <summary>The MLP activation; the registry entry's when null. The same as <c>Load.Activation</c>.</summary>
    public ClipActivation? Activation { get => Load.Activation; set => Load.Activation = value; }

    /// <summary>The device to place the weights on (CPU when null). The same as <c>Load.Device</c>.</summary>
    public Device? Device { get => Load.Device; set => Load.Device = value; }

    /// <summary>The dtype the model computes in (Float32 by default). The same as <c>Load.Precision</c>.</summary>
    public ScalarType Precision { get => Load.Precision; set => Load.Precision = value; }

    /// <summary>A vocabulary to use instead of downloading the registered one. The same as <c>Load.VocabularyPath</c>.</summary>
    public string? VocabularyPath { get => Load.VocabularyPath; set => Load.VocabularyPath = value; }

    /// <summary>Receives download progress (only files actually downloaded report; cached files do not).</summary>
    public IProgress<ClipDownloadProgress>? Progress { get; set; }

    /// <summary>Stops a download; the partial file is kept and the next attempt resumes it where the server allows.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>
    /// The client to download with. When null, a shared client that follows the system proxy settings
    /// (<see cref="System.Net.Http.HttpClient.DefaultProxy"/>: <c>HTTPS_PROXY</c>, <c>NO_PROXY</c>, ...).
    /// </summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>
    /// The Hugging Face hub host, e.g. a mirror. When null: the <c>HF_ENDPOINT</c> environment variable, else
    /// <see cref="ClipModelSource.DefaultHubEndpoint"/>.
    /// </summary>
    public string? HubEndpoint { get; set; }

    /// <summary>
    /// The registry to look names up in. When null: the file named by the <c>CLIP_MLNET_REGISTRY</c> environment
    /// variable, else <see cref="ClipModelRegistry.Default"/>.
    /// </summary>
    public ClipModelRegistry? Registry { get; set; }

    internal ClipPretrainedOptions Clone()
    {
        var copy = (ClipPretrainedOptions)MemberwiseClone();
        copy.Load = Load.Clone();
        return copy;
    }
}

/// <summary>Progress of one file's download.</summary>
/// <param name="Model">The registered model (or vocabulary) the file belongs to.</param>
/// <param name="File">The file's name.</param>
/// <param name="Url">Where it is downloaded from.</param>
/// <param name="BytesReceived">Bytes of the file on disk so far (resumed bytes included).</param>
/// <param name="TotalBytes">The file's size, when the server says.</param>
/// <param name="Completed">True on the last report of a file, once it is verified and in place.</param>
public readonly record struct ClipDownloadProgress(string Model, string File, Uri Url, long BytesReceived, long? TotalBytes, bool Completed);
