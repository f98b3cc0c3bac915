using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Clip.MLNet.Tests.Packaging;

/// <summary>What `dotnet pack` makes: metadata, dependencies and contents of both packages.</summary>
[Collection(PackagingCollection.Name)]
[Trait("Category", "Packaging")]
public sealed class PackageContentTests(PackagedBuild packed)
{
    private string PackagePath(string id) => Path.Combine(packed.Feed, $"{id}.{packed.Version}.nupkg");

    private static XElement Metadata(ZipArchive package)
    {
        var nuspec = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = nuspec.Open();
        var doc = XDocument.Load(stream);
        return doc.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string? Field(XElement metadata, string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    [Fact]
    public void Packing_prints_no_warnings()
    {
        foreach (var (what, result) in new[] { ("Clip.MLNet", packed.LibraryPack), ("Clip.MLNet.Cli", packed.ToolPack) })
        {
            var warnings = result.Output.Split('\n').Where(l => Regex.IsMatch(l, @"\bwarning\b|missing a readme", RegexOptions.IgnoreCase)).ToList();
            Assert.True(warnings.Count == 0, $"packing {what} warned:\n{string.Join('\n', warnings)}");
        }
    }

    [Fact]
    public void Library_package_has_complete_metadata_and_exactly_its_dependencies()
    {
        using var package = ZipFile.OpenRead(PackagePath("Clip.MLNet"));
        var m = Metadata(package);
        Assert.Equal("Clip.MLNet", Field(m, "id"));
        Assert.Equal(packed.Version, Field(m, "version"));
        Assert.False(string.IsNullOrWhiteSpace(Field(m, "authors")));
        Assert.False(string.IsNullOrWhiteSpace(Field(m, "description")));
        Assert.False(string.IsNullOrWhiteSpace(Field(m, "releaseNotes")));
        Assert.Contains("zero-shot", Field(m, "tags"));
        var license = m.Elements().Single(e => e.Name.LocalName == "license");
        Assert.Equal("expression", (string?)license.Attribute("type"));
        Assert.Equal("MIT", license.Value);
        Assert.False(string.IsNullOrEmpty((string?)m.Elements().Single(e => e.Name.LocalName == "repository").Attribute("url")));
        Assert.Equal("README.md", Field(m, "readme"));
        Assert.NotNull(package.GetEntry("README.md"));
        Assert.NotNull(package.GetEntry("THIRD-PARTY-NOTICES.md"));

        // TorchSharp, not a backend: the application chooses CPU or CUDA. Nothing test-only (ONNX Runtime included).
        var dependencies = m.Descendants().Where(e => e.Name.LocalName == "dependency")
            .Select(e => $"{e.Attribute("id")!.Value} {e.Attribute("version")!.Value}").Order(StringComparer.Ordinal).ToArray();
        string[] expected =
        [
            $"Google.Protobuf {RepositoryFacts.PackageVersion("Google.Protobuf")}",
            $"Microsoft.ML {RepositoryFacts.PackageVersion("Microsoft.ML")}",
            $"Microsoft.ML.ImageAnalytics {RepositoryFacts.PackageVersion("Microsoft.ML.ImageAnalytics")}",
            $"Microsoft.ML.Tokenizers {RepositoryFacts.PackageVersion("Microsoft.ML.Tokenizers")}",
            $"Parquet.Net {RepositoryFacts.PackageVersion("Parquet.Net")}",   // clip index's metadata and manifests
            $"SkiaSharp {RepositoryFacts.PackageVersion("SkiaSharp")}",
            $"TorchSharp {RepositoryFacts.PackageVersion("TorchSharp")}",
        ];
        Assert.Equal(expected, dependencies);

        // The library and its docs only: no native binaries (patched or not), no third-party assemblies.
        var files = package.Entries.Select(e => e.FullName).Where(n => n.StartsWith("lib/", StringComparison.Ordinal) || n.StartsWith("runtimes/", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(["lib/net10.0/Clip.MLNet.dll", "lib/net10.0/Clip.MLNet.xml"], files);

        using var symbols = ZipFile.OpenRead(Path.Combine(packed.Feed, $"Clip.MLNet.{packed.Version}.snupkg"));
        Assert.NotNull(symbols.GetEntry("lib/net10.0/Clip.MLNet.pdb"));
    }

    [Fact]
    public void Tool_packages_are_a_clip_command_with_a_backend_and_TorchSharps_binary_as_published()
    {
        using var pointer = ZipFile.OpenRead(PackagePath("Clip.MLNet.Cli"));
        var m = Metadata(pointer);
        Assert.Equal("DotnetTool", m.Descendants().Single(e => e.Name.LocalName == "packageType").Attribute("name")!.Value);
        Assert.Equal("MIT", m.Elements().Single(e => e.Name.LocalName == "license").Value);
        Assert.Equal("README.md", Field(m, "readme"));

        var rid = RuntimeInformation.RuntimeIdentifier;
        using var package = ZipFile.OpenRead(PackagePath($"Clip.MLNet.Cli.{rid}"));
        var settings = package.Entries.Single(e => e.FullName.EndsWith("/DotnetToolSettings.xml", StringComparison.Ordinal));
        using (var s = settings.Open())
            Assert.Equal("clip", XDocument.Load(s).Descendants("Command").Single().Attribute("Name")!.Value);
        var names = package.Entries.Select(e => e.FullName).ToList();
        Assert.Contains(names, n => n.EndsWith("/TorchSharp.dll", StringComparison.Ordinal));
        Assert.Contains(names, n => n.EndsWith("/libtorch_cpu.so", StringComparison.Ordinal) || n.EndsWith("/torch_cpu.dll", StringComparison.Ordinal));
        Assert.Contains("THIRD-PARTY-NOTICES.md", names);
        Assert.Contains("licenses/LICENSE-LIBTORCH.txt", names);

        // The package carries TorchSharp's file as published; the loader makes any private copy on the user's machine.
        var native = package.Entries.SingleOrDefault(e => e.Name == "libLibTorchSharp.so");
        if (native is not null)
        {
            var folder = packed.NewFolder("packed-native");
            var copy = Path.Combine(folder, native.Name);
            native.ExtractToFile(copy, overwrite: true);
            using var dir = new Support.TempDir();
            Assert.Equal(File.ReadAllBytes(Native.NativeLoaderTests.PublishedCopy(dir)), File.ReadAllBytes(copy));
        }
    }
}
