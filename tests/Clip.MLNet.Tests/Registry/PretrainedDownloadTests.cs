using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Registry;

/// <summary>
/// <see cref="ClipModel.FromPretrained"/> against a local server on 127.0.0.1 serving the reference ViT in
/// open_clip's hub layout under a test registry: downloads, verification, the cache, resume, offline mode,
/// two processes at once. Nothing here reaches outside the machine.
/// </summary>
public sealed class PretrainedDownloadTests : IDisposable
{
    private const string Repo = "test/tiny-vit";
    private const string WeightsPath = "/" + Repo + "/resolve/main/open_clip_model.safetensors";
    private const string ConfigPath = "/" + Repo + "/resolve/main/open_clip_config.json";
    private const string VocabPath = "/vocab/bpe_simple_vocab_16e6.txt.gz";

    // The reference ViT's hyper-parameters as open_clip writes them (heads: 128 / 64 = 2 for vision, 1 for text).
    private const string OpenClipConfig = """
        {"model_cfg": {"embed_dim": 64, "quick_gelu": true,
          "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}},
         "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}
        """;

    private readonly LocalHttpServer server = new();
    private readonly TempDir temp = new();
    private readonly byte[] weights = File.ReadAllBytes(Fixtures.ReferencePath("vit", "open_clip_model.safetensors"));
    private readonly byte[] vocab = File.ReadAllBytes(Fixtures.Vocab);
    private readonly byte[] config = Encoding.UTF8.GetBytes(OpenClipConfig);

    public PretrainedDownloadTests()
    {
        server.Serve(WeightsPath, weights);
        server.Serve(ConfigPath, config);
        server.Serve(VocabPath, vocab);
    }

