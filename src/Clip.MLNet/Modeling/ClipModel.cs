using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Clip.MLNet.Modeling;

using Clip.MLNet.Performance;

namespace Clip.MLNet;

/// <summary>How a model turns logits into class probabilities.</summary>
public enum ClipScoring
{
    /// <summary>A softmax over the classes (CLIP's contrastive models).</summary>
    Softmax,
    /// <summary>Each class's own sigmoid of its logit, bias included (SigLIP's sigmoid-loss models).</summary>
    Sigmoid,
}

/// <summary>
/// A CLIP model: an image tower (<c>visual</c>), a text tower (<c>text</c>) and the learned
/// temperature (<c>logit_scale</c>). Computes what OpenAI's reference computes; load weights with
/// <see cref="Load(string, ClipLoadOptions?)"/> or create a randomly initialised model with <see cref="Create"/>.
/// </summary>
/// <remarks>
/// Inference methods run under no-grad and dispose their intermediates; they accept inputs on any
/// device and return float32 tensors on the model's device. The instance holds native memory:
/// dispose it when done.
/// </remarks>
public sealed partial class ClipModel : nn.Module<Tensor, Tensor, (Tensor LogitsPerImage, Tensor LogitsPerText)>
{
    private readonly ImageEncoder visual;
    private readonly TextTransformer text;
    private readonly Parameter logit_scale;
    private readonly Parameter? logit_bias;

    private ClipModel(ClipConfig config, Device? device) : base(Initialized(nameof(ClipModel)))
    {
        config.Validate();
        Config = config;
        visual = config.TimmModelName is not null
            ? new TimmVisionTower(config, device)
            : config.VisionArchitecture == VisionArchitecture.VisionTransformer
            ? new VisionTransformer(config.ImageResolution, config.VisionPatchSize!.Value, config.VisionWidth, config.VisionLayers[0],
                config.VisionHeads, config.VisionMlpWidth, config.EmbedDim, config.EffectiveVisionActivation, device,
                config.VisionLnPre, config.VisionPool, config.VisionFinalLnAfterPool)
            : new ModifiedResNet(config.VisionLayers, config.EmbedDim, config.VisionHeads, config.ImageResolution, config.VisionWidth, device);
        text = new TextTransformer(config.ContextLength, config.VocabSize, config.TextWidth, config.TextLayers, config.TextHeads,
            config.TextMlpWidth, config.EmbedDim, config.EffectiveTextActivation, device,
            config.TextCausalMask, config.TextPool, config.TextProjectionBias, config.TextLayerNormEps);
        logit_scale = new Parameter(torch.full(Array.Empty<long>(), Math.Log(1 / 0.07), device: device));
        // SigLIP's initialisation: logit_scale log(10), logit_bias -10.
        if (config.HasLogitBias)
        {
            using (torch.no_grad()) logit_scale.fill_(Math.Log(10));
            logit_bias = new Parameter(torch.full(Array.Empty<long>(), -10.0, device: device));
        }
        RegisterComponents();
        Device = device ?? torch.CPU;
        eval();
    }

    /// <summary>The hyper-parameters this model was built from.</summary>
    public ClipConfig Config { get; }

    /// <summary>The device the weights live on.</summary>
    public Device Device { get; private set; }

    /// <summary>The dtype the towers compute in (float32 unless <see cref="ToPrecision"/> changed it).</summary>
    public ScalarType ComputeType { get; private set; } = ScalarType.Float32;

    /// <summary>Side length of the square image input, in pixels.</summary>
    public int ImageResolution => visual.InputResolution;

    /// <summary>Number of token positions the text tower takes (77 for OpenAI's models).</summary>
    public int ContextLength => text.ContextLength;

    /// <summary><c>exp(logit_scale)</c>: the factor applied to cosine similarities to give logits.</summary>
    public float LogitScale
    {
        get { using var _ = torch.no_grad(); using var e = logit_scale.detach().to(ScalarType.Float32).exp(); return e.item<float>(); }
    }

    /// <summary>
    /// The learned <c>logit_bias</c> added to the scaled cosine similarities, for models that have one
    /// (SigLIP families, scored with a sigmoid); null for the others.
    /// </summary>
    public float? LogitBias
    {
        get
        {
            if (logit_bias is null) return null;
            using var _ = torch.no_grad();
            using var b = logit_bias.detach().to(ScalarType.Float32);
            return b.item<float>();
        }
    }

    /// <summary>
    /// How this model's logits become class probabilities: <see cref="ClipScoring.Sigmoid"/> (one independent
    /// probability per class) for models with a <see cref="LogitBias"/>, else <see cref="ClipScoring.Softmax"/>.
    /// </summary>
    public ClipScoring Scoring => logit_bias is null ? ClipScoring.Softmax : ClipScoring.Sigmoid;

    /// <summary>
    /// Whether text batches run only up to their longest sequence (default true). The results are
    /// identical either way: attention is causal and pooling reads the end-of-text position. Towers
    /// without a causal mask or that pool the last position (SigLIP) always run the whole context,
    /// whatever this is set to, since trimming would change their output.
    /// </summary>
    public bool TrimText
    {
        get => text.TrimToLongest;
        set => text.TrimToLongest = value;
    }

