using System.Text.Json.Nodes;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Packaging;

/// <summary>
/// Every notebook in notebooks/ executed headlessly by dotnet-repl (pinned in .config/dotnet-tools.json), as
/// committed: started in notebooks/ so that notebooks/NuGet.config brings Clip.MLNet from artifacts/packages,
/// where <see cref="PackagedBuild"/> packed it. A cell that fails fails the test with its error. The executed
/// copies are kept in artifacts/notebooks/ to look at.
/// </summary>
[Collection(PackagingCollection.Name)]
[Trait("Category", "Packaging")]
public sealed class NotebookTests(PackagedBuild packed)
{
    public static TheoryData<string> Notebooks()
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.GetFiles(Path.Combine(Fixtures.RepositoryRoot, "notebooks"), "*.ipynb").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(path));
        return data;
    }

    private static readonly object ToolRestore = new();
    private static bool toolsRestored;

    /// <summary>Runs one notebook; returns dotnet-repl's result and the executed notebook.</summary>
    private (ProcessRunner.Result Run, JsonNode Executed) Execute(string notebook, string workingDirectory, string outputFolder)
    {
        lock (ToolRestore)
        {
            if (!toolsRestored)
            {
                // Into the run's own packages folder, where `dotnet tool run` looks for it.
                var restore = ProcessRunner.Dotnet(["tool", "restore"], packed.Repository, packed.Environment(), TimeSpan.FromMinutes(3));
                Assert.True(restore.ExitCode == 0, $"dotnet tool restore failed:\n{restore.Tail()}");
                toolsRestored = true;
            }
        }
        Directory.CreateDirectory(outputFolder);
        var output = Path.Combine(outputFolder, Path.GetFileName(notebook));
        File.Delete(output);
        var home = packed.NewFolder("kernel-home");
        var realHome = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var run = ProcessRunner.Dotnet(["tool", "run", "dotnet-repl", "--", "--run", notebook, "--exit-after-run", "--output-path", output],
            workingDirectory, packed.Environment(
                // The kernel caches package resolutions under ~/.packagemanagement by their references alone: a home
                // of its own so that this run's packages are the ones resolved. The dotnet CLI's own state stays.
                ("HOME", home), ("DOTNET_CLI_HOME", realHome)),
            TimeSpan.FromMinutes(6));
        Assert.True(File.Exists(output), $"dotnet-repl wrote no executed notebook (exit code {run.ExitCode}):\n{run.Tail()}");
        return (run, JsonNode.Parse(File.ReadAllText(output))!);
    }

    private static List<string> CellErrors(JsonNode executed) =>
        executed["cells"]!.AsArray()
            .Select((cell, index) => (cell, index))
            .SelectMany(c => (c.cell!["outputs"]?.AsArray() ?? []).Where(o => (string?)o!["output_type"] == "error")
                .Select(o => $"cell {c.index} ({FirstLine(c.cell!)}): {(string?)o!["ename"]}: {(string?)o!["evalue"]}"))
            .ToList();

    private static string FirstLine(JsonNode cell)
    {
        var source = cell["source"] is JsonArray lines ? string.Concat(lines.Select(l => (string?)l)) : (string?)cell["source"] ?? "";
        return source.Split('\n').FirstOrDefault(l => !string.IsNullOrWhiteSpace(l))?.Trim() ?? "";
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_runs_without_a_cell_error_and_shows_pictures(string name)
    {
        // The notebooks name the version that README's pack command makes.
        var notebooks = Path.Combine(packed.Repository, "notebooks");
        Assert.Contains($"#r \\\"nuget: Clip.MLNet, {packed.Version}\\\"", File.ReadAllText(Path.Combine(notebooks, name)));

        // No setup step: the notebook runs as committed, with the run's empty packages folder and native cache.
        var (run, executed) = Execute(name, notebooks, Path.Combine(packed.Repository, "artifacts", "notebooks"));
        var errors = CellErrors(executed);
        Assert.True(errors.Count == 0, $"{name}: {string.Join("\n", errors)}");
        Assert.True(run.ExitCode == 0, $"{name}: dotnet-repl exited with {run.ExitCode}:\n{run.Tail()}");
        // What a person looks at: at least one picture rendered as a PNG.
        Assert.Contains("data:image/png;base64,", executed.ToJsonString());
    }

    [Fact]
    public void A_failing_cell_fails_the_run()
    {
        // The harness itself: dotnet-repl must report a cell error both in its exit code and in the executed notebook.
        var dir = packed.NewFolder("failing-notebook");
        var notebook = Path.Combine(dir, "failing.ipynb");
        JsonObject Cell(string source) => new()
        {
            ["cell_type"] = "code", ["execution_count"] = null, ["outputs"] = new JsonArray(),
            ["metadata"] = new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" } },
            ["source"] = new JsonArray(source),
        };
        var doc = new JsonObject
        {
            ["cells"] = new JsonArray(Cell("var ok = 1 + 1;"), Cell("throw new InvalidOperationException(\"deliberate\");"), Cell("Console.WriteLine(ok);")),
            ["metadata"] = new JsonObject
            {
                ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
                ["language_info"] = new JsonObject { ["name"] = "polyglot-notebook" },
                ["polyglot_notebook"] = new JsonObject { ["kernelInfo"] = new JsonObject { ["defaultKernelName"] = "csharp" } },
            },
            ["nbformat"] = 4, ["nbformat_minor"] = 4,
        };
        File.WriteAllText(notebook, doc.ToJsonString());
        var (run, executed) = Execute(notebook, packed.Repository, Path.Combine(dir, "out"));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(CellErrors(executed));
        Assert.Contains("deliberate", error);
    }
}
