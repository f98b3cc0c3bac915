using Clip.MLNet.Imaging;
using Clip.MLNet.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Performance;

/// <summary>Preprocessing one batch ahead on a background thread gives what preprocessing in place gives, in order, errors included.</summary>
public class ImageBatchPrefetcherTests
{
    private static string[] Paths(int count) => Enumerable.Range(0, count).Select(i => ReferenceData.ImagePaths[(i * 3) % 8]).ToArray();

    [Theory]
    [InlineData(11, 4, 1, 1)]
    [InlineData(8, 8, 1, 1)]
    [InlineData(9, 2, 2, 3)]
    [InlineData(3, 32, 1, 2)]
    public void BatchesComeInOrderWithThePixelsOfPreprocessBatch(int count, int batch, int prefetch, int threads)
    {
        var preprocessor = new ClipImagePreprocessor(224);
        var paths = Paths(count);
        using var expected = preprocessor.PreprocessBatch(paths);
        using var prefetcher = new ImageBatchPrefetcher(preprocessor, paths, batch, prefetch, threads);
        int next = 0;
        foreach (var (start, pixels) in prefetcher.Batches())
        {
            Assert.Equal(next, start);
            Assert.Equal(new long[] { Math.Min(batch, count - start), 3, 224, 224 }, pixels.shape);
            using var want = expected.narrow(0, start, pixels.shape[0]);
            using var same = pixels.eq(want).all();
            Assert.True(same.item<bool>(), $"batch at {start}");
            next += (int)pixels.shape[0];
        }
        Assert.Equal(count, next);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ABadImageIsReportedWithItsIndexWhenItsBatchIsReached(int threads)
    {
        using var dir = new TempDir();
        var broken = dir.File("broken.jpg");
        File.WriteAllBytes(broken, File.ReadAllBytes(ReferenceData.ImagePaths[0]).AsSpan(0, 300).ToArray());
        var paths = Paths(10);
        paths[6] = broken;
        paths[9] = dir.File("missing.png");
        using var prefetcher = new ImageBatchPrefetcher(new ClipImagePreprocessor(224), paths, 4, 1, threads);
        var seen = new List<int>();
        var e = Assert.Throws<ClipImageException>(() =>
        {
            foreach (var (start, _) in prefetcher.Batches()) seen.Add(start);
        });
        Assert.Equal(new[] { 0 }, seen);       // the first batch was served, the second holds the bad image
        Assert.Equal(6, e.Index);
        Assert.Equal(broken, e.Input);
    }

    [Fact]
    public void StoppingEarlyAndDisposingReleasesTheProducer()
    {
        var prefetcher = new ImageBatchPrefetcher(new ClipImagePreprocessor(224), Paths(40), 2, 1, 1);
        foreach (var (start, _) in prefetcher.Batches())
            if (start >= 2) break;
        prefetcher.Dispose();
        prefetcher.Dispose();
        Assert.Throws<ObjectDisposedException>(() => prefetcher.Batches().GetEnumerator().MoveNext());
    }

    [Fact]
    public void NoImagesGiveNoBatches()
    {
        using var prefetcher = new ImageBatchPrefetcher(new ClipImagePreprocessor(224), Array.Empty<string>(), 4);
        Assert.Empty(prefetcher.Batches());
    }
}
