using System.Text.RegularExpressions;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Search;

/// <summary>A test that needs Debian's chromium: skipped when it is missing outside CI; with <c>CI=true</c> a missing browser fails.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Path is null && !Chromium.IsCI)
            Skip = "chromium is not installed (apt-get install -y chromium); under CI=true this test fails instead";
    }
}

/// <summary>Headless Chromium, one fresh profile per run.</summary>
internal static class Chromium
{
    public static bool IsCI => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? Path => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists);

    /// <summary>Loads <paramref name="url"/>, lets it run (images, fetches) and returns the DOM as it is then.</summary>
    public static string DumpDom(string url)
    {
        var browser = Path ?? throw new InvalidOperationException("chromium is not installed (apt-get install -y chromium; .ci/run installs it)");
        using var profile = new TempDir();
        var result = ProcessRunner.Run(browser,
            ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--user-data-dir=" + profile.Path, "--virtual-time-budget=10000", "--dump-dom", url],
            profile.Path, timeout: TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, result.Tail());
        return result.StdOut;
    }
}

/// <summary>The search page in a real browser: the results of <c>?q=</c> render as loaded images.</summary>
[Collection(SearchCollection.Name)]
public sealed partial class SearchPageBrowserTests(SearchCorpus corpus)
{
    [ChromiumFact]
    public void ALinkedSearchShowsItsResultsAsLoadedImages()
    {
        var dom = Chromium.DumpDom(corpus.ServerUrl + "/?q=a+photo+of+a+temple");
        var images = ResultImage().Matches(dom).Select(m => m.Value).ToList();
        Assert.True(images.Count >= 10, $"{images.Count} result images in the page:\n{dom[..Math.Min(dom.Length, 3000)]}");
        // data-loaded is naturalWidth, set by the image's load event: the thumbnail arrived and decoded.
        var loaded = images.Select(i => LoadedWidth().Match(i)).Where(m => m.Success && int.Parse(m.Groups[1].Value) > 0).Count();
        Assert.True(loaded >= 5, $"{loaded} of {images.Count} result images loaded:\n{string.Join("\n", images.Take(12))}");
        Assert.Contains("value=\"a photo of a temple\"", dom);
    }

    [GeneratedRegex("<img class=\"result\"[^>]*>")]
    private static partial Regex ResultImage();

    [GeneratedRegex("data-loaded=\"(\\d+)\"")]
    private static partial Regex LoadedWidth();
}
