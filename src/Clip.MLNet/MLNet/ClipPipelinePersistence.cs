using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Clip.MLNet;
using Clip.MLNet.Transforms;
using Clip.MLNet.Weights;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML;

/// <summary>
/// Saving and loading fitted pipelines that hold CLIP stages beside ordinary ML.NET stages, as one file.
/// ML.NET's own <c>mlContext.Model.Save</c> cannot hold transforms from outside its assemblies (its
/// model-writing API is internal); this format is a zip in which runs of ordinary stages are stored as
/// ML.NET model files (written by ML.NET itself) and CLIP stages as their options plus safetensors weights.
/// </summary>
public static partial class ClipPipelinePersistence
{
    private const string ManifestEntry = "clip-pipeline.json";
    private const string FormatName = "clip.mlnet.pipeline";

    /// <summary>Saves a fitted pipeline (CLIP and ML.NET stages, nested chains flattened) and its input schema to one file.</summary>
    /// <param name="catalog">The model operations catalog.</param>
    /// <param name="model">The fitted pipeline.</param>
    /// <param name="inputSchema">The schema of the data the pipeline was fitted on.</param>
    /// <param name="path">The file to write; replaced only when the new file is complete.</param>
    public static void SaveClipPipeline(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        var stages = Flatten(model).ToList();
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var work = Directory.CreateTempSubdirectory("clip-pipeline-");
        try
        {
            using (var zip = ZipFile.Open(temp, ZipArchiveMode.Create))
            {
                var writer = new PipelineWriter(zip, work.FullName);
                using (var entry = zip.CreateEntry("input-schema.zip").Open())
                    catalog.Save(new TransformerChain<ITransformer>(), inputSchema, entry);

                var manifestStages = new JsonArray();
                var schema = inputSchema;
                var run = new List<ITransformer>();
                var runSchema = schema;
                void FlushRun()
                {
                    if (run.Count == 0) return;
                    var name = $"stages/{manifestStages.Count}.zip";
                    using (var entry = zip.CreateEntry(name).Open())
                        catalog.Save(new TransformerChain<ITransformer>(run.ToArray()), runSchema, entry);
                    manifestStages.Add(new JsonObject { ["kind"] = "mlnet", ["entry"] = name });
                    run.Clear();
                }
                foreach (var stage in stages)
                {
                    if (stage is ClipTransformerBase clip)
                    {
                        FlushRun();
                        var state = clip.SaveState(writer);
                        state["kind"] = clip.PersistKind;
                        manifestStages.Add(state);
                    }
                    else
                    {
                        if (run.Count == 0) runSchema = schema;
                        run.Add(stage);
                    }
                    schema = stage.GetOutputSchema(schema);
                }
                FlushRun();
                var manifest = new JsonObject { ["format"] = FormatName, ["version"] = 1, ["stages"] = manifestStages };
                using (var w = new StreamWriter(zip.CreateEntry(ManifestEntry).Open()))
                    w.Write(manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            try { File.Delete(temp); } catch (IOException) { }
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Loads what <see cref="SaveClipPipeline"/> wrote; dispose the result to free the CLIP weights it loaded.</summary>
    /// <param name="catalog">The model operations catalog.</param>
    /// <param name="path">The pipeline file.</param>
    /// <param name="inputSchema">The schema of the data the pipeline was fitted on.</param>
    /// <param name="device">Where to place CLIP weights; ML.NET's GPU settings decide when null.</param>
    public static TransformerChain<ITransformer> LoadClipPipeline(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema, Device? device = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such pipeline file.", path);
        var resolved = MLNetInterop.ResolveDevice(device, MLNetInterop.EnvironmentOf(catalog));
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException e) { throw new ClipCheckpointException(path, $"not a pipeline file (not a readable zip: {e.Message})", e); }
        var work = Directory.CreateTempSubdirectory("clip-pipeline-");
        var loaded = new List<ITransformer>();
        try
        {
            using (zip)
            {
                var manifestEntry = zip.GetEntry(ManifestEntry) ?? throw new ClipCheckpointException(path, $"not a CLIP pipeline file (no {ManifestEntry}); ML.NET model files load with mlContext.Model.Load");
                JsonObject manifest;
                using (var r = new StreamReader(manifestEntry.Open())) manifest = JsonNode.Parse(r.ReadToEnd())!.AsObject();
                if ((string?)manifest["format"] != FormatName) throw new ClipCheckpointException(path, "not a CLIP pipeline file (unknown format)");
                if ((int?)manifest["version"] != 1) throw new ClipCheckpointException(path, $"pipeline format version {manifest["version"]} is not supported by this version of Clip.MLNet");

                using (var s = OpenSeekable(zip, "input-schema.zip", path))
                    catalog.Load(s, out inputSchema);

                var reader = new PipelineReader(zip, path, work.FullName, resolved);
                foreach (var node in manifest["stages"]!.AsArray())
                {
                    var stage = node!.AsObject();
                    var kind = (string?)stage["kind"];
                    if (kind == "mlnet")
                    {
                        using var s = OpenSeekable(zip, (string)stage["entry"]!, path);
                        var chain = catalog.Load(s, out _);
                        loaded.AddRange(Flatten(chain));
                    }
                    else
                    {
                        loaded.Add(ClipTransformerBase.LoadState(kind, stage, reader));
                    }
                }
                reader.ReleaseUnclaimed();
                return new TransformerChain<ITransformer>(loaded.ToArray());
            }
        }
        catch
        {
            foreach (var t in loaded) (t as IDisposable)?.Dispose();
            throw;
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    private static Stream OpenSeekable(ZipArchive zip, string name, string path)
    {
        var entry = zip.GetEntry(name) ?? throw new ClipCheckpointException(path, $"the pipeline file lacks its entry '{name}'");
        var ms = new MemoryStream();
        using (var s = entry.Open()) s.CopyTo(ms);
        ms.Position = 0;
        return ms;
    }

    internal static IEnumerable<ITransformer> Flatten(ITransformer model)
    {
        if (model is IEnumerable<ITransformer> chain)
        {
            foreach (var t in chain)
                foreach (var inner in Flatten(t)) yield return inner;
        }
        else
        {
            yield return model;
        }
    }
}

/// <summary>Writes the shared parts of CLIP stages (models, tokenizers, tensors) into a pipeline file, each once.</summary>
internal sealed class PipelineWriter(ZipArchive zip, string workFolder)
{
    private readonly Dictionary<object, string> written = new(ReferenceEqualityComparer.Instance);

    public string AddModel(ClipModel model)
    {
        if (written.TryGetValue(model, out var name)) return name;
        name = $"models/{written.Count}.safetensors";
        var file = Path.Combine(workFolder, $"{written.Count}.safetensors");
        model.Save(file);
        zip.CreateEntryFromFile(file, name, CompressionLevel.NoCompression);
        File.Delete(file);
        // The weights keep their dtype, but loading defaults to float32: record the precision the model computes in.
        using (var w = new StreamWriter(zip.CreateEntry(name + ".json", CompressionLevel.Optimal).Open()))
            w.Write(new JsonObject { ["compute_type"] = model.ComputeType.ToString() }.ToJsonString());
        written[model] = name;
        return name;
    }

    public string AddTokenizer(ClipTokenizer tokenizer)
    {
        if (written.TryGetValue(tokenizer, out var name)) return name;
        name = $"tokenizers/{written.Count}.json";
        var json = new JsonObject();
        foreach (var (k, v) in tokenizer.ToMetadata()) json[k] = v;
        using (var w = new StreamWriter(zip.CreateEntry(name, CompressionLevel.Optimal).Open()))
            w.Write(json.ToJsonString());
        written[tokenizer] = name;
        return name;
    }

    public string AddTensors(string label, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var name = $"tensors/{written.Count}-{label}.safetensors";
        var file = Path.Combine(workFolder, $"t{written.Count}.safetensors");
        SafetensorsFile.Write(file, tensors);
        zip.CreateEntryFromFile(file, name, CompressionLevel.NoCompression);
        File.Delete(file);
        written[new object()] = name;
        return name;
    }
}

/// <summary>Reads the shared parts of CLIP stages from a pipeline file; a model used by several stages is loaded once.</summary>
internal sealed class PipelineReader(ZipArchive zip, string path, string workFolder, Device device)
{
    private readonly Dictionary<string, SharedModel> models = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ClipTokenizer> tokenizers = new(StringComparer.Ordinal);

    public string Path => path;

    /// <summary>A loaded model with a reference count: each stage that uses it holds one reference.</summary>
    internal sealed class SharedModel(ClipModel model) : IDisposable
    {
        private int references;
        public ClipModel Model { get; } = model;
        public IDisposable Reference()
        {
            Interlocked.Increment(ref references);
            return new Releaser(this);
        }
        private void Release()
        {
            if (Interlocked.Decrement(ref references) == 0) Model.Dispose();
        }
        public void Dispose()
        {
            if (Volatile.Read(ref references) == 0) Model.Dispose();
        }
        private sealed class Releaser(SharedModel owner) : IDisposable
        {
            private int released;
            public void Dispose()
            {
                if (Interlocked.Exchange(ref released, 1) == 0) owner.Release();
            }
        }
    }

    /// <summary>The precision a saved model computed in; float32 for files written before it was recorded.</summary>
    private ScalarType ComputeType(string entryName)
    {
        var entry = zip.GetEntry(entryName + ".json");
        if (entry is null) return ScalarType.Float32;
        using var reader = new StreamReader(entry.Open());
        var text = JsonNode.Parse(reader.ReadToEnd())?["compute_type"]?.GetValue<string>();
        return text switch
        {
            nameof(ScalarType.Float32) => ScalarType.Float32,
            nameof(ScalarType.BFloat16) => ScalarType.BFloat16,
            nameof(ScalarType.Float16) => ScalarType.Float16,
            _ => throw new ClipCheckpointException(path, $"entry '{entryName}.json' names an unknown compute type '{text}'"),
        };
    }

    public (ClipModel Model, IDisposable Reference) Model(string entryName)
    {
        if (!models.TryGetValue(entryName, out var shared))
        {
            var entry = zip.GetEntry(entryName) ?? throw new ClipCheckpointException(path, $"the pipeline file lacks its entry '{entryName}'");
            var file = System.IO.Path.Combine(workFolder, $"m{models.Count}.safetensors");
            entry.ExtractToFile(file);
            try
            {
                var model = ClipModel.Load(file, new ClipLoadOptions { Device = device, Precision = ComputeType(entryName) });
                shared = new SharedModel(model);
                models[entryName] = shared;
            }
            finally
            {
                File.Delete(file);
            }
        }
        return (shared.Model, shared.Reference());
    }

    public ClipTokenizer Tokenizer(string entryName)
    {
        if (tokenizers.TryGetValue(entryName, out var t)) return t;
        var entry = zip.GetEntry(entryName) ?? throw new ClipCheckpointException(path, $"the pipeline file lacks its entry '{entryName}'");
        using var r = new StreamReader(entry.Open());
        var json = JsonNode.Parse(r.ReadToEnd())!.AsObject();
        t = ClipTokenizer.FromMetadata(json.ToDictionary(kv => kv.Key, kv => (string)kv.Value!));
        tokenizers[entryName] = t;
        return t;
    }

    public Dictionary<string, Tensor> Tensors(string entryName)
    {
        var entry = zip.GetEntry(entryName) ?? throw new ClipCheckpointException(path, $"the pipeline file lacks its entry '{entryName}'");
        var file = System.IO.Path.Combine(workFolder, $"t{Guid.NewGuid():N}.safetensors");
        entry.ExtractToFile(file);
        try
        {
            using var f = SafetensorsFile.Open(file);
            return f.Entries.ToDictionary(e => e.Name, e => f.Read(e).DetachFromDisposeScope());
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Frees models no stage took a reference to.</summary>
    public void ReleaseUnclaimed()
    {
        foreach (var m in models.Values) m.Dispose();
    }
}
