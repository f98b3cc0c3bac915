using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Clip.MLNet.Evaluation;

/// <summary>Image→text and text→image recall at K (see <see cref="RetrievalMetrics"/>).</summary>
public sealed class RetrievalResult
{
    internal RetrievalResult(int imageCount, int textCount, int[] ks, int[] imageRanks, int[] textRanks)
    {
        ImageCount = imageCount;
        TextCount = textCount;
        Ks = ks;
        ImageRanks = imageRanks;
        TextRanks = textRanks;
        ImageToText = ks.Select(k => (double)imageRanks.Count(r => r < k) / imageCount).ToArray();
        TextToImage = ks.Select(k => (double)textRanks.Count(r => r < k) / textCount).ToArray();
    }

    /// <summary>Number of images (queries of image→text).</summary>
    public int ImageCount { get; }

    /// <summary>Number of texts (queries of text→image).</summary>
    public int TextCount { get; }

    /// <summary>The K values, in the order of <see cref="ImageToText"/> and <see cref="TextToImage"/>.</summary>
    public IReadOnlyList<int> Ks { get; }

    /// <summary>Image→text recall at each K: the fraction of images with at least one of their captions among the K texts ranked first.</summary>
    public IReadOnlyList<double> ImageToText { get; }

    /// <summary>Text→image recall at each K: the fraction of texts whose image is among the K images ranked first.</summary>
    public IReadOnlyList<double> TextToImage { get; }

    /// <summary>For each image, the rank (0-based) of its best-ranked caption.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> ImageRanks { get; }

    /// <summary>For each text, the rank (0-based) of its image.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> TextRanks { get; }

    /// <summary>Image→text recall at <paramref name="k"/> (any K, not only those of <see cref="Ks"/>).</summary>
    public double ImageToTextRecall(int k) => (double)ImageRanks.Count(r => r < k) / ImageCount;

    /// <summary>Text→image recall at <paramref name="k"/>.</summary>
    public double TextToImageRecall(int k) => (double)TextRanks.Count(r => r < k) / TextCount;
}

/// <summary>
/// Retrieval recall at K for a captioned image set, by the definition of the CLIP paper's Flickr30k and MSCOCO
/// results (Karpathy's splits): every image is a query over all texts and counts as found at K when
/// <em>any</em> of its captions is among the first K texts; every text is a query over all images and counts
/// as found at K when its one image is among the first K. Ranks break ties in favour of the lower index.
/// </summary>
public static class RetrievalMetrics
{
    /// <summary>The K values reported by default: 1, 5 and 10.</summary>
    public static IReadOnlyList<int> DefaultKs { get; } = Array.AsReadOnly(new[] { 1, 5, 10 });

    /// <summary>Recall at K from a similarity matrix.</summary>
    /// <param name="similarity">[images, texts]: higher is more similar.</param>
    /// <param name="imageOfText">For each text, the index of the image it describes.</param>
    /// <param name="ks">The K values (default <see cref="DefaultKs"/>).</param>
    /// <exception cref="ArgumentException">Sizes that disagree, an image index out of range, or an image without any text.</exception>
    public static RetrievalResult Evaluate(float[,] similarity, IReadOnlyList<int> imageOfText, IReadOnlyList<int>? ks = null)
    {
        ArgumentNullException.ThrowIfNull(similarity);
        int images = similarity.GetLength(0), texts = similarity.GetLength(1);
        var captionsOf = CaptionsOf(images, texts, imageOfText);
        var imageRanks = new int[images];
        var row = new float[texts];
        for (int i = 0; i < images; i++)
        {
            for (int j = 0; j < texts; j++) row[j] = similarity[i, j];
            imageRanks[i] = BestRank(row, captionsOf[i]);
        }
        var textRanks = new int[texts];
        var column = new float[images];
        for (int j = 0; j < texts; j++)
        {
            for (int i = 0; i < images; i++) column[i] = similarity[i, j];
            textRanks[j] = ClassificationMetrics.Rank(column, imageOfText[j]);
        }
        return new RetrievalResult(images, texts, CheckKs(ks), imageRanks, textRanks);
    }