    public void Dispose()
    {
        server.Dispose();
        temp.Dispose();
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private string RegistryJson(string weightsSha = "") => """
        {
          "format": "clip.mlnet.registry", "version": 1,
          "vocabularies": {"clip-bpe": {"url": "@BASE@/vocab/bpe_simple_vocab_16e6.txt.gz", "sha256": "@VOCAB_SHA@"}},
          "models": [
            {"name": "Tiny-ViT", "aliases": ["tiny"], "image_size": 224, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
             "activation": "quick_gelu", "tokenizer": "clip-bpe",
             "sources": [{"hub": "test/tiny-vit", "layout": "open_clip", "files": [{"path": "open_clip_model.safetensors", "sha256": "@WEIGHTS_SHA@"}, "open_clip_config.json"]}]},
            {"name": "Tiny-ViT-unpinned", "image_size": 224, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
             "activation": "quick_gelu", "tokenizer": "clip-bpe",
             "sources": [{"hub": "test/tiny-vit", "layout": "open_clip"}]},
            {"name": "Tiny-ViT-gelu", "image_size": 224, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
             "activation": "gelu", "tokenizer": "clip-bpe",
             "sources": [{"hub": "test/tiny-vit", "layout": "open_clip"}]},
            {"name": "Tiny-ViT-fallback", "image_size": 224, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
             "activation": "quick_gelu", "tokenizer": "clip-bpe",
             "sources": [{"hub": "test/missing", "layout": "open_clip"},
                         {"url": "@BASE@/files/tiny-vit.safetensors", "sha256": "@WEIGHTS_SHA@"}]},
            {"name": "Tiny-ViT-336", "image_size": 336, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
             "activation": "quick_gelu", "tokenizer": "clip-bpe",
             "sources": [{"hub": "test/tiny-vit", "layout": "open_clip"}]}
          ]
        }
        """.Replace("@BASE@", server.BaseUrl).Replace("@VOCAB_SHA@", Sha(vocab)).Replace("@WEIGHTS_SHA@", weightsSha == "" ? Sha(weights) : weightsSha);

    private ClipPretrainedOptions Options(Action<ClipPretrainedOptions>? configure = null, string weightsSha = "")
    {
        var options = new ClipPretrainedOptions
        {
            Registry = ClipModelRegistry.Parse(RegistryJson(weightsSha), "test registry"),
            CacheFolder = temp.File("cache"),
            HubEndpoint = server.BaseUrl,
            Offline = false,
        };
        configure?.Invoke(options);
        return options;
    }

    private string CachedWeights => Path.Combine(temp.Path, "cache", "hub", "test--tiny-vit", "main", "open_clip", "open_clip_model.safetensors");

    private static void AssertComputesTheReference(ClipModel model, string prefix = "vit")
    {
        using var scope = NewDisposeScope();
        var image = model.EncodeImage(Fixtures.Expected("pixel_values_224"));
        Assert.InRange(Fixtures.RelativeError(image, Fixtures.Expected($"{prefix}.image_features")), 0, 1e-4);
        Assert.NotNull(model.Tokenizer);
        var tokens = model.Tokenizer!.Tokenize(ReferenceData.Captions);
        Assert.Equal(Fixtures.Expected("text_tokens").to(ScalarType.Int64).data<long>().ToArray(), tokens.data<long>().ToArray());
        var text = model.EncodeText(tokens);
        Assert.InRange(Fixtures.RelativeError(text, Fixtures.Expected($"{prefix}.text_features")), 0, 1e-4);
    }

    private sealed class Recorder : IProgress<ClipDownloadProgress>
    {
        public List<ClipDownloadProgress> Reports { get; } = new();
        public Action<ClipDownloadProgress>? OnReport { get; set; }
        public void Report(ClipDownloadProgress value)
        {
            lock (Reports) Reports.Add(value);
            OnReport?.Invoke(value);
        }
    }

    [Fact]
    public void FirstUseDownloadsAndVerifies_TheModelComputes_SecondUseDoesNotTouchTheServer()
    {
        var progress = new Recorder();
        using (var model = ClipModel.FromPretrained("tiny-vit", Options(o => o.Progress = progress)))
            AssertComputesTheReference(model);
        Assert.Equal(1, server.CountRequests(WeightsPath));
        Assert.Equal(1, server.CountRequests(ConfigPath));
        Assert.Equal(1, server.CountRequests(VocabPath));
        Assert.Contains(progress.Reports, p => p.Completed && p.File == "open_clip_model.safetensors" && p.BytesReceived == weights.Length);
        Assert.Contains(progress.Reports, p => p.Completed && p.File == "bpe_simple_vocab_16e6.txt.gz");
        Assert.Equal(weights, File.ReadAllBytes(CachedWeights));
        Assert.Empty(Directory.GetFiles(Path.Combine(temp.Path, "cache"), "*.part", SearchOption.AllDirectories));

        int before = server.Requests.Count;
        var again = new Recorder();
        using (var model = ClipModel.FromPretrained("Tiny-ViT", Options(o => o.Progress = again)))
            AssertComputesTheReference(model);
        Assert.Equal(before, server.Requests.Count);
        Assert.Empty(again.Reports);
    }

    [Fact]
    public void TheRegistryActivationIsUsed_UnlessTheOptionsNameOne()
    {
        using (var gelu = ClipModel.FromPretrained("Tiny-ViT-gelu", Options()))
        {
            Assert.Equal(ClipActivation.Gelu, gelu.Config.Activation);
            AssertComputesTheReference(gelu, "vit_gelu");
        }
        using var quick = ClipModel.FromPretrained("Tiny-ViT-gelu", Options(o => o.Activation = ClipActivation.QuickGelu));
        Assert.Equal(ClipActivation.QuickGelu, quick.Config.Activation);
    }

    [Fact]
    public void AnUnpinnedFileIsCheckedAgainstTheHubsDeclaredHash_ThenHeldToTheRecordedOne()
    {
        // As the hub does: the resolve URL redirects (relative Location) to the blob, declaring its SHA-256 on the redirect.
        server.Serve(WeightsPath, [], f => { f.RedirectTo = "/cdn/blob"; f.DeclaredSha256 = Sha(weights); });
        server.Serve("/cdn/blob", weights);
        using (var model = ClipModel.FromPretrained("Tiny-ViT-unpinned", Options()))
            AssertComputesTheReference(model);
        Assert.Equal(1, server.CountRequests("/cdn/blob"));
        var record = File.ReadAllText(CachedWeights + ".sha256");
        Assert.StartsWith(Sha(weights) + "  open_clip_model.safetensors", record);

        // A cached file that no longer matches its record is set aside, never used; offline that is an error.
        var tampered = (byte[])weights.Clone();
        tampered[1000] ^= 1;
        File.WriteAllBytes(CachedWeights, tampered);
        var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT-unpinned", Options(o => o.Offline = true)));
        Assert.Equal(ClipDownloadFailure.HashMismatch, e.Failure);
        Assert.Contains(Sha(weights), e.Message);
        Assert.True(File.Exists(CachedWeights + ".mismatch"));
        Assert.False(File.Exists(CachedWeights));

        // Online, the file is fetched again and must match the record.
        using (var model = ClipModel.FromPretrained("Tiny-ViT-unpinned", Options()))
            AssertComputesTheReference(model);
        Assert.Equal(2, server.CountRequests("/cdn/blob"));
    }

    [Fact]
    public void ACorruptedResponseIsRefusedAndNotCached()
    {
        server.Serve(WeightsPath, weights, f => f.Corrupt = true);
        var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT", Options()));
        Assert.Equal(ClipDownloadFailure.HashMismatch, e.Failure);
        Assert.Contains(Sha(weights), e.Message);
        Assert.False(File.Exists(CachedWeights));
        Assert.False(File.Exists(CachedWeights + ".part"));
        Assert.NotNull(e.RejectedPath);
        Assert.True(File.Exists(e.RejectedPath), "the refused file is kept aside for inspection");

        // Unpinned, the hub's declared hash catches the same corruption; nothing is recorded.
        server.Serve(WeightsPath, weights, f => { f.Corrupt = true; f.DeclaredSha256 = Sha(weights); });
        e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT-unpinned", Options()));
        Assert.Equal(ClipDownloadFailure.HashMismatch, e.Failure);
        Assert.False(File.Exists(CachedWeights));
        Assert.False(File.Exists(CachedWeights + ".sha256"));

        // Once the server is right again, the download succeeds.
        server.Serve(WeightsPath, weights);
        using var model = ClipModel.FromPretrained("Tiny-ViT", Options());
        AssertComputesTheReference(model);
    }

    [Fact]
    public void AnInterruptedDownloadResumesWithARange()
    {
        const long dropAt = 3 << 20;
        server.Serve(WeightsPath, weights, f => f.DropFirstAfter = dropAt);
        using (var model = ClipModel.FromPretrained("Tiny-ViT", Options()))
            AssertComputesTheReference(model);
        var requests = server.Requests.Where(r => r.Path == WeightsPath).ToList();
        Assert.Equal(2, requests.Count);
        Assert.Null(requests[0].Range);
        Assert.NotNull(requests[1].Range);
        long resumedAt = long.Parse(requests[1].Range!["bytes=".Length..^1]);
        Assert.InRange(resumedAt, 1, dropAt);
    }

    [Fact]
    public void ACancelledDownloadKeepsItsPart_AndTheNextCallResumesIt()
    {
        server.Serve(WeightsPath, weights, f => f.ChunkDelay = TimeSpan.FromMilliseconds(20));
        using var cts = new CancellationTokenSource();
        var progress = new Recorder { OnReport = p => { if (p.File == "open_clip_model.safetensors" && p.BytesReceived >= 1 << 20) cts.Cancel(); } };
        Assert.ThrowsAny<OperationCanceledException>(() => ClipModel.FromPretrained("Tiny-ViT", Options(o => { o.Progress = progress; o.CancellationToken = cts.Token; })));
        Assert.False(File.Exists(CachedWeights));
        long kept = new FileInfo(CachedWeights + ".part").Length;
        Assert.InRange(kept, 1 << 20, weights.Length - 1);

        server.Serve(WeightsPath, weights);
        using (var model = ClipModel.FromPretrained("Tiny-ViT", Options()))
            AssertComputesTheReference(model);
        var last = server.Requests.Last(r => r.Path == WeightsPath);
        Assert.Equal($"bytes={kept}-", last.Range);
    }

    [Fact]
    public void OfflineWithAnEmptyCacheFails_NamingTheUrlAndWhereToPlaceTheFile()
    {
        var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT", Options(o => o.Offline = true)));
        Assert.Equal(ClipDownloadFailure.Offline, e.Failure);
        Assert.Contains(server.BaseUrl + WeightsPath, e.Message);
        Assert.Contains(CachedWeights, e.Message);
        Assert.Contains("offline", e.Message);
        Assert.Empty(server.Requests);

        // Placed by hand where the message says, the files are used offline.
        Directory.CreateDirectory(Path.GetDirectoryName(CachedWeights)!);
        File.WriteAllBytes(CachedWeights, weights);
        File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(CachedWeights)!, "open_clip_config.json"), config);
        using var model = ClipModel.FromPretrained("Tiny-ViT", Options(o => { o.Offline = true; o.VocabularyPath = Fixtures.Vocab; }));
        AssertComputesTheReference(model);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void NoServerFails_NamingTheUrlAndTheCachePath()
    {
        var options = Options(o => o.HubEndpoint = "http://127.0.0.1:9"); // the discard port: nothing listens
        var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT", options));
        Assert.Equal(ClipDownloadFailure.Unreachable, e.Failure);
        Assert.Contains("http://127.0.0.1:9/" + Repo, e.Message);
        Assert.Contains(Path.Combine(temp.Path, "cache"), e.Message);
    }

