using Clip.MLNet.Tests.Native;
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
    public void Installed_tool_prints_help_and_embeds_with_no_setup_step()
    {
        var dir = packed.NewFolder("tool-run");
        var env = packed.Environment(("CLIP_MLNET_NATIVE_CACHE", Path.Combine(dir, "native-cache")));
        using var publishedFolder = new TempDir();
        var published = NativeLoaderTests.PublishedCopy(publishedFolder);

        var help = Clip(dir, env, "--help");
        Assert.True(help.ExitCode == 0, help.Tail());
        foreach (var command in new[] { "embed", "zero-shot" })
            Assert.Contains(command, help.StdOut);

        var texts = Path.Combine(dir, "captions.txt");
        File.WriteAllLines(texts, ReferenceData.Captions.Take(2));
        var output = Path.Combine(dir, "features.safetensors");
        string[] embed = ["embed", "--model", Fixtures.ReferencePath("vit", "openai_jit.pt"), "--vocab", Fixtures.Vocab,
            "--images", ReferenceData.ImagePaths[0], ReferenceData.ImagePaths[1], "--texts", texts, "--output", output];

        var run = Clip(dir, env, embed);
        Assert.True(run.ExitCode == 0, run.Tail());
        // The installed files stay as TorchSharp published them; a private copy is made only where the system needs one.
        Assert.Equal(File.ReadAllBytes(published), File.ReadAllBytes(InstalledNativeLibrary));
        var copies = Directory.Exists(Path.Combine(dir, "native-cache"))
            ? Directory.GetFiles(Path.Combine(dir, "native-cache"), "libLibTorchSharp.so", SearchOption.AllDirectories) : [];
        Assert.Equal(NativeLoaderTests.MachineLacksMarkerVersion(published) ? 1 : 0, copies.Length);
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
