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
    public static int Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "pipeline-predict":
                var ml = new MLContext(seed: 1);
                using (var model = ml.Model.LoadClipPipeline(args[1], out var schema))
                {
                    var data = ReferenceData.ImageView(ml, args[2].Split('|'));
                    Console.Write(Describe(model.Transform(data)));
                }
                return 0;
            case "pretrained-download":
                // Fetches a model the way FromPretrained does (two of these at once test the cache's lock).
                var files = ClipPretrained.Download(args[4], new ClipPretrainedOptions
                {
                    Registry = ClipModelRegistry.Load(args[1]),
                    CacheFolder = args[2],
                    HubEndpoint = args[3],
                });
                Console.Write(files.ModelPath);
                return 0;
            case "training-seeds":
                Console.Write(Training.TrainingSeedTests.Describe(int.Parse(args[1], CultureInfo.InvariantCulture)));
                return 0;
            default:
                Console.Error.WriteLine("usage: pipeline-predict FILE PATHS | pretrained-download REGISTRY CACHE ENDPOINT NAME | training-seeds SEED");
                return 2;
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
