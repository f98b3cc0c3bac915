using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Clip.MLNet.Indexing;
using Clip.MLNet.Tests.Imaging;
using Clip.MLNet.Tests.Support;
using SkiaSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Indexing;

[CollectionDefinition(Name)]
public sealed class IndexCollection : ICollectionFixture<IndexCorpus>
{
    public const string Name = "Index";
}

/// <summary>
/// What the index tests share: a corpus of 120 small generated images in nested folders (JPEG, PNG, BMP), the
/// reference model, and one uninterrupted <c>clip index --partitions 4</c> run over the corpus that the other
/// runs are compared with byte for byte.
/// </summary>
public sealed class IndexCorpus : IDisposable
{
    /// <summary>The flags of every run compared byte for byte (same batch and threads as the reference run).</summary>
    public static readonly string[] RunFlags = ["--partitions", "4", "--batch", "4", "--threads", "1", "--quiet"];

    public const int ImageCount = 120;

    private readonly TempDir temp = new();
    private readonly Lazy<string> fullRun;
    private readonly Lazy<ClipModel> model;

    public IndexCorpus()
    {
        Images = Path.Combine(temp.Path, "corpus");
        for (int i = 0; i < ImageCount; i++)
        {
            var folder = Path.Combine(Images, $"group{i % 3}", i % 2 == 0 ? "even" : Path.Combine("odd", $"sub{i % 5}"));
            Directory.CreateDirectory(folder);
            var (format, extension) = (i % 3) switch { 0 => ("jpg", ".jpg"), 1 => ("png", ".png"), _ => ("bmp", ".bmp") };
            File.WriteAllBytes(Path.Combine(folder, $"img{i:D3}{extension}"), Image(i, format));
        }
        fullRun = new Lazy<string>(() =>
        {
            var output = Path.Combine(temp.Path, "full");
            var result = Cli(["index", "--model", ModelPath, "--images", Images, "--output", output, .. RunFlags]);
            Assert.True(result.ExitCode == 0, result.Tail());
            return output;
        });
        model = new Lazy<ClipModel>(() => ClipModel.Load(ModelPath));
    }

    public string Images { get; }

    public static string ModelPath => Fixtures.ReferencePath("vit", "hf");

    /// <summary>The reference run's index folder.</summary>
    public string FullRun => fullRun.Value;

    /// <summary>The reference model, loaded in this process (shared: do not dispose).</summary>
    public ClipModel Model => model.Value;

    /// <summary>A new empty folder inside the corpus's temporary folder.</summary>
    public string NewFolder(string name)
    {
        var path = Path.Combine(temp.Path, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>The clip tool built beside the tests (the test project builds it).</summary>
    public static string ToolPath
    {
        get
        {
#if DEBUG
            const string configuration = "Debug";
#else
            const string configuration = "Release";
#endif
            var path = Path.Combine(Fixtures.RepositoryRoot, "src", "Clip.MLNet.Cli", "bin", configuration, "net10.0", "clip.dll");
            return File.Exists(path) ? path : throw new InvalidOperationException($"the clip tool is not built: {path} (build src/Clip.MLNet.Cli -c {configuration})");
        }
    }

    /// <summary>Runs <c>clip ARGS</c> to completion.</summary>
    internal static ProcessRunner.Result Cli(IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null) =>
        ProcessRunner.Dotnet([ToolPath, .. arguments], Directory.GetCurrentDirectory(), environment, TimeSpan.FromMinutes(3));

    /// <summary>An image with its own colours and pattern: JPEG, PNG or BMP.</summary>
    public static byte[] Image(int seed, string format, int width = 160, int height = 120)
    {
        (byte, byte, byte, byte) Color(int x, int y)
        {
            int r = (x * (seed % 7 + 1) + seed * 37) & 0xFF;
            int g = (y * (seed % 5 + 2) + seed * 11) & 0xFF;
            int b = ((x + y) * (seed % 3 + 1) ^ (seed * 29)) & 0xFF;
            return ((byte)r, (byte)g, (byte)b, 255);
        }
        return format switch
        {
            "jpg" => TestImages.Encode(width, height, Color, SKEncodedImageFormat.Jpeg),
            "png" => TestImages.Encode(width, height, Color, SKEncodedImageFormat.Png),
            "bmp" => Bmp(width, height, Color),
            _ => throw new ArgumentException(format),
        };
    }

    /// <summary>A 24-bit BMP (bottom-up, rows padded to 4 bytes).</summary>
    private static byte[] Bmp(int width, int height, Func<int, int, (byte R, byte G, byte B, byte A)> color)
    {
        int stride = (width * 3 + 3) & ~3;
        var bytes = new byte[54 + stride * height];
        bytes[0] = (byte)'B';
        bytes[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(2), bytes.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(34), stride * height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b, _) = color(x, y);
                int p = 54 + (height - 1 - y) * stride + x * 3;
                (bytes[p], bytes[p + 1], bytes[p + 2]) = (b, g, r);
            }
        return bytes;
    }

    /// <summary>The rows of a float16 .npy file as float32.</summary>
    public static float[][] ReadRows(string path)
    {
        var info = NpyFile.ReadInfo(path);
        Assert.Equal("<f2", info.Descr);
        var bytes = File.ReadAllBytes(path).AsSpan((int)info.DataOffset);
        var halves = MemoryMarshal.Cast<byte, Half>(bytes);
        var rows = new float[info.Rows][];
        for (int r = 0; r < info.Rows; r++)
        {
            rows[r] = new float[info.Columns];
            for (int c = 0; c < info.Columns; c++) rows[r][c] = (float)halves[(int)(r * info.Columns + c)];
        }
        return rows;
    }

    /// <summary>The L2-normalised image embedding the model computes in this process for one file.</summary>
    public float[] EmbedImage(string path)
    {
        var pixels = new ClipImagePreprocessor(Model.ImageResolution).Preprocess(path);
        using var input = tensor(pixels, [1, 3, Model.ImageResolution, Model.ImageResolution]);
        using var features = Model.EncodeImage(input);
        using var normal = ClipModel.Normalize(features);
        return normal.data<float>().ToArray();
    }

    /// <summary>The L2-normalised caption embeddings the model computes in this process.</summary>
    public float[][] EmbedTexts(IReadOnlyList<string> texts)
    {
        using var tokens = Model.Tokenizer!.Tokenize(texts);
        using var features = Model.EncodeText(tokens);
        using var normal = ClipModel.Normalize(features);
        var flat = normal.data<float>().ToArray();
        int d = (int)normal.shape[1];
        return Enumerable.Range(0, texts.Count).Select(i => flat[(i * d)..((i + 1) * d)]).ToArray();
    }

    public static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }

    /// <summary>Every file under an index folder except <c>.partial/</c>, by relative path.</summary>
    public static SortedDictionary<string, byte[]> Files(string folder) => new(
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(folder, f).StartsWith(".partial", StringComparison.Ordinal))
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes), StringComparer.Ordinal);

    /// <summary>Asserts two index folders hold the same files with the same bytes.</summary>
    public static void AssertSameFiles(string expected, string actual)
    {
        var a = Files(expected);
        var b = Files(actual);
        Assert.Equal(a.Keys, b.Keys);
        foreach (var (name, bytes) in a)
            Assert.True(bytes.AsSpan().SequenceEqual(b[name]), $"{name} differs between {expected} and {actual}");
    }

    public void Dispose()
    {
        if (model.IsValueCreated) model.Value.Dispose();
        temp.Dispose();
    }
}
