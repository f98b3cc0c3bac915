using Clip.MLNet.Batching;
using Clip.MLNet.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Training;

// Batch preparation of training: which pairs make each step, and their decoding and augmentation on the batching
// engine one step ahead of the one training, with BadRows applied to pairs that cannot be read.
public sealed partial class ClipTrainer
{
    private sealed record Batch(Tensor Pixels, string[] Captions, long[]? Groups, int Skipped);

    /// <summary>The items of a step: a seeded permutation per epoch, in batch-sized slices.</summary>
    internal int[] ItemsOfStep(int step, int stepsPerEpoch, int batchSize, int count)
    {
        int epoch = step / stepsPerEpoch;
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        new Random(TrainingSeed.Mix(Options.Seed, epoch, 0x0dde)).Shuffle(order);
        return order.AsSpan((step % stepsPerEpoch) * batchSize, batchSize).ToArray();
    }

    /// <summary>The pairs of one step, as the engine fills and prepares them.</summary>
    private sealed class StepBatch(int capacity, int pixelsPerImage) : PipelineBatch(capacity)
    {
        public readonly float[] Pixels = new float[capacity * pixelsPerImage];
        public readonly string?[] Captions = new string?[capacity];
        public int[] Items = [];
        public int Step;
    }

    /// <summary>The steps from a start step on, each prepared one step ahead; <see cref="Next"/> gives them in order.</summary>
    private sealed class TrainingBatches : IDisposable
    {
        private readonly ClipTrainer trainer;
        private readonly ClipTrainingData data;
        private readonly int resolution;
        private readonly BatchPipeline<StepBatch> pipeline;
        private int nextStep;

        public TrainingBatches(ClipTrainer trainer, ClipTrainingData data, int startStep, int totalSteps, int stepsPerEpoch, int batchSize, int resolution)
        {
            this.trainer = trainer;
            this.data = data;
            this.resolution = resolution;
            nextStep = startStep;
            int per = 3 * resolution * resolution;
            pipeline = new BatchPipeline<StepBatch>(
                () => new StepBatch(batchSize, per),
                b =>
                {
                    if (nextStep >= totalSteps) return;
                    b.Step = nextStep++;
                    b.Items = trainer.ItemsOfStep(b.Step, stepsPerEpoch, batchSize, data.Count);
                    b.Count = b.Items.Length;
                },
                (b, i) =>
                {
                    var random = new Random(TrainingSeed.Mix(trainer.Options.Seed, b.Items[i], b.Step));
                    b.Captions[i] = data.Fill(b.Items[i], resolution, b.Pixels.AsSpan(i * per, per), random);
                },
                (_, _, e) => e,
                new BatchPipelineOptions(Prefetch: 1, Threads: trainer.Options.PrepareThreads));
        }

        /// <summary>The next step's batch: its pixels on the model's device, captions and positive groups, bad pairs dropped (or an error).</summary>
        public Batch Next()
        {
            var b = pipeline.Next() ?? throw new InvalidOperationException("No more training steps.");
            try
            {
                int per = 3 * resolution * resolution;
                int bad = b.Errors.Take(b.Count).Count(e => e is not null);
                if (bad > 0)
                {
                    int first = b.FirstError;
                    if (trainer.Options.BadRows == BadRowHandling.Error)
                        throw new InvalidDataException($"Training pair {b.Items[first]}: {b.Errors[first]!.Message} (set BadRows to Skip to skip such pairs)", b.Errors[first]);
                    for (int i = 0; i < bad; i++) data.CountSkipped();
                }
                var keep = Enumerable.Range(0, b.Count).Where(i => b.Valid[i]).ToArray();
                var kept = new float[keep.Length * per];
                for (int k = 0; k < keep.Length; k++) b.Pixels.AsSpan(keep[k] * per, per).CopyTo(kept.AsSpan(k * per, per));
                var groups = keep.Select(i => data.PositiveGroup(b.Items[i])).ToArray();
                var cpu = torch.tensor(kept, new long[] { keep.Length, 3, resolution, resolution }).DetachFromDisposeScope();
                var pixels = cpu.to(trainer.Model.Device).DetachFromDisposeScope();
                if (!ReferenceEquals(pixels, cpu)) cpu.Dispose(); // on the CPU, `to` gives the same tensor back
                return new Batch(pixels, keep.Select(i => b.Captions[i]!).ToArray(),
                    groups.All(g => g.HasValue) ? groups.Select(g => g!.Value).ToArray() : null, bad);
            }
            finally
            {
                pipeline.Release(b);
            }
        }

        public void Dispose() => pipeline.Dispose();
    }
}
