namespace Clip.MLNet.Training;

/// <summary>
/// A captioned synthetic image set that needs no download: coloured shapes of two sizes at random places on a
/// noisy background, captioned "a {size} {colour} {shape}". Some colour-shape combinations can be held out of
/// training to test zero-shot generalisation to combinations never seen together.
/// </summary>
public sealed class SyntheticShapes
{
    /// <summary>The shapes drawn.</summary>
    public static readonly IReadOnlyList<string> Shapes = new[] { "circle", "square", "triangle", "cross" };

    /// <summary>The colours, with their RGB values.</summary>
    public static readonly IReadOnlyList<(string Name, byte R, byte G, byte B)> Colours = new (string, byte, byte, byte)[]
    {
        ("red", 220, 40, 40), ("green", 40, 190, 60), ("blue", 50, 80, 230), ("yellow", 235, 215, 40), ("purple", 150, 60, 200),
    };

    /// <summary>The sizes.</summary>
    public static readonly IReadOnlyList<string> Sizes = new[] { "small", "large" };

    private SyntheticShapes(byte[] pixels, int count, int size, int[] shape, int[] colour, int[] scale)
    {
        Pixels = pixels;
        Count = count;
        ImageSize = size;
        Shape = shape;
        Colour = colour;
        SizeIndex = scale;
    }

    /// <summary>RGB pixels, <see cref="Count"/> × <see cref="ImageSize"/>² × 3 bytes.</summary>
    public byte[] Pixels { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Side length of the square images.</summary>
    public int ImageSize { get; }
    /// <summary>Per image, the index into <see cref="Shapes"/>.</summary>
    public int[] Shape { get; }
    /// <summary>Per image, the index into <see cref="Colours"/>.</summary>
    public int[] Colour { get; }
    /// <summary>Per image, the index into <see cref="Sizes"/>.</summary>
    public int[] SizeIndex { get; }

    /// <summary>The colour-shape class of image <paramref name="i"/>: colour × shapes + shape.</summary>
    public int ClassOf(int i) => Colour[i] * Shapes.Count + Shape[i];

    /// <summary>Class names, "{colour} {shape}", indexed as <see cref="ClassOf"/>.</summary>
    public static IReadOnlyList<string> ClassNames =>
        Colours.SelectMany(c => Shapes.Select(s => $"{c.Name} {s}")).ToArray();

    /// <summary>The caption of image <paramref name="i"/>: "a {size} {colour} {shape}".</summary>
    public string Caption(int i) => $"a {Sizes[SizeIndex[i]]} {Colours[Colour[i]].Name} {Shapes[Shape[i]]}";

    /// <summary>The colour-shape pairs held out of training: one colour per shape, a different one for each.</summary>
    public static IReadOnlySet<int> HeldOutClasses =>
        Enumerable.Range(0, Shapes.Count).Select(s => ((s * 2 + 1) % Colours.Count) * Shapes.Count + s).ToHashSet();

    /// <summary>Generates <paramref name="count"/> images, drawing only classes that <paramref name="include"/> accepts.</summary>
    public static SyntheticShapes Generate(int count, int imageSize, int seed, Func<int, bool> include)
    {
        var random = new Random(seed);
        var pixels = new byte[count * imageSize * imageSize * 3];
        var shape = new int[count];
        var colour = new int[count];
        var scale = new int[count];
        var allowed = Enumerable.Range(0, Shapes.Count * Colours.Count).Where(include).ToArray();
        if (allowed.Length == 0) throw new ArgumentException("No class is included.", nameof(include));
        for (int i = 0; i < count; i++)
        {
            int cls = allowed[random.Next(allowed.Length)];
            colour[i] = cls / Shapes.Count;
            shape[i] = cls % Shapes.Count;
            scale[i] = random.Next(Sizes.Count);
            Draw(pixels.AsSpan(i * imageSize * imageSize * 3, imageSize * imageSize * 3), imageSize, shape[i], colour[i], scale[i], random);
        }
        return new SyntheticShapes(pixels, count, imageSize, shape, colour, scale);
    }

    private static void Draw(Span<byte> image, int n, int shape, int colour, int scale, Random random)
    {
        for (int p = 0; p < n * n; p++)
        {
            byte g = (byte)(30 + random.Next(30));
            image[p * 3] = image[p * 3 + 1] = image[p * 3 + 2] = g;
        }
        double radius = (scale == 0 ? 0.16 : 0.32) * n * (0.9 + 0.2 * random.NextDouble());
        double cx = radius + random.NextDouble() * (n - 2 * radius);
        double cy = radius + random.NextDouble() * (n - 2 * radius);
        var (_, r, gC, b) = Colours[colour];
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                double dx = (x + 0.5 - cx) / radius, dy = (y + 0.5 - cy) / radius;
                bool inside = shape switch
                {
                    0 => dx * dx + dy * dy <= 1,
                    1 => Math.Abs(dx) <= 0.8 && Math.Abs(dy) <= 0.8,
                    2 => dy <= 0.8 && dy >= -0.9 && Math.Abs(dx) <= (dy + 0.9) / 1.7 * 0.95,
                    _ => (Math.Abs(dx) <= 0.28 && Math.Abs(dy) <= 0.95) || (Math.Abs(dy) <= 0.28 && Math.Abs(dx) <= 0.95),
                };
                if (!inside) continue;
                int p = (y * n + x) * 3;
                image[p] = Jitter(r, random);
                image[p + 1] = Jitter(gC, random);
                image[p + 2] = Jitter(b, random);
            }
    }

    private static byte Jitter(byte v, Random random) => (byte)Math.Clamp(v + random.Next(-12, 13), 0, 255);
}
