using System.Runtime.InteropServices;
using System.Xml.Linq;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Packaging;

[CollectionDefinition(Name)]
public sealed class PackagingCollection : ICollectionFixture<PackagedBuild>
{
    public const string Name = "Packaging";
}

/// <summary>
/// Both packages packed the way README says (<c>dotnet pack -c Release -o artifacts/packages</c>), once for the
/// packaging tests, and the tool installed from that folder. Everything that consumes them runs outside the
/// solution as on a fresh machine: an empty NuGet packages folder of its own for the whole run
/// (<see cref="PackagesFolder"/>; one per run, not per test, as libtorch is large) and an empty private cache of
/// the native library's loader (<see cref="NativeCache"/>), so no state of earlier runs is used.
/// </summary>
public sealed class PackagedBuild : IDisposable
{
    public PackagedBuild()
    {
        Repository = Fixtures.RepositoryRoot;
        Version = RepositoryFacts.Version;
        Feed = Path.Combine(Repository, "artifacts", "packages");
        Work = Path.Combine(Path.GetTempPath(), "clip-mlnet-tests", "packaging-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Work);
        Directory.CreateDirectory(Feed);
        foreach (var old in Directory.EnumerateFiles(Feed, $"Clip.MLNet*.{Version}.*nupkg"))
            File.Delete(old);

        // A build folder of its own (--artifacts-path), so packing never touches the solution's bin/obj.
        var build = Path.Combine(Work, "build");
        LibraryPack = ProcessRunner.Dotnet(["pack", "src/Clip.MLNet/Clip.MLNet.csproj", "-c", "Release", "-o", Feed,
            "--artifacts-path", build, "-nodeReuse:false"], Repository, timeout: TimeSpan.FromMinutes(5));
        Require(LibraryPack, "dotnet pack src/Clip.MLNet");
        // Only this machine's platform: each RID package carries its own libtorch (hundreds of MB to compress).
        ToolPack = ProcessRunner.Dotnet(["pack", "src/Clip.MLNet.Cli/Clip.MLNet.Cli.csproj", "-c", "Release", "-o", Feed,
            "--artifacts-path", build, $"-p:ToolPackageRuntimeIdentifiers={RuntimeInformation.RuntimeIdentifier}", "-nodeReuse:false"],
            Repository, timeout: TimeSpan.FromMinutes(8));
        Require(ToolPack, "dotnet pack src/Clip.MLNet.Cli");

        MachinePackagesFolder = System.Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // Empty, as on a fresh machine: everything the consumers use is restored into it by this run (NuGet's HTTP
        // cache keeps the downloads), so no earlier run's unpacked or changed files can make a test pass.
        PackagesFolder = Path.Combine(Work, "nuget-packages");
        Directory.CreateDirectory(PackagesFolder);
        // And an empty private cache of the native library's loader (ClipNative), shared by every consumer of the run.
        NativeCache = Path.Combine(Work, "native-cache");

        // The tool from the folder feed only (a tool package has no dependencies to find elsewhere).
        var config = Path.Combine(Work, "tool-nuget.config");
        File.WriteAllText(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);
        ToolPath = Path.Combine(Work, "tools");
        ToolInstall = ProcessRunner.Dotnet(["tool", "install", "Clip.MLNet.Cli", "--version", Version, "--tool-path", ToolPath, "--configfile", config],
            Work, Environment(), TimeSpan.FromMinutes(3));
        Require(ToolInstall, "dotnet tool install Clip.MLNet.Cli");
    }

    public string Repository { get; }
    public string Version { get; }
    /// <summary>The folder feed: the repository's artifacts/packages, as README's pack command makes it.</summary>
    public string Feed { get; }
    /// <summary>A temporary folder for this run, removed at the end.</summary>
    public string Work { get; }
    public string MachinePackagesFolder { get; }
    /// <summary>The NuGet packages folder of everything that consumes the packages under test: empty at the start of the run.</summary>
    public string PackagesFolder { get; }
    /// <summary>The private cache of ClipNative's loader for every consumer process: empty at the start of the run.</summary>
    public string NativeCache { get; }
    public string ToolPath { get; }
    internal ProcessRunner.Result LibraryPack { get; }
    internal ProcessRunner.Result ToolPack { get; }
    internal ProcessRunner.Result ToolInstall { get; }

    public string Clip => Path.Combine(ToolPath, "clip");

    /// <summary>The environment of everything that restores the packages under test.</summary>
    public Dictionary<string, string?> Environment(params (string Name, string? Value)[] more)
    {
        var env = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = PackagesFolder, ["CLIP_MLNET_NATIVE_CACHE"] = NativeCache };
        foreach (var (name, value) in more) env[name] = value;
        return env;
    }

    /// <summary>A new folder under <see cref="Work"/>.</summary>
    public string NewFolder(string name)
    {
        var path = Path.Combine(Work, name);
        Directory.CreateDirectory(path);
        return path;
    }

    private static void Require(ProcessRunner.Result result, string what)
    {
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"{what} failed with exit code {result.ExitCode}:\n{result.Tail()}");
    }

    public void Dispose()
    {
        // Deleting a symbolic link to a folder removes the link only: the machine's packages stay.
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Facts the build files state once: the package version and pinned dependency versions.</summary>
internal static class RepositoryFacts
{
    public static string Version =>
        XDocument.Load(Path.Combine(Fixtures.RepositoryRoot, "Directory.Build.props")).Descendants("Version").First().Value.Trim();

    public static string PackageVersion(string id) =>
        XDocument.Load(Path.Combine(Fixtures.RepositoryRoot, "Directory.Packages.props")).Descendants("PackageVersion")
            .First(e => string.Equals((string?)e.Attribute("Include"), id, StringComparison.OrdinalIgnoreCase)).Attribute("Version")!.Value;
}
