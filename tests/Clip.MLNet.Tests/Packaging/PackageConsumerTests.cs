using System.Globalization;
using System.Text.RegularExpressions;
using Clip.MLNet.Tests.Support;
using Microsoft.ML;

namespace Clip.MLNet.Tests.Packaging;

/// <summary>
/// An application outside the solution that references Clip.MLNet by version from the folder feed (package
/// source mapping: Clip.MLNet* from there, everything else from nuget.org) plus TorchSharp-cpu, whose program is
/// README's quickstart, and whose predictions must be the ones the library gives inside the solution.
/// </summary>
[Collection(PackagingCollection.Name)]
[Trait("Category", "Packaging")]
public sealed partial class PackageConsumerTests(PackagedBuild packed)
{
    private const string Marker = "<!-- quickstart:";
    private const string Pretrained = "ClipModel.FromPretrained(\"ViT-B/32\")";
    private static readonly string[] Photos = ["china.jpg", "flower.jpg", "china_rgba.png", "flower_gray.png"];

    /// <summary>The first C# block after the quickstart marker of a Markdown file.</summary>
    internal static string Quickstart(string markdownPath)
    {
        var text = File.ReadAllText(markdownPath).ReplaceLineEndings("\n");
        int at = text.IndexOf(Marker, StringComparison.Ordinal);
        Assert.True(at >= 0, $"{markdownPath} has no quickstart block (marked by a comment starting '{Marker}').");
        int start = text.IndexOf("```csharp\n", at, StringComparison.Ordinal) + "```csharp\n".Length;
        int end = text.IndexOf("```", start, StringComparison.Ordinal);
        return text[start..end];
    }

    [GeneratedRegex(@"ClipZeroShot\(model,\s*\[(?<classes>[^\]]*)\],\s*\[(?<templates>[^\]]*)\]\)")]
    private static partial Regex ZeroShotCall();

    [GeneratedRegex("\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"^(?<image>.+): (?<label>.+) \((?<p>[\d.,]+)\s*%\)$")]
    private static partial Regex PredictionLine();

    [Fact]
    public void Readme_quickstart_builds_from_the_package_and_predicts_what_the_library_predicts()
    {
        var code = Quickstart(Path.Combine(packed.Repository, "README.md"));
        Assert.Equal(code, Quickstart(Path.Combine(packed.Repository, "src", "Clip.MLNet", "PACKAGE.md"))); // the package's readme shows the same
        Assert.Contains(Pretrained, code);
        // The one change: the reference model from ../shared instead of a download (tests stay offline).
        var program = code.Replace(Pretrained,
            $"ClipModel.Load(@\"{Fixtures.ReferencePath("vit", "openai_jit.pt")}\", new ClipLoadOptions {{ VocabularyPath = @\"{Fixtures.Vocab}\" }})");

        var app = packed.NewFolder("consumer");
        File.WriteAllText(Path.Combine(app, "Program.cs"), program);
        File.WriteAllText(Path.Combine(app, "consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Clip.MLNet" Version="{packed.Version}" />
                <PackageReference Include="TorchSharp-cpu" Version="{RepositoryFacts.PackageVersion("TorchSharp-cpu")}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{packed.Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="local">
                  <package pattern="Clip.MLNet" />
                  <package pattern="Clip.MLNet.*" />
                </packageSource>
                <packageSource key="nuget.org">
                  <package pattern="*" />
                </packageSource>
              </packageSourceMapping>
            </configuration>
            """);
        var photos = Directory.CreateDirectory(Path.Combine(app, "photos")).FullName;
        foreach (var name in Photos) File.Copy(Fixtures.ReferencePath("images", name), Path.Combine(photos, name));

        var build = ProcessRunner.Dotnet(["build", "-c", "Release", "-nodeReuse:false"], app, packed.Environment(), TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, $"building the consumer app failed:\n{build.Tail()}");
        Assert.True(Directory.Exists(Path.Combine(packed.PackagesFolder, "clip.mlnet", packed.Version)), "Clip.MLNet was not restored from the folder feed");

        // No setup step: the app runs as built, and neither its copy nor the NuGet cache's is changed.
        var output = Path.Combine(app, "bin", "Release", "net10.0");
        var run = ProcessRunner.Dotnet([Path.Combine(output, "consumer.dll")], app, packed.Environment(), TimeSpan.FromMinutes(3));
        Assert.True(run.ExitCode == 0, $"the consumer app failed:\n{run.Tail()}");
        using (var dir = new TempDir())
        {
            var published = File.ReadAllBytes(Native.NativeLoaderTests.PublishedCopy(dir));
            var cached = Path.Combine(packed.PackagesFolder, "torchsharp", RepositoryFacts.PackageVersion("TorchSharp"), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            foreach (var library in Directory.EnumerateFiles(output, "libLibTorchSharp.so", SearchOption.AllDirectories).Append(cached))
                Assert.True(published.AsSpan().SequenceEqual(File.ReadAllBytes(library)), $"{library} differs from TorchSharp's published file");
        }

        var printed = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => PredictionLine().Match(l)).Where(m => m.Success)
            .ToDictionary(m => Path.GetFileName(m.Groups["image"].Value), m => (Label: m.Groups["label"].Value,
                Probability: double.Parse(m.Groups["p"].Value.Replace(',', '.'), CultureInfo.InvariantCulture) / 100));
        Assert.True(printed.Count == Photos.Length, $"expected one line per photo, got:\n{run.StdOut}");

        // The same pipeline inside the solution.
        var call = ZeroShotCall().Match(code);
        Assert.True(call.Success, "README's quickstart no longer calls ClipZeroShot(model, [classes], [templates]); update this test with it.");
        string[] Literals(string group) => StringLiteral().Matches(call.Groups[group].Value).Select(m => Regex.Unescape(m.Groups[1].Value)).ToArray();
        var classes = Literals("classes");
        var ml = new MLContext();
        var view = ReferenceData.ImageView(ml, Photos.Select(n => Path.Combine(photos, n)));
        using var zeroShot = ml.Transforms.ClipZeroShot(ReferenceData.Vit, classes, Literals("templates")).Fit(view);
        var scores = ReferenceData.Column(zeroShot.Transform(view), "Score");
        for (int i = 0; i < Photos.Length; i++)
        {
            int best = Array.IndexOf(scores[i], scores[i].Max());
            var (label, probability) = printed[Photos[i]];
            Assert.Equal(classes[best], label);
            Assert.InRange(probability, scores[i][best] - 0.0006, scores[i][best] + 0.0006); // printed as P1
        }
    }
}
