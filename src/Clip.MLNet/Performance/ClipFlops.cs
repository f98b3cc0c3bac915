namespace Clip.MLNet;

/// <summary>
/// Floating-point work of one forward pass, counted from a <see cref="ClipConfig"/>: 2 × the
/// multiply-accumulates of the convolutions, linear layers and attention products (q·kᵀ and
/// weights·v). Normalizations, activations, softmax, pooling and additions are not counted (they are
/// a few percent of the work and are not matrix products). ViT-B/32's image tower: 8.82 GFLOP.
/// </summary>
/// <remarks>
/// These are the figures <c>clip bench</c> multiplies by items per second to compare with the
/// machine's matrix-product rate. Causal text attention is counted as full (L² per head), as the
/// computation runs it; the text tower is counted over the positions that actually run, which with
/// <see cref="ClipModel.TrimText"/> is the longest text of the batch (SOT and EOT included).
/// </remarks>
public static class ClipFlops
{
    /// <summary>Multiply-accumulates of the image tower for one image.</summary>
    public static long ImageMacs(ClipConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.VisionArchitecture == VisionArchitecture.VisionTransformer ? VisionTransformerMacs(config) : ResNetMacs(config);
    }

    /// <summary>Multiply-accumulates of the text tower for one text run over <paramref name="tokens"/> positions.</summary>
    public static long TextMacs(ClipConfig config, int tokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (tokens <= 0 || tokens > config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"Text positions must be 1..{config.ContextLength}, got {tokens}.");
        long w = config.TextWidth;
        long perBlock = TransformerBlockMacs(tokens, w, config.TextMlpWidth);
        return config.TextLayers * perBlock + w * config.EmbedDim;
    }

    /// <summary>GFLOP (2 × multiply-accumulates ÷ 10⁹) of the image tower per image.</summary>
    public static double ImageGflop(ClipConfig config) => 2.0 * ImageMacs(config) / 1e9;

    /// <summary>GFLOP of the text tower per text run over <paramref name="tokens"/> positions.</summary>
    public static double TextGflop(ClipConfig config, int tokens) => 2.0 * TextMacs(config, tokens) / 1e9;

    /// <summary>One pre-LN block over <paramref name="tokens"/> positions: q/k/v and output projections, attention, MLP.</summary>
    internal static long TransformerBlockMacs(long tokens, long width, long mlpWidth) =>
        tokens * 4 * width * width          // in_proj (q, k, v) and out_proj
        + 2 * tokens * tokens * width       // q·kᵀ and weights·v, all heads
        + tokens * 2 * width * mlpWidth;    // c_fc and c_proj

    private static long VisionTransformerMacs(ClipConfig c)
    {
        long patch = c.VisionPatchSize!.Value;
        long grid = c.ImageResolution / patch;
        long w = c.VisionWidth;
        long tokens = grid * grid + (c.VisionClassToken ? 1 : 0);
        long conv = grid * grid * 3 * patch * patch * w;
        if (c.VisionTimmFamily == "eva02")
        {
            // SwiGLU: two input projections to the hidden width and one back; timm's head is the projection.
            long block = tokens * 4 * w * w + 2 * tokens * tokens * w + tokens * 3 * w * c.VisionMlpWidth;
            return conv + c.VisionLayers[0] * block + w * c.EmbedDim;
        }
        long blocks = conv + c.VisionLayers[0] * TransformerBlockMacs(tokens, w, c.VisionMlpWidth);
        if (c.TimmModelName is null) return blocks + w * c.EmbedDim;
        if (c.VisionPool != "map") return blocks;
        // Attention pooling: q of the latent, k/v of every token, attention of one query, proj, and the pool's MLP.
        long pool = w * w + tokens * 2 * w * w + 2 * tokens * w + w * w + 2 * w * c.VisionMlpWidth;
        return blocks + pool;
    }

    private static long ResNetMacs(ClipConfig c)
    {
        static long Conv(long cin, long cout, long k, long side) => cin * cout * k * k * side * side;
        long width = c.VisionWidth;
        long side = c.ImageResolution / 2;                      // the stem's first convolution has stride 2
        long macs = Conv(3, width / 2, 3, side) + Conv(width / 2, width / 2, 3, side) + Conv(width / 2, width, 3, side);
        side /= 2;                                              // average pool
        long inplanes = width;
        for (int stage = 0; stage < 4; stage++)
        {
            long planes = width << stage;
            for (int b = 0; b < c.VisionLayers[stage]; b++)
            {
                long stride = b == 0 && stage > 0 ? 2 : 1;
                long outSide = side / stride;
                macs += Conv(inplanes, planes, 1, side) + Conv(planes, planes, 3, side) + Conv(planes, planes * 4, 1, outSide);
                if (stride > 1 || inplanes != planes * 4) macs += Conv(inplanes, planes * 4, 1, outSide);
                inplanes = planes * 4;
                side = outSide;
            }
        }
        long embed = width * 32;
        long tokens = side * side + 1;
        macs += embed * embed                       // q from the mean token
            + 2 * tokens * embed * embed            // k and v from every token
            + 2 * tokens * embed                    // one query's scores and weighted sum
            + embed * c.EmbedDim;                   // c_proj
        return macs;
    }
}
