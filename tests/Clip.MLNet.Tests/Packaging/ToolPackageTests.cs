using System.IO.Compression;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Packaging;

/// <summary>The `clip` tool installed from the folder feed (<c>dotnet tool install --tool-path</c>), run as a user runs it.</summary>
[Collection(PackagingCollection.Name)]
[Trait("Category", "Packaging")]
public sealed class ToolPackageTests(PackagedBuild packed)
{
    private ProcessRunner.Result Clip(string workingDirectory, Dictionary<string, string?> environment, params string[] args) =>
        ProcessRunner.Run(packed.Clip, args, workingDirectory, environment, TimeSpan.FromMinutes(3));

    private string InstalledNativeLibrary =>
        Directory.EnumerateFiles(Path.Combine(packed.ToolPath, ".store"), "libLibTorchSharp.so", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).Single();

    [Fact]
    public void Installed_tool_prints_help_fixes_its_own_native_library_and_embeds()
    {
        var dir = packed.NewFolder("tool-run");
        // A NuGet cache of its own holding TorchSharp's library as published, so that the default
        // `clip fix-native` (own copy + NuGet cache) is seen to fix both without touching the machine's cache.
        var cache = Path.Combine(dir, "nuget-cache");
        var torchSharpVersion = RepositoryFacts.PackageVersion("TorchSharp");
        var cachedLibrary = Path.Combine(cache, "torchsharp", torchSharpVersion, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Directory.CreateDirectory(Path.GetDirectoryName(cachedLibrary)!);
        using (var nupkg = ZipFile.OpenRead(Path.Combine(packed.MachinePackagesFolder, "torchsharp", torchSharpVersion, $"torchsharp.{torchSharpVersion}.nupkg")))
            nupkg.GetEntry("runtimes/linux-x64/native/libLibTorchSharp.so")!.ExtractToFile(cachedLibrary);
        var env = packed.Environment(("NUGET_PACKAGES", cache));

        var help = Clip(dir, env, "--help");
        Assert.True(help.ExitCode == 0, help.Tail());
        foreach (var command in new[] { "embed", "zero-shot", "fix-native" })
            Assert.Contains(command, help.StdOut);

        var texts = Path.Combine(dir, "captions.txt");
        File.WriteAllLines(texts, ReferenceData.Captions.Take(2));
        var output = Path.Combine(dir, "features.safetensors");
        string[] embed = ["embed", "--model", Fixtures.ReferencePath("vit", "openai_jit.pt"), "--vocab", Fixtures.Vocab,
            "--images", ReferenceData.ImagePaths[0], ReferenceData.ImagePaths[1], "--texts", texts, "--output", output];

        if (PackagedBuild.MachineNeedsNativeFix)
        {
            // As installed, TorchSharp's library does not load here, and the tool says what to run.
            Assert.Equal(ElfVersionNeedState.Required, ElfVersionNeed.Inspect(InstalledNativeLibrary));
            var before = Clip(dir, env, embed);
            Assert.NotEqual(0, before.ExitCode);
            Assert.Contains("clip fix-native", before.StdErr);

            var fix = Clip(dir, env, "fix-native");
            Assert.True(fix.ExitCode == 0, fix.Tail());
            Assert.Contains($"{InstalledNativeLibrary}: GLIBCXX_3.4.32 marked weak", fix.StdOut);
            Assert.Contains($"{cachedLibrary}: GLIBCXX_3.4.32 marked weak", fix.StdOut);
            Assert.Equal(ElfVersionNeedState.Weak, ElfVersionNeed.Inspect(InstalledNativeLibrary));
            Assert.Equal(ElfVersionNeedState.Weak, ElfVersionNeed.Inspect(cachedLibrary));

            var again = Clip(dir, env, "fix-native");
            Assert.True(again.ExitCode == 0, again.Tail());
            Assert.Contains($"{InstalledNativeLibrary}: GLIBCXX_3.4.32 already weak", again.StdOut);
        }
        else
        {
            var fix = Clip(dir, env, "fix-native");
            Assert.True(fix.ExitCode == 0, fix.Tail());
            Assert.Contains("Nothing to do", fix.StdOut);
        }

        var run = Clip(dir, env, embed);
        Assert.True(run.ExitCode == 0, run.Tail());
        using var file = SafetensorsFile.Open(output);
        var features = file.Entries.ToDictionary(e => e.Name, e => file.Read(e));
        try
        {
            // Normalized features of the reference implementation, within DESIGN.md's 1e-4.
            using var expectedImages = nn.functional.normalize(Fixtures.Expected("vit.image_features").narrow(0, 0, 2).to(ScalarType.Float32), dim: 1);
            using var expectedTexts = nn.functional.normalize(Fixtures.Expected("vit.text_features").narrow(0, 0, 2).to(ScalarType.Float32), dim: 1);
            Assert.True(Fixtures.RelativeError(features["image_features"], expectedImages) < 1e-4);
            Assert.True(Fixtures.RelativeError(features["text_features"], expectedTexts) < 1e-4);
        }
        finally
        {
            foreach (var t in features.Values) t.Dispose();
        }
    }
}
