namespace Clip.MLNet.Registry;

/// <summary>
/// The one place that decides whether a model argument is a path or a registered name, for every entry point that
/// takes either (<c>LoadClipModel</c>, the <c>clip</c> tool): a file or folder that exists wins; then a registered name,
/// downloaded into the cache; anything else is an error naming the closest registered names.
/// </summary>
internal static class ClipModelResolver
{
    /// <summary>Whether <paramref name="value"/> names a file or folder (and so is loaded as a path).</summary>
    public static bool IsPath(string value) => File.Exists(value) || Directory.Exists(value);

    /// <summary>Whether <paramref name="value"/> is loaded from the registry (it is no path, and a registered name).</summary>
    public static bool IsRegisteredName(string value, ClipPretrainedOptions? options = null) =>
        !IsPath(value) && ClipPretrained.ResolveRegistry(options).Find(value) is not null;

    /// <summary>Loads <paramref name="pathOrName"/> with <paramref name="options"/> (their <see cref="ClipPretrainedOptions.Load"/> for a path).</summary>
    /// <exception cref="FileNotFoundException">Neither a file or folder nor a registered name; the message gives the closest names.</exception>
    public static ClipModel Load(string pathOrName, ClipPretrainedOptions options)
    {
        ArgumentNullException.ThrowIfNull(pathOrName);
        if (IsPath(pathOrName)) return ClipModel.Load(pathOrName, options.Load);
        var registry = ClipPretrained.ResolveRegistry(options);
        if (registry.Find(pathOrName) is null)
            throw new FileNotFoundException(
                $"{pathOrName}: no such file or folder, and not a registered model name (closest: {string.Join(", ", registry.ClosestNames(pathOrName))}; " +
                "'clip models' lists them all)", pathOrName);
        return ClipModel.FromPretrained(pathOrName, options);
    }
}
