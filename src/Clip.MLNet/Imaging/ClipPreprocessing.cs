using System.Text.Json.Nodes;

namespace Clip.MLNet;

/// <summary>The resampling filter of the resize step (Pillow's, as torchvision applies it to PIL images).</summary>
public enum ClipInterpolation
{
    /// <summary>Pillow's bicubic (a = -0.5): OpenAI's CLIP, SigLIP.</summary>
    Bicubic,
    /// <summary>Pillow's bilinear (triangle filter): CLIPA and some timm towers.</summary>
    Bilinear,
}

/// <summary>How an image is brought to the square input (open_clip's <c>resize_mode</c>).</summary>
public enum ClipResizeMode
{
    /// <summary>Resize the shorter side to the input size, then centre-crop (OpenAI's CLIP).</summary>
    Shortest,
    /// <summary>Resize to the square, ignoring the aspect ratio (SigLIP).</summary>
    Squash,
    /// <summary>Fit the longer side inside the square, then pad the rest with the fill colour, centred.</summary>
    Longest,
}

/// <summary>
/// A model's image preprocessing: input size, normalization, resize filter and mode (open_clip's
/// <c>preprocess_cfg</c>). <see cref="ClipModel.ImagePreprocessing"/> gives a model's; <see cref="CreatePreprocessor"/>
/// builds the preprocessor that applies it.
/// </summary>
/// <param name="Size">The side of the square input.</param>
/// <param name="Mean">Per-channel mean (R, G, B).</param>
/// <param name="Std">Per-channel standard deviation (R, G, B).</param>
/// <param name="Interpolation">The resize filter.</param>
/// <param name="ResizeMode">How the image is fitted to the square.</param>
/// <param name="FillColor">The padding value (0-255, all channels) of <see cref="ClipResizeMode.Longest"/>.</param>
public sealed record ClipPreprocessing(int Size, IReadOnlyList<float> Mean, IReadOnlyList<float> Std,
    ClipInterpolation Interpolation = ClipInterpolation.Bicubic, ClipResizeMode ResizeMode = ClipResizeMode.Shortest, byte FillColor = 0)
{
    /// <summary>OpenAI's preprocessing at <paramref name="size"/>: bicubic, shortest side, centre crop, OpenAI's mean and std.</summary>
    public static ClipPreprocessing OpenAI(int size) => new(size, ClipImagePreprocessor.OpenAIMean, ClipImagePreprocessor.OpenAIStd);

    /// <summary>A preprocessor that applies these settings.</summary>
    /// <param name="maxPixels">The largest image accepted (<see cref="ClipImagePreprocessor.MaxPixels"/>); its default when null.</param>
    public ClipImagePreprocessor CreatePreprocessor(long? maxPixels = null)
    {
        return new ClipImagePreprocessor(Size, Mean, Std)
        {
            Interpolation = Interpolation,
            ResizeMode = ResizeMode,
            FillColor = FillColor,
            MaxPixels = maxPixels ?? ClipImagePreprocessor.DefaultMaxPixels,
        };
    }

    /// <summary>open_clip's <c>preprocess_cfg</c> spelling, for saving with a model.</summary>
    internal string ToJson() => new JsonObject
    {
        ["size"] = Size,
        ["mean"] = new JsonArray(Mean.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
        ["std"] = new JsonArray(Std.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
        ["interpolation"] = Interpolation == ClipInterpolation.Bilinear ? "bilinear" : "bicubic",
        ["resize_mode"] = ResizeMode.ToString().ToLowerInvariant(),
        ["fill_color"] = (int)FillColor,
    }.ToJsonString();

    /// <inheritdoc />
    public bool Equals(ClipPreprocessing? other) => other is not null && ToJson() == other.ToJson();

    /// <inheritdoc />
    public override int GetHashCode() => ToJson().GetHashCode(StringComparison.Ordinal);
}
