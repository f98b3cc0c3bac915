using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.Support;

/// <summary>
/// The test assembly's own entry point (the test SDK's generated one is turned off): tests start this
/// assembly as a fresh process to check what must hold across processes, such as loading a saved pipeline.
/// </summary>
public static class ChildProcessEntry
{
    // Main names no Clip.MLNet type: compiling it must not start the library's native loading before a case runs.
    public static int Main(string[] args) => args.FirstOrDefault() switch
    {
        "pipeline-predict" => PipelinePredict(args),
        "pretrained-download" => PretrainedDownload(args),
        "native-embed" => NativeEmbed(args[1]),
        // Someone loads a libtorch by hand before Clip.MLNet: the library must name it, not crash later.
        "native-stray" => LoadThen(args[1], NativeStray),
        "training-seeds" => TrainingSeeds(args),
        _ => Usage(),
    };

    private static int Usage()
    {
        Console.Error.WriteLine("usage: pipeline-predict FILE PATHS | pretrained-download REGISTRY CACHE ENDPOINT NAME | training-seeds SEED | native-embed MODEL | native-stray LIBRARY");
        return 2;
    }

    private static int LoadThen(string library, Func<int> then)
    {
        System.Runtime.InteropServices.NativeLibrary.Load(library);
        return then();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int PipelinePredict(string[] args)
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Model.LoadClipPipeline(args[1], out var schema);
        var data = ReferenceData.ImageView(ml, args[2].Split('|'));
        Console.Write(Describe(model.Transform(data)));
        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int PretrainedDownload(string[] args)
    {
        // Fetches a model the way FromPretrained does (two of these at once test the cache's lock).
        var files = ClipPretrained.Download(args[4], new ClipPretrainedOptions
        {
            Registry = ClipModelRegistry.Load(args[1]),
            CacheFolder = args[2],
            HubEndpoint = args[3],
        });
        Console.Write(files.ModelPath);
        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int TrainingSeeds(string[] args)
    {
        Console.Write(Training.TrainingSeedTests.Describe(int.Parse(args[1], CultureInfo.InvariantCulture)));
        return 0;
    }

    /// <summary>Set for children that must start without the test assembly's early native load (<see cref="TestAssemblyInitializer"/>).</summary>
    public const string RawNativeVariable = "CLIP_MLNET_TESTS_RAW_NATIVE";

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int NativeEmbed(string modelPath)
    {
        using var model = ClipModel.Load(modelPath);
        using var pixels = TorchSharp.torch.rand(2, 3, model.Config.ImageResolution, model.Config.ImageResolution);
        using var features = model.EncodeImage(pixels);
        Console.WriteLine($"features [{string.Join(",", features.shape)}]");
        Console.WriteLine(ClipNative.Description);
        foreach (var library in Clip.MLNet.Native.TorchSharpNativeLoader.MappedLibraries().Where(p => p.Contains("torch", StringComparison.OrdinalIgnoreCase)))
            Console.WriteLine(library);
        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int NativeStray()
    {
        try
        {
            ClipNative.Initialize();
            Console.WriteLine("loaded: " + ClipNative.Description);
            return 0;
        }
        catch (ClipNativeLibraryException e)
        {
            Console.WriteLine(e.Message);
            return 3;
        }
    }

    /// <summary>Every float-vector, key and float column of a view, printed exactly (round-trip format).</summary>
    public static string Describe(IDataView view)
    {
        var sb = new StringBuilder();
        var columns = view.Schema.Where(c => !c.IsHidden && (c.Type is VectorDataViewType { ItemType: NumberDataViewType } || c.Type is KeyDataViewType)).ToList();
        using var cursor = view.GetRowCursor(columns);
        var getters = columns.Select(c => c.Type is KeyDataViewType
            ? (Func<string>)(() => { uint v = 0; cursor.GetGetter<uint>(c)(ref v); return v.ToString(CultureInfo.InvariantCulture); })
            : () => { var v = default(VBuffer<float>); cursor.GetGetter<VBuffer<float>>(c)(ref v); return string.Join(",", v.DenseValues().Select(x => x.ToString("R", CultureInfo.InvariantCulture))); }).ToList();
        while (cursor.MoveNext())
        {
            for (int i = 0; i < columns.Count; i++) sb.Append(columns[i].Name).Append('=').Append(getters[i]()).Append(';');
            sb.Append('\n');
        }
        return sb.ToString();
    }
}
