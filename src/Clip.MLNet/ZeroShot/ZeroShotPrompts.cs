using System.Text.Json;
using System.Text.Json.Nodes;

namespace Clip.MLNet;

/// <summary>
/// Class names and prompt templates for zero-shot classification. A class is a list of synonyms
/// (usually one name; FER2013's emotions have several), identified by its position: names may repeat
/// (ImageNet's list does). Templates hold <c>{}</c> where the class name goes.
/// </summary>
public sealed class ZeroShotPrompts
{
    /// <summary>The single template <c>{}</c>: the class name alone.</summary>
    public static readonly IReadOnlyList<string> NameOnly = new[] { "{}" };

    /// <summary>Creates prompts from classes (each a list of synonyms) and templates.</summary>
    /// <exception cref="ArgumentException">No classes, an empty synonym list, no templates, or a template without <c>{}</c>.</exception>
    public ZeroShotPrompts(IReadOnlyList<IReadOnlyList<string>> classes, IReadOnlyList<string>? templates = null)
    {
        ArgumentNullException.ThrowIfNull(classes);
        templates ??= NameOnly;
        if (classes.Count == 0) throw new ArgumentException("Zero-shot classification needs at least one class.", nameof(classes));
        for (int i = 0; i < classes.Count; i++)
            if (classes[i] is null || classes[i].Count == 0 || classes[i].Any(n => n is null))
                throw new ArgumentException($"Class {i} has no name.", nameof(classes));
        if (templates.Count == 0) throw new ArgumentException("At least one template is needed (\"{}\" uses the class name alone).", nameof(templates));
        foreach (var t in templates)
            if (t is null || !t.Contains("{}", StringComparison.Ordinal))
                throw new ArgumentException($"The template \"{t}\" has no {{}} where the class name goes.", nameof(templates));
        Classes = classes.Select(c => (IReadOnlyList<string>)c.ToArray()).ToArray();
        Templates = templates.ToArray();
    }

    /// <summary>Creates prompts from one name per class.</summary>
    public ZeroShotPrompts(IEnumerable<string> classNames, IReadOnlyList<string>? templates = null)
        : this(classNames.Select(n => (IReadOnlyList<string>)new[] { n }).ToArray(), templates) { }

    /// <summary>The classes, each a list of synonyms; the first synonym is the class's display name.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Classes { get; }

    /// <summary>The prompt templates.</summary>
    public IReadOnlyList<string> Templates { get; }

    /// <summary>One display name per class (its first synonym), in class order.</summary>
    public IReadOnlyList<string> ClassNames => Classes.Select(c => c[0]).ToArray();

    /// <summary>The prompt a template makes for a name (every <c>{}</c> replaced, as Python's str.format does with one argument).</summary>
    public static string Fill(string template, string name) => template.Replace("{}", name, StringComparison.Ordinal);

    /// <summary>
    /// Reads classes and templates from JSON: either <c>{"classes": [...], "templates": [...]}</c>, or a
    /// collection shaped like the CLIP paper's prompt file, <c>{"datasets": {"NAME": {"classes", "templates"}}}</c>,
    /// from which <paramref name="dataset"/> picks one (required when there are several). A class is a
    /// string or a list of synonyms.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not such JSON, or the dataset is not in it (the message lists those that are).</exception>
    public static ZeroShotPrompts Load(string path, string? dataset = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such prompts file.", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e); }
        var node = root;
        if (root?["datasets"] is JsonObject datasets)
        {
            if (dataset is null)
            {
                if (datasets.Count != 1)
                    throw new InvalidDataException($"{path}: holds {datasets.Count} datasets; name one ({string.Join(", ", datasets.Select(d => d.Key))}).");
                node = datasets.First().Value;
            }
            else
            {
                node = datasets.FirstOrDefault(d => string.Equals(d.Key, dataset, StringComparison.OrdinalIgnoreCase)).Value
                    ?? throw new InvalidDataException($"{path}: no dataset '{dataset}' (it has {string.Join(", ", datasets.Select(d => d.Key))}).");
            }
        }
        try
        {
            var classes = (node?["classes"] as JsonArray ?? throw new InvalidDataException("no \"classes\" list"))
                .Select(c => c is JsonArray synonyms
                    ? (IReadOnlyList<string>)synonyms.Select(s => s!.GetValue<string>()).ToArray()
                    : new[] { c!.GetValue<string>() })
                .ToArray();
            var templates = (node?["templates"] as JsonArray)?.Select(t => t!.GetValue<string>()).ToArray() ?? NameOnly;
            return new ZeroShotPrompts(classes, templates);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or InvalidDataException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a prompts file: {e.Message}", e);
        }
    }
}
