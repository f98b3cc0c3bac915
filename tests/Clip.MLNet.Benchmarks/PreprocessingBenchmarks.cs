using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;

namespace Clip.MLNet.Benchmarks;

/// <summary>
/// Decoding and preprocessing one 640×427 JPEG on one thread: the work the image pipelines overlap with
/// the forward pass. Needs the shared reference images (../shared beside the repository, or CLIP_SHARED).
/// </summary>
[SimpleJob(RuntimeMoniker.Net10_0, launchCount: 1, warmupCount: 3, iterationCount: 10)]
[MemoryDiagnoser]
public class PreprocessingBenchmarks
{
    private readonly ClipImagePreprocessor preprocessor = new(224);
    private readonly float[] destination = new float[3 * 224 * 224];
    private string path = "";

    [GlobalSetup]
    public void Setup()
    {
        var shared = Environment.GetEnvironmentVariable("CLIP_SHARED") is { Length: > 0 } s ? s : FindShared();
        path = Path.Combine(shared, "clip-reference", "images", "china.jpg");
        if (!File.Exists(path)) throw new FileNotFoundException("The reference photo is missing (set CLIP_SHARED).", path);
    }

    [Benchmark(Description = "china.jpg (640x427) -> [3,224,224]")]
    public void Jpeg() => preprocessor.PreprocessInto(path, destination);

    private static string FindShared()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Clip.MLNet.sln"))) return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        return "../shared";
    }
}
