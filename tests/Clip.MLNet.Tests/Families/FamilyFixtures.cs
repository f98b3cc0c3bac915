using System.Text.Json.Nodes;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Families;

/// <summary>
/// ../shared/clip-families: open_clip hub folders of SigLIP, SigLIP2 (and the families of the next issue) with the
/// reference outputs. Tests fail, naming the missing path, when the fixtures are absent.
/// </summary>
internal static class FamilyFixtures
{
    public static string Root => Fixtures.Require(Path.Combine(Fixtures.Shared, "clip-families"));

    public static string Folder(string family) => Fixtures.Require(Path.Combine(Root, family));

    private static readonly Lazy<JsonNode> ManifestNode = new(() =>
        JsonNode.Parse(File.ReadAllText(Fixtures.Require(Path.Combine(Root, "manifest.json")))) ?? throw new InvalidOperationException("empty manifest"));

    public static JsonNode Manifest => ManifestNode.Value;

    /// <summary>The images of manifest.json, from ../clip-reference/images.</summary>
    public static IReadOnlyList<string> ImagePaths =>
        Manifest["images"]!.AsArray().Select(n => Fixtures.ReferencePath("images", (string)n!)).ToArray();

    public static IReadOnlyList<string> Texts => Manifest["texts"]!.AsArray().Select(n => (string)n!).ToArray();

    private static readonly Lazy<Dictionary<string, Tensor>> ExpectedTensors = new(() =>
    {
        using var file = SafetensorsFile.Open(Fixtures.Require(Path.Combine(Root, "expected.safetensors")));
        return file.Entries.ToDictionary(e => e.Name, e => file.Read(e).DetachFromDisposeScope());
    });

    /// <summary>A tensor of clip-families/expected.safetensors (shared; do not dispose).</summary>
    public static Tensor Expected(string name) => ExpectedTensors.Value.TryGetValue(name, out var t)
        ? t : throw new InvalidOperationException($"clip-families/expected.safetensors has no '{name}'");

    /// <summary>A writable copy of a family folder in a new temporary directory (for bad-input variants).</summary>
    public static string CopyFolder(string family, params string[] skip)
    {
        var target = Path.Combine(Path.GetTempPath(), $"clip-families-{family}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(Folder(family)))
            if (!skip.Contains(Path.GetFileName(file)))
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        foreach (var file in Directory.GetFiles(target)) File.SetAttributes(file, FileAttributes.Normal);
        return target;
    }

    /// <summary>Rewrites the folder's open_clip_config.json through <paramref name="change"/>.</summary>
    public static void EditConfig(string folder, Action<JsonObject> change)
    {
        var path = Path.Combine(folder, "open_clip_config.json");
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        change(root);
        File.WriteAllText(path, root.ToJsonString());
    }
}
