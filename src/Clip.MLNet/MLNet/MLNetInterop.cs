using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Clip.MLNet.Batching;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Transforms;

// ML.NET keeps a few things a transform outside its own assemblies needs behind `internal`:
// the MLContext environment a catalog carries, and the constructor of
// SchemaShape.Column. This file is the one place that reaches them, by reflection against the pinned
// ML.NET version; tests cover each path so an ML.NET upgrade that moves them fails loudly.
internal static class MLNetInterop
{
    private static readonly FieldInfo? CatalogEnvironment =
        typeof(TransformsCatalog).GetField("_env", BindingFlags.NonPublic | BindingFlags.Instance);

    private static readonly ConstructorInfo? ShapeColumnConstructor =
        typeof(SchemaShape.Column).GetConstructors(BindingFlags.NonPublic | BindingFlags.Instance)
            .FirstOrDefault(c => c.GetParameters().Length == 5);

    /// <summary>The environment (ML.NET's host: progress, GPU settings) behind a catalog, or null if it cannot be reached.</summary>
    public static IHostEnvironment? EnvironmentOf(object catalog)
    {
        var field = catalog.GetType().GetField("_env", BindingFlags.NonPublic | BindingFlags.Instance) ?? CatalogEnvironment;
        return field?.GetValue(catalog) as IHostEnvironment;
    }

    /// <summary>ML.NET's GPU settings of an environment: (GpuDeviceId, FallbackToCpu).</summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) GpuSettings(IHostEnvironment? env)
    {
        if (env is null) return (null, true);
        var type = env.GetType();
        var id = type.GetProperty("GpuDeviceId", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)?.GetValue(env) as int?;
        var fallback = type.GetProperty("FallbackToCpu", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)?.GetValue(env) as bool? ?? true;
        return (id, fallback);
    }

    /// <summary>
    /// The device a CLIP stage runs on: the explicit choice if given; otherwise ML.NET's convention,
    /// CUDA device <c>GpuDeviceId</c> when set, falling back to the CPU only when <c>FallbackToCpu</c> allows it.
    /// </summary>
    public static Device ResolveDevice(Device? explicitDevice, IHostEnvironment? env)
    {
        if (explicitDevice is not null) return explicitDevice;
        var (gpu, fallback) = GpuSettings(env);
        if (gpu is null) return torch.CPU;
        if (torch.cuda.is_available() && gpu.Value < torch.cuda.device_count()) return new Device(DeviceType.CUDA, gpu.Value);
        if (fallback) return torch.CPU;
        throw new InvalidOperationException(
            $"MLContext.GpuDeviceId is {gpu} but TorchSharp sees no such CUDA device (is TorchSharp-cuda-linux referenced and a GPU present?). Set MLContext.FallbackToCpu = true to run on the CPU.");
    }

    /// <summary>A <see cref="SchemaShape.Column"/> (its constructor is internal to ML.NET).</summary>
    public static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, SchemaShape? annotations = null)
    {
        if (ShapeColumnConstructor is null)
            throw new InvalidOperationException("This ML.NET version does not expose SchemaShape.Column's constructor as Clip.MLNet expects.");
        return (SchemaShape.Column)ShapeColumnConstructor.Invoke(new object?[] { name, kind, itemType, isKey, annotations });
    }

    /// <summary>
    /// The shape of <paramref name="inputSchema"/> with <paramref name="outputs"/> added (same-named columns replaced).
    /// With a <paramref name="stage"/> name, the outputs are marked as that CLIP stage's, and replacing another CLIP
    /// stage's output is refused (<see cref="CheckNotHidingClipOutput(string, string, string?)"/>).
    /// </summary>
    public static SchemaShape WithOutputs(SchemaShape inputSchema, IEnumerable<SchemaShape.Column> outputs, string? stage = null)
    {
        var result = inputSchema.ToDictionary(c => c.Name);
        foreach (var o in outputs)
        {
            if (stage is null)
            {
                result[o.Name] = o;
                continue;
            }
            if (result.TryGetValue(o.Name, out var hidden) && hidden.Annotations?.Any(c => c.Name == ClipStageAnnotation) == true)
                CheckNotHidingClipOutput(o.Name, stage, "another CLIP stage");
            var annotations = (o.Annotations ?? new SchemaShape(Array.Empty<SchemaShape.Column>())).ToList();
            annotations.Add(ShapeColumn(ClipStageAnnotation, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false));
            result[o.Name] = ShapeColumn(o.Name, o.Kind, o.ItemType, o.IsKey, new SchemaShape(annotations));
        }
        return new SchemaShape(result.Values);
    }

    /// <summary>The annotation that marks a column written by a CLIP stage; its value names the stage.</summary>
    public const string ClipStageAnnotation = "ClipStage";

    /// <summary>The CLIP stage that wrote <paramref name="column"/> of <paramref name="schema"/>, or null.</summary>
    public static string? ClipStageOf(DataViewSchema schema, string column)
    {
        if (schema.GetColumnOrNull(column) is not { } c || c.Annotations.Schema.GetColumnOrNull(ClipStageAnnotation) is null) return null;
        var value = default(ReadOnlyMemory<char>);
        c.Annotations.GetValue(ClipStageAnnotation, ref value);
        return value.ToString();
    }

    /// <summary>
    /// Throws where <paramref name="stage"/> would write <paramref name="column"/> over a column that another CLIP stage
    /// wrote (<paramref name="writer"/>; null: none, so nothing to check). Two embedding stages on their defaults both
    /// write <c>Features</c>, and the later one would silently hide the earlier one's embeddings.
    /// </summary>
    public static void CheckNotHidingClipOutput(string column, string stage, string? writer)
    {
        if (writer is null) return;
        throw new InvalidOperationException(
            $"{stage} would write its output column '{column}' over the column '{column}' that {writer} wrote, hiding it " +
            "(the embedding transforms both default to 'Features'): give one of them another outputColumnName.");
    }

    /// <summary>Annotations holding slot names (the class names of a score vector).</summary>
    public static SchemaShape SlotNamesShape() =>
        new(new[] { ShapeColumn(AnnotationKinds.SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false) });

    /// <summary>Annotations holding key values.</summary>
    public static SchemaShape KeyValuesShape() =>
        new(new[] { ShapeColumn(AnnotationKinds.KeyValues, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false) });
}
