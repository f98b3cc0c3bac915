using Clip.MLNet.Training;

namespace Clip.MLNet.Tests.Training;

/// <summary>Tiny models and synthetic data so a training run takes seconds.</summary>
internal static class TrainingTestData
{
    public static SyntheticShapes Shapes(int count, int seed = 1) => SyntheticShapes.Generate(count, 16, seed, _ => true);

    public static ClipTrainingData Pairs(SyntheticShapes s) =>
        ClipTrainingData.FromPixels(s.Pixels, s.Count, s.ImageSize, s.ImageSize, 3, (i, _) => s.Caption(i),
            Enumerable.Range(0, s.Count).Select(s.Caption));

    public static ClipTokenizer Tokenizer(SyntheticShapes s) =>
        ClipTokenizer.Train(Enumerable.Range(0, s.Count).Select(s.Caption), contextLength: 8);

    public static ClipConfig TinyVit(int vocab) =>
        ClipConfig.VisionTransformerConfig(embedDim: 16, imageResolution: 16, patchSize: 4, visionWidth: 32, visionLayers: 1,
            textWidth: 32, textLayers: 1, contextLength: 8, vocabSize: vocab);

    public static ClipModel NewModel(ClipConfig config, int seed = 7)
    {
        TorchSharp.torch.manual_seed(seed);
        return ClipModel.Create(config);
    }
}
