using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Training;

/// <summary>
/// Random resized crop of a whole batch in one resampling: each image gets its own crop box (and optional
/// flip) as an affine grid, sampled bilinearly back to the input size. Applied to preprocessed tensors.
/// </summary>
internal static class RandomResizedCrop
{
    public static Tensor Apply(Tensor images, RandomResizedCropOptions options, Random random)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0];
        var theta = new float[n * 6];
        for (int i = 0; i < n; i++)
        {
            double scale = options.MinScale + random.NextDouble() * (options.MaxScale - options.MinScale);
            double logRatio = Math.Log(options.MinRatio) + random.NextDouble() * (Math.Log(options.MaxRatio) - Math.Log(options.MinRatio));
            double ratio = Math.Exp(logRatio);
            double w = Math.Min(1.0, Math.Sqrt(scale * ratio));
            double h = Math.Min(1.0, Math.Sqrt(scale / ratio));
            double cx = (random.NextDouble() * 2 - 1) * (1 - w);
            double cy = (random.NextDouble() * 2 - 1) * (1 - h);
            double flip = random.NextDouble() < options.FlipProbability ? -1 : 1;
            theta[i * 6 + 0] = (float)(w * flip);
            theta[i * 6 + 2] = (float)cx;
            theta[i * 6 + 4] = (float)h;
            theta[i * 6 + 5] = (float)cy;
        }
        var t = torch.tensor(theta, new long[] { n, 2, 3 }, device: images.device, dtype: images.dtype);
        var grid = nn.functional.affine_grid(t, images.shape, align_corners: false);
        var output = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
        return scope.MoveToOuter(output);
    }
}
