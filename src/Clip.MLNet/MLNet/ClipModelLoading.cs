using Clip.MLNet;
using Clip.MLNet.Registry;
using Clip.MLNet.Transforms;

namespace Microsoft.ML;

// Loading models the ML.NET way (devices from MLContext's GPU settings, download progress on ML.NET's channels);
// the path-or-name decision is ClipModelResolver's, as everywhere.
public static partial class ClipPipelinePersistence
{
    /// <summary>
    /// Loads a CLIP model, placing it as ML.NET's conventions say: on CUDA device <c>MLContext.GpuDeviceId</c>
    /// when set (on the CPU when no such device exists and <c>MLContext.FallbackToCpu</c> allows it), unless
    /// <paramref name="options"/> names a device. A <paramref name="path"/> that names no file or folder but a
    /// registered model (<c>"ViT-B/32"</c>) is loaded as <see cref="ClipModel.FromPretrained(string, ClipPretrainedOptions?)"/>
    /// does, with the default cache and the download's progress on ML.NET's channels.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither a file or folder nor a registered name.</exception>
    public static ClipModel LoadClipModel(this ModelOperationsCatalog catalog, string path, ClipLoadOptions? options = null) =>
        catalog.LoadClipModel(path, new ClipPretrainedOptions { Load = options?.Clone() ?? new ClipLoadOptions() });

    /// <summary>
    /// Loads a registered pretrained model by name (or a weight file or folder, when <paramref name="nameOrPath"/>
    /// exists), as <see cref="ClipModel.FromPretrained(string, ClipPretrainedOptions?)"/> does, with the device
    /// chosen by ML.NET's GPU settings unless the options name one. Download progress goes to ML.NET's progress
    /// channel and its log (<c>MLContext.Log</c>), and to <see cref="ClipPretrainedOptions.Progress"/> if set.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither a file or folder nor a registered name.</exception>
    public static ClipModel LoadClipModel(this ModelOperationsCatalog catalog, string nameOrPath, ClipPretrainedOptions pretrainedOptions)
    {
        ArgumentNullException.ThrowIfNull(pretrainedOptions);
        var env = MLNetInterop.EnvironmentOf(catalog);
        var options = pretrainedOptions.Clone();
        options.Device = MLNetInterop.ResolveDevice(pretrainedOptions.Device, env);
        if (env is null || !ClipModelResolver.IsRegisteredName(nameOrPath, options)) return ClipModelResolver.Load(nameOrPath, options);
        using var reporter = new MLNetDownloadProgress(env, nameOrPath, pretrainedOptions.Progress);
        options.Progress = reporter;
        return ClipModelResolver.Load(nameOrPath, options);
    }
}