    /// <summary>
    /// Recall at K from embeddings, by cosine similarity (the features are L2-normalized here), computed a block of
    /// rows at a time so that large sets (5,000 images × 25,000 captions) need no full similarity matrix.
    /// </summary>
    /// <param name="imageFeatures">[images, D].</param>
    /// <param name="textFeatures">[texts, D].</param>
    /// <param name="imageOfText">For each text, the index of the image it describes.</param>
    /// <param name="ks">The K values (default <see cref="DefaultKs"/>).</param>
    /// <param name="blockRows">Rows of the similarity matrix computed at once.</param>
    public static RetrievalResult Evaluate(Tensor imageFeatures, Tensor textFeatures, IReadOnlyList<int> imageOfText, IReadOnlyList<int>? ks = null, int blockRows = 512)
    {
        ArgumentNullException.ThrowIfNull(imageFeatures);
        ArgumentNullException.ThrowIfNull(textFeatures);
        if (imageFeatures.dim() != 2 || textFeatures.dim() != 2 || imageFeatures.shape[1] != textFeatures.shape[1])
            throw new ArgumentException($"Features must be [images, D] and [texts, D]; got [{string.Join(", ", imageFeatures.shape)}] and [{string.Join(", ", textFeatures.shape)}].");
        int images = (int)imageFeatures.shape[0], texts = (int)textFeatures.shape[0];
        var captionsOf = CaptionsOf(images, texts, imageOfText);
        using var scope = NewDisposeScope();
        var img = ClipModel.Normalize(imageFeatures.to(ScalarType.Float32).cpu());
        var txt = ClipModel.Normalize(textFeatures.to(ScalarType.Float32).cpu());
        var imageRanks = new int[images];
        RowBlocks(img, txt, blockRows, (i, row) => imageRanks[i] = BestRank(row, captionsOf[i]));
        var textRanks = new int[texts];
        RowBlocks(txt, img, blockRows, (j, row) => textRanks[j] = ClassificationMetrics.Rank(row, imageOfText[j]));
        return new RetrievalResult(images, texts, CheckKs(ks), imageRanks, textRanks);
    }

    private delegate void RowAction(int index, ReadOnlySpan<float> row);

    /// <summary>Calls <paramref name="action"/> with each row of <c>queries · keysᵀ</c>, a block at a time.</summary>
    private static void RowBlocks(Tensor queries, Tensor keys, int blockRows, RowAction action)
    {
        int n = (int)queries.shape[0], m = (int)keys.shape[0];
        using var keysT = keys.t().contiguous();
        for (int start = 0; start < n; start += blockRows)
        {
            int rows = Math.Min(blockRows, n - start);
            using var block = queries.narrow(0, start, rows).matmul(keysT).contiguous();
            var values = MemoryMarshal.Cast<byte, float>(block.bytes);
            for (int r = 0; r < rows; r++) action(start + r, values.Slice(r * m, m));
        }
    }

    /// <summary>The best (smallest) rank among <paramref name="targets"/> in <paramref name="row"/>.</summary>
    private static int BestRank(ReadOnlySpan<float> row, List<int> targets)
    {
        // The best-ranked target is the highest-scoring one, the lowest index among equals.
        int best = targets[0];
        foreach (var t in targets) if (row[t] > row[best] || (row[t] == row[best] && t < best)) best = t;
        return ClassificationMetrics.Rank(row, best);
    }

    private static List<int>[] CaptionsOf(int images, int texts, IReadOnlyList<int> imageOfText)
    {
        ArgumentNullException.ThrowIfNull(imageOfText);
        if (images == 0 || texts == 0) throw new ArgumentException($"Retrieval needs images and texts; got {images} images and {texts} texts.");
        if (imageOfText.Count != texts) throw new ArgumentException($"{imageOfText.Count} image indices for {texts} texts.", nameof(imageOfText));
        var captionsOf = Enumerable.Range(0, images).Select(_ => new List<int>()).ToArray();
        for (int j = 0; j < texts; j++)
        {
            if ((uint)imageOfText[j] >= (uint)images)
                throw new ArgumentException($"Text {j} belongs to image {imageOfText[j]}, not an image index (0 to {images - 1}).", nameof(imageOfText));
            captionsOf[imageOfText[j]].Add(j);
        }
        int lonely = Array.FindIndex(captionsOf, c => c.Count == 0);
        if (lonely >= 0) throw new ArgumentException($"Image {lonely} has no text: every image needs at least one caption.", nameof(imageOfText));
        return captionsOf;
    }

    private static int[] CheckKs(IReadOnlyList<int>? ks)
    {
        var result = (ks ?? DefaultKs).ToArray();
        if (result.Length == 0 || result.Any(k => k <= 0)) throw new ArgumentException("K values must be positive.", nameof(ks));
        return result;
    }
}
