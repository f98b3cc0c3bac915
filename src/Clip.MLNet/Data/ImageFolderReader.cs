namespace Clip.MLNet.Data;

/// <summary>
/// Reads an image-classification dataset laid out as one sub-folder per class (<c>root/cat/001.jpg</c>,
/// <c>root/dog/xyz.png</c>), as torchvision's <c>ImageFolder</c> does: classes are the sub-folders' names in
/// sorted (ordinal) order, and a class's images are the files with an image extension anywhere under its folder,
/// in sorted order of their relative paths. Hidden (dot) folders and files are skipped (<c>.ipynb_checkpoints</c>,
/// macOS's <c>._photo.jpg</c>), which torchvision would take as a class or an image.
/// </summary>
public static class ImageFolderReader
{
    /// <summary>The extensions read by default: the formats <see cref="ClipImagePreprocessor"/> decodes.</summary>
    public static IReadOnlyList<string> DefaultExtensions { get; } = Array.AsReadOnly(new[] { ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp" });

    /// <summary>Reads the dataset under <paramref name="root"/>.</summary>
    /// <param name="root">The folder holding one sub-folder per class.</param>
    /// <param name="name">What to call the dataset (default: the folder's name).</param>
    /// <param name="extensions">File extensions that count as images, with the dot, matched ignoring case (default <see cref="DefaultExtensions"/>).</param>
    /// <returns>Rows with an <c>Image</c> path column and a <c>Label</c> key over the class names.</returns>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">No class folders, or a class folder without images (the message names them).</exception>
    public static ImageDataset Read(string root, string? name = null, IEnumerable<string>? extensions = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"{root}: no such folder.");
        var accepted = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);

        // Ordinal order, as Python's sorted() orders the names torchvision lists.
        var classDirs = Directory.GetDirectories(full).Where(d => !Path.GetFileName(d).StartsWith('.'))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal).ToArray();
        if (classDirs.Length == 0)
            throw new InvalidDataException($"{root}: no class folders (an image-folder dataset has one sub-folder per class, holding that class's images).");

        var paths = new List<string>();
        var labels = new List<int>();
        var empty = new List<string>();
        for (int c = 0; c < classDirs.Length; c++)
        {
            var files = Directory.EnumerateFiles(classDirs[c], "*", new EnumerationOptions { RecurseSubdirectories = true })
                .Where(f => accepted.Contains(Path.GetExtension(f)) && !Path.GetRelativePath(classDirs[c], f).Split('/', '\\').Any(part => part.StartsWith('.')))
                .OrderBy(f => Path.GetRelativePath(classDirs[c], f).Replace('\\', '/'), StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0) empty.Add(Path.GetFileName(classDirs[c]));
            paths.AddRange(files);
            labels.AddRange(Enumerable.Repeat(c, files.Count));
        }
        if (empty.Count > 0)
            throw new InvalidDataException($"{root}: no images ({string.Join(", ", accepted.Order(StringComparer.Ordinal))}) in the class folder(s) {string.Join(", ", empty.Select(e => $"'{e}'"))}.");
        var classNames = classDirs.Select(d => Path.GetFileName(d)!).ToArray();
        return ImageDataset.FromFiles(name ?? Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)),
            paths, labels, classNames, captions: null, source: full);
    }
}