    [Fact]
    public void AMissingSourceFallsBackToTheNext()
    {
        server.Serve("/files/tiny-vit.safetensors", weights);
        using var model = ClipModel.FromPretrained("Tiny-ViT-fallback", Options());
        AssertComputesTheReference(model);
        Assert.Equal(1, server.CountRequests("/test/missing/resolve/main/open_clip_config.json"));
        Assert.Equal(0, server.CountRequests("/test/missing/resolve/main/open_clip_model.safetensors")); // the small file failed first
        Assert.True(File.Exists(Path.Combine(temp.Path, "cache", "url", "127.0.0.1_" + new Uri(server.BaseUrl).Port, "files", "tiny-vit.safetensors")));
    }

    [Fact]
    public void AFullDiskIsReportedBeforeAnythingIsWritten()
    {
        server.Serve(WeightsPath, weights, f => f.DeclaredLength = 1L << 60);
        var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT", Options()));
        Assert.Equal(ClipDownloadFailure.DiskFull, e.Failure);
        Assert.Contains(ClipPretrained.CacheVariable, e.Message);
        Assert.False(File.Exists(CachedWeights));
    }

    [Fact]
    public void WeightsThatAreNotTheRegisteredModelAreRefused()
    {
        var e = Assert.Throws<ClipCheckpointException>(() => ClipModel.FromPretrained("Tiny-ViT-336", Options()));
        Assert.Contains("336", e.Message);
    }

