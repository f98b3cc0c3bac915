using Clip.MLNet.Native;

namespace Clip.MLNet.Tests.Native;

public sealed class NoReplaceFileTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("clip-mlnet-tests-noreplace-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void The_first_file_is_placed_and_a_second_does_not_replace_it()
    {
        var target = Path.Combine(folder, "target");

        Assert.True(NoReplaceFile.Place(Write("a", "first"), target));
        Assert.False(NoReplaceFile.Place(Write("b", "second"), target));

        Assert.Equal("first", File.ReadAllText(target));
    }

    [Fact]
    public void Of_racing_writers_exactly_one_wins_and_its_bytes_stay()
    {
        for (int round = 0; round < 50; round++)
        {
            var target = Path.Combine(folder, $"target-{round}");
            var sources = Enumerable.Range(0, 4).Select(i => Write($"source-{round}-{i}", $"writer {i}")).ToArray();
            using var start = new Barrier(sources.Length);
            var won = new bool[sources.Length];
            Parallel.For(0, sources.Length, new ParallelOptions { MaxDegreeOfParallelism = sources.Length }, i =>
            {
                start.SignalAndWait();
                won[i] = NoReplaceFile.Place(sources[i], target);
            });

            Assert.Equal(1, won.Count(w => w));
            Assert.Equal($"writer {Array.IndexOf(won, true)}", File.ReadAllText(target));
        }
    }

    [Fact]
    public void The_indexer_drops_its_temporary_file_whether_it_won_or_not()
    {
        var target = Path.Combine(folder, "img_emb_0.npy");
        var first = Write("first.tmp", "rows");
        var second = Write("second.tmp", "rows again");

        Assert.True(Clip.MLNet.Indexing.ClipIndexer.MoveWithoutReplacing(first, target));
        Assert.False(Clip.MLNet.Indexing.ClipIndexer.MoveWithoutReplacing(second, target));

        Assert.False(File.Exists(first));
        Assert.False(File.Exists(second));
        Assert.Equal("rows", File.ReadAllText(target));
    }
}