    /// <summary>
    /// libtorch's intra-op thread count: how many threads one matrix product or elementwise operation
    /// uses on the CPU (libtorch's default: one per physical core). This is <c>torch.set_num_threads</c>,
    /// a setting of the whole process, not of one model: it applies to every model and every thread
    /// that computes with libtorch, and the last value set wins.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public static int IntraOpThreads
    {
        get => torch.get_num_threads();
        set
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value), value, "The intra-op thread count must be positive.");
            if (torch.get_num_threads() != value) torch.set_num_threads(value);
        }
    }

    /// <summary>
    /// Whether <see cref="EncodeImage"/> and <see cref="EncodeText"/> hand free C-heap pages back to the
    /// system, at most once a second (default true; Linux with glibc only, elsewhere nothing happens).
    /// libtorch's large short-lived tensors otherwise fragment glibc's heap, and the resident size of a long
    /// embedding run creeps up (620 to 920 MiB over 1,600 images here; flat near 540-600 MiB with trimming,
    /// at the same speed). A process-wide setting; the environment variable
    /// <c>CLIP_MLNET_NO_MALLOC_TRIM=1</c> sets it to false at start.
    /// </summary>
    public static bool TrimNativeHeap
    {
        get => NativeHeap.Enabled;
        set => NativeHeap.Enabled = value;
    }

    internal ImageEncoder Visual => visual;
    internal TextTransformer Text => text;
    internal Parameter LogitScaleParameter => logit_scale;
    internal Parameter? LogitBiasParameter => logit_bias;

    /// <summary>Creates a model with the reference's random initialisation.</summary>
    /// <param name="config">The hyper-parameters.</param>
    /// <param name="device">Where to allocate; the CPU when null. The meta device builds shapes only.</param>
    public static ClipModel Create(ClipConfig config, Device? device = null) => new(config, device);

    /// <summary>Image features <c>[N, embed_dim]</c> (not normalized) for pixels <c>[N, 3, S, S]</c>, preprocessed as CLIP expects.</summary>
    public Tensor EncodeImage(Tensor pixels)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        var x = pixels.to(ComputeType, Device);
        var features = scope.MoveToOuter(visual.forward(x).to(ScalarType.Float32));
        NativeHeap.TrimIfDue();
        return features;
    }

    /// <summary>Text features <c>[M, embed_dim]</c> (not normalized) for token ids <c>[M, L]</c>, L at most <see cref="ContextLength"/>.</summary>
    public Tensor EncodeText(Tensor tokens)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        var x = tokens.to(ScalarType.Int64, Device);
        var features = scope.MoveToOuter(text.forward(x).to(ScalarType.Float32));
        NativeHeap.TrimIfDue();
        return features;
    }

    /// <summary>
    /// <c>logits_per_image</c> <c>[N, M]</c> = <c>exp(logit_scale)</c> × normalized image features ·
    /// normalized text features, and its transpose <c>logits_per_text</c>. Runs with autograd as the
    /// module is set (train or eval); use <see cref="Logits"/> for inference.
    /// </summary>
    public override (Tensor LogitsPerImage, Tensor LogitsPerText) forward(Tensor pixels, Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var image = Normalize(visual.forward(pixels.to(ComputeType, Device)).to(ScalarType.Float32));
        var txt = Normalize(text.forward(tokens.to(ScalarType.Int64, Device)).to(ScalarType.Float32));
        var perImage = logit_scale.to(ScalarType.Float32).exp() * image.matmul(txt.t());
        if (logit_bias is not null) perImage = perImage + logit_bias.to(ScalarType.Float32);
        var perText = perImage.t();
        return (scope.MoveToOuter(perImage), scope.MoveToOuter(perText));
    }

    /// <summary>Inference logits (no-grad): <c>(logits_per_image [N, M], logits_per_text [M, N])</c>.</summary>
    public (Tensor LogitsPerImage, Tensor LogitsPerText) Logits(Tensor pixels, Tensor tokens)
    {
        using var _ = torch.no_grad();
        return forward(pixels, tokens);
    }

    /// <summary>Logits from features already computed: <c>exp(logit_scale)</c> × cosine similarities (+ <see cref="LogitBias"/> where the model has one).</summary>
    public Tensor LogitsFromFeatures(Tensor imageFeatures, Tensor textFeatures)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        var scale = LogitScale;
        var logits = Normalize(imageFeatures).matmul(Normalize(textFeatures).t()) * scale;
        if (LogitBias is { } bias) logits = logits + bias;
        return scope.MoveToOuter(logits);
    }

    /// <summary>
    /// Class probabilities from logits <c>[N, C]</c> with this model's <see cref="Scoring"/>: a softmax over
    /// the classes, or each class's sigmoid (SigLIP).
    /// </summary>
    public Tensor ProbabilitiesFromLogits(Tensor logits)
    {
        using var _ = torch.no_grad();
        return Scoring == ClipScoring.Sigmoid ? torch.sigmoid(logits) : logits.softmax(-1);
    }

    /// <summary>L2-normalizes the rows of <paramref name="features"/> (as the reference: x / ||x||).</summary>
    public static Tensor Normalize(Tensor features)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(features / features.norm(1, keepdim: true));
    }

    /// <summary>Moves the weights to <paramref name="device"/>.</summary>
    public ClipModel ToDevice(Device device)
    {
        this.to(device);
        Device = device;
        return this;
    }

    /// <summary>
    /// Sets the dtype the towers compute in: float32 (default), bfloat16 or float16. LayerNorm
    /// parameters and the logit scale stay float32, as in the reference's half-precision models.
    /// </summary>
    public ClipModel ToPrecision(ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"Unsupported compute precision {dtype}: use Float32, BFloat16 or Float16.", nameof(dtype));
        this.to(dtype);
        foreach (var module in modules().OfType<ClipLayerNorm>())
            module.to(ScalarType.Float32);
        ComputeType = dtype;
        return this;
    }

    /// <summary>Loads the native library (with a clear error) before the base constructor touches TorchSharp.</summary>
    private static string Initialized(string name)
    {
        ClipNative.Initialize();
        return name;
    }
}
