using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Clip.MLNet.Tests.Support;
using NetArchTest.Rules;

namespace Clip.MLNet.Tests;

/// <summary>
/// The rules of ARCHITECTURE.md that the compiler does not keep: the forbidden dependency arrows (checked on the
/// compiled assembly) and the namespace rule (checked on the sources).
/// </summary>
public sealed partial class ArchitectureTests
{
    private static readonly Assembly Library = typeof(ClipModel).Assembly;

    /// <summary>The parts below the ML.NET adapter, by namespace: none of them may use the adapter.</summary>
    private static readonly string[] BelowTheAdapter =
    [
        "Clip.MLNet.Native", "Clip.MLNet.Weights", "Clip.MLNet.Modeling", "Clip.MLNet.Text", "Clip.MLNet.Imaging",
        "Clip.MLNet.Batching", "Clip.MLNet.Registry", "Clip.MLNet.Data", "Clip.MLNet.Training", "Clip.MLNet.Onnx", "Clip.MLNet.Indexing",
    ];

    /// <summary>
    /// The adapter's types: the folder MLNet/ (namespace Clip.MLNet.Transforms, and the catalog classes in Microsoft.ML).
    /// BadRowHandling keeps the first release's namespace but is declared with the batching engine, which every part uses.
    /// </summary>
    private static IEnumerable<string> AdapterTypes() => Library.GetTypes()
        .Where(t => !t.IsNested && (t.Namespace == "Clip.MLNet.Transforms" || t.Namespace == "Microsoft.ML")
            && t.Name != "BadRowHandling" && t.GetCustomAttribute<CompilerGeneratedAttribute>() is null)
        .Select(t => t.FullName!);

    [Fact]
    public void The_library_pulls_in_no_cluster_runtime()
    {
        var references = Library.GetReferencedAssemblies().Select(a => a.Name!).ToArray();
        Assert.Contains("TorchSharp", references); // the list is the library's, not empty
        Assert.DoesNotContain(references, n => n.StartsWith("Orleans", StringComparison.Ordinal) || n == "Clip.MLNet.Cluster");
        // Also no reference the compiler would drop as unused: the project file names neither.
        var project = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "src", "Clip.MLNet", "Clip.MLNet.csproj"));
        Assert.DoesNotContain("Orleans", project);
        Assert.DoesNotContain("Clip.MLNet.Cluster", project);
        var cluster = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "src", "Clip.MLNet.Cluster", "Clip.MLNet.Cluster.csproj"));
        Assert.DoesNotContain("ProjectReference", cluster); // Orleans only: models and indexes stay with the tool
    }

    [Fact]
    public void Parts_below_the_ML_NET_adapter_do_not_use_it()
    {
        var adapter = AdapterTypes().ToArray();
        Assert.Contains("Clip.MLNet.Transforms.ImageInput", adapter); // the list is the adapter's, not empty
        var failures = new List<string>();
        foreach (var part in BelowTheAdapter)
        {
            var result = Types.InAssembly(Library).That().ResideInNamespace(part).ShouldNot().HaveDependencyOnAny(adapter).GetResult();
            if (!result.IsSuccessful) failures.AddRange(result.FailingTypeNames ?? []);
        }
        Assert.True(failures.Count == 0, "These types use the ML.NET adapter (MLNet/), which only Evaluation, Performance and the tool may: " + string.Join(", ", failures));
    }

    [Fact]
    public void The_modules_and_weights_do_not_depend_on_training_data_or_evaluation()
    {
        foreach (var part in new[] { "Clip.MLNet.Native", "Clip.MLNet.Weights", "Clip.MLNet.Modeling", "Clip.MLNet.Text", "Clip.MLNet.Imaging" })
        {
            var result = Types.InAssembly(Library).That().ResideInNamespace(part).ShouldNot()
                .HaveDependencyOnAny("Clip.MLNet.Training", "Clip.MLNet.Data", "Clip.MLNet.Evaluation").GetResult();
            Assert.True(result.IsSuccessful, $"{part} uses training, datasets or evaluation: {string.Join(", ", result.FailingTypeNames ?? [])}");
        }
    }

    [Fact]
    public void Only_public_types_live_in_the_root_namespace()
    {
        var internalInRoot = Library.GetTypes()
            .Where(t => t.Namespace == "Clip.MLNet" && !t.IsNested && !t.IsPublic && t.GetCustomAttribute<CompilerGeneratedAttribute>() is null
                && !t.Name.StartsWith('<'))
            .Select(t => t.Name).ToList();
        Assert.True(internalInRoot.Count == 0, "Internal types belong to their folder's namespace: " + string.Join(", ", internalInRoot));
    }

    [GeneratedRegex(@"^namespace\s+([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex NamespaceLine();

    [Fact]
    public void Each_file_is_in_its_folders_namespace_or_the_root_one()
    {
        var root = Path.Combine(Fixtures.RepositoryRoot, "src", "Clip.MLNet");
        var wrong = new List<string>();
        foreach (var file in Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(root, file);
            if (relative.StartsWith("obj", StringComparison.Ordinal) || relative.StartsWith("bin", StringComparison.Ordinal)) continue;
            var folder = relative.Split(Path.DirectorySeparatorChar)[0];
            if (folder == Path.GetFileName(file)) continue;
            var ns = NamespaceLine().Match(File.ReadAllText(file)).Groups[1].Value;
            string[] allowed = folder switch
            {
                "MLNet" => ["Clip.MLNet.Transforms", "Microsoft.ML"],
                "Batching" => ["Clip.MLNet.Batching", "Clip.MLNet.Transforms"], // BadRowHandling's first-release namespace
                _ => [$"Clip.MLNet.{folder}", "Clip.MLNet"],
            };
            if (!allowed.Contains(ns)) wrong.Add($"{relative} ({ns})");
        }
        Assert.True(wrong.Count == 0, "Files outside their folder's namespace (see ARCHITECTURE.md): " + string.Join(", ", wrong));
    }
}
