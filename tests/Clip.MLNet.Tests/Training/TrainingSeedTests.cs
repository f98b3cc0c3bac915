using System.Globalization;
using System.Text;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Training;

namespace Clip.MLNet.Tests.Training;

public class TrainingSeedTests
{
    /// <summary>The seeds and one epoch's shuffle that a run derives from its seed, as text.</summary>
    public static string Describe(int seed)
    {
        var sb = new StringBuilder();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var order = Enumerable.Range(0, 20).ToArray();
            new Random(TrainingSeed.Mix(seed, epoch, 0x0dde)).Shuffle(order);
            sb.Append(string.Join(",", order)).Append('\n');
        }
        for (int step = 0; step < 5; step++) sb.Append(TrainingSeed.Mix(seed, step, 0x5eed).ToString(CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }

    [Fact]
    public void A_fresh_process_derives_the_same_order_and_seeds()
    {
        // A resumed run is a new process: it must replay the rest of the epoch in the order the first one used.
        Assert.Equal(Describe(42), ProcessRunner.TestAssembly("training-seeds", "42"));
    }

    [Fact]
    public void Positions_and_seeds_give_different_streams()
    {
        var seeds = new HashSet<int>();
        for (int seed = 0; seed < 4; seed++)
            for (int a = 0; a < 50; a++)
                seeds.Add(TrainingSeed.Mix(seed, a, 0x0dde));
        Assert.Equal(200, seeds.Count);
        Assert.All(seeds, s => Assert.True(s >= 0));
        Assert.NotEqual(Describe(1), Describe(2));
    }
}