    [Fact]
    public void AnUnknownNameGivesTheClosestNames()
    {
        var e = Assert.Throws<ClipUnknownModelException>(() => ClipModel.FromPretrained("Tiny-VIT-unpined", Options()));
        Assert.Equal("Tiny-ViT-unpinned", e.ClosestNames[0]);
        Assert.Contains("Tiny-ViT-unpinned", e.Message);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void TheTokenizerAloneFetchesOnlyTheVocabulary()
    {
        var tokenizer = ClipTokenizer.FromPretrained("tiny", options: Options());
        using var tokens = tokenizer.Tokenize(ReferenceData.Captions);
        Assert.Equal(Fixtures.Expected("text_tokens").to(ScalarType.Int64).data<long>().ToArray(), tokens.data<long>().ToArray());
        Assert.Equal(0, server.CountRequests(WeightsPath));
        Assert.Equal(1, server.CountRequests(VocabPath));
    }

    [Fact]
    public void MLNetLoadClipModelTakesANameAndReportsOnItsLog()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using (var model = ml.Model.LoadClipModel("Tiny-ViT", Options()))
            AssertComputesTheReference(model);
        lock (log)
        {
            Assert.Contains(log, m => m.Contains("Downloading open_clip_model.safetensors of Tiny-ViT", StringComparison.Ordinal));
            Assert.Contains(log, m => m.Contains("Downloaded and verified open_clip_model.safetensors", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void TheEnvironmentAloneCanConfigureEverything()
    {
        // The only test that sets these variables (tests within one class do not run in parallel, and no
        // other class reads them).
        string[] names = [ClipPretrained.CacheVariable, ClipPretrained.OfflineVariable, ClipPretrained.RegistryVariable, "HF_ENDPOINT"];
        var saved = names.ToDictionary(n => n, Environment.GetEnvironmentVariable);
        try
        {
            File.WriteAllText(temp.File("registry.json"), RegistryJson());
            Environment.SetEnvironmentVariable(ClipPretrained.CacheVariable, temp.File("env-cache"));
            Environment.SetEnvironmentVariable(ClipPretrained.OfflineVariable, "1");
            Environment.SetEnvironmentVariable(ClipPretrained.RegistryVariable, temp.File("registry.json"));
            Environment.SetEnvironmentVariable("HF_ENDPOINT", server.BaseUrl);
            Assert.Equal(temp.File("option-cache"), ClipPretrained.ResolveCacheFolder(new ClipPretrainedOptions { CacheFolder = temp.File("option-cache") }));
            Assert.Equal(temp.File("env-cache"), ClipPretrained.ResolveCacheFolder());
            Assert.True(ClipPretrained.ResolveOffline());
            Assert.False(ClipPretrained.ResolveOffline(new ClipPretrainedOptions { Offline = false }));

            var e = Assert.Throws<ClipDownloadException>(() => ClipModel.FromPretrained("Tiny-ViT"));
            Assert.Equal(ClipDownloadFailure.Offline, e.Failure);
            Assert.StartsWith(temp.File("env-cache"), e.CachePath);
            Assert.Empty(server.Requests);

            // Online, ML.NET's plain LoadClipModel takes the name too (a path that does not exist stays an error).
            Environment.SetEnvironmentVariable(ClipPretrained.OfflineVariable, "0");
            var ml = new MLContext(seed: 1);
            using (var model = ml.Model.LoadClipModel("Tiny-ViT"))
                AssertComputesTheReference(model);
            Assert.True(File.Exists(Path.Combine(temp.File("env-cache"), "hub", "test--tiny-vit", "main", "open_clip", "open_clip_model.safetensors")));
            Assert.Throws<FileNotFoundException>(() => ml.Model.LoadClipModel(temp.File("no-such-model.pt")));

            foreach (var n in names) Environment.SetEnvironmentVariable(n, null);
            if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is not { Length: > 0 })
                Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "clip-mlnet"), ClipPretrained.ResolveCacheFolder());
            Assert.Same(ClipModelRegistry.Default, ClipPretrained.ResolveRegistry());
        }
        finally
        {
            foreach (var (n, v) in saved) Environment.SetEnvironmentVariable(n, v);
        }
    }

    [Fact]
    public async Task TwoProcessesFetchingTheSameModelAtOnceEndWithOneGoodFile()
    {
        // Slow enough (about 2.5 s for the weights) that the second process starts while the first downloads.
        server.Serve(WeightsPath, weights, f => f.ChunkDelay = TimeSpan.FromMilliseconds(20));
        var registryFile = temp.File("registry.json");
        File.WriteAllText(registryFile, RegistryJson());
        var children = Enumerable.Range(0, 2).Select(_ =>
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(typeof(ChildProcessEntry).Assembly.Location);
            foreach (var a in new[] { "pretrained-download", registryFile, temp.File("cache"), server.BaseUrl, "Tiny-ViT" }) start.ArgumentList.Add(a);
            var p = Process.Start(start)!;
            return (Process: p, Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync());
        }).ToList();
        foreach (var (p, output, error) in children)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await p.WaitForExitAsync(timeout.Token);
            Assert.True(p.ExitCode == 0, $"child process failed ({p.ExitCode}): {await error}");
            Assert.Equal(Path.GetDirectoryName(CachedWeights), await output);
            p.Dispose();
        }
        Assert.Equal(1, server.CountRequests(WeightsPath));
        Assert.Equal(weights, File.ReadAllBytes(CachedWeights));
        Assert.Empty(Directory.GetFiles(Path.Combine(temp.Path, "cache"), "*.part", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(Path.Combine(temp.Path, "cache"), "*.rejected", SearchOption.AllDirectories));
    }
}
