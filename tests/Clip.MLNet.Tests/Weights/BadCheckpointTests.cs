using System.IO.Compression;
using System.Text;
using Clip.MLNet.Tests.Support;
using Clip.MLNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Clip.MLNet.Tests.Weights;

/// <summary>Every bad weight file gets an exception that names the file and says what is wrong.</summary>
public class BadCheckpointTests
{
    private static ClipCheckpointException LoadFails(string path, ClipLoadOptions? options = null)
    {
        var e = Assert.Throws<ClipCheckpointException>(() => ClipModel.Load(path, options).Dispose());
        Assert.Equal(path, e.Path);
        Assert.StartsWith(path, e.Message);
        return e;
    }

    [Fact]
    public void MissingPathIsFileNotFound()
    {
        using var dir = new TempDir();
        var path = dir.File("nope.pt");
        var e = Assert.Throws<FileNotFoundException>(() => ClipModel.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void EmptyFile()
    {
        using var dir = new TempDir();
        var path = dir.File("empty.pt");
        File.WriteAllBytes(path, Array.Empty<byte>());
        Assert.Contains("empty", LoadFails(path).Problem);
    }

    [Fact]
    public void TextFileIsNotACheckpoint()
    {
        using var dir = new TempDir();
        var path = dir.File("notes.pt");
        File.WriteAllText(path, "these are not weights\n");
        Assert.Contains("not a checkpoint", LoadFails(path).Problem);
    }

    [Theory]
    [InlineData("vit/openai_jit.pt")]
    [InlineData("vit/openai_state_dict.pt")]
    [InlineData("vit/open_clip_model.safetensors")]
    public void TruncatedFile(string fixture)
    {
        using var dir = new TempDir();
        var path = dir.File("cut" + Path.GetExtension(fixture));
        var bytes = File.ReadAllBytes(Fixtures.ReferencePath(fixture.Split('/')));
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length * 2 / 3).ToArray());
        Assert.Contains("truncated", LoadFails(path).Problem);
    }

    [Fact]
    public void ZipThatIsNotAPyTorchArchive()
    {
        using var dir = new TempDir();
        var path = dir.File("other.pt");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("readme.txt").Open()))
            w.Write("hello");
        Assert.Contains("not a PyTorch checkpoint", LoadFails(path).Problem);
    }

    private static byte[] PickleCallingSystem()
    {
        // protocol 2: GLOBAL posix.system, ("echo pwned",), REDUCE, STOP: what pickle.dumps writes for a
        // class whose __reduce__ returns (os.system, ("echo pwned",)).
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x80, 0x02 });
        ms.Write(Encoding.ASCII.GetBytes("cposix\nsystem\n"));
        var arg = Encoding.UTF8.GetBytes("echo pwned");
        ms.WriteByte((byte)'X');
        ms.Write(BitConverter.GetBytes(arg.Length));
        ms.Write(arg);
        ms.Write(new byte[] { 0x85, (byte)'R', (byte)'.' });
        return ms.ToArray();
    }

    [Fact]
    public void PickleNamingAnotherGlobalIsRefusedInAnArchive()
    {
        using var dir = new TempDir();
        var path = dir.File("evil.pt");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        using (var s = zip.CreateEntry("evil/data.pkl").Open())
            s.Write(PickleCallingSystem());
        var e = LoadFails(path);
        Assert.Contains("posix.system", e.Problem);
        Assert.Contains("refusing", e.Problem);
    }

    [Fact]
    public void BarePickleNamingAnotherGlobalIsRefused()
    {
        using var dir = new TempDir();
        var path = dir.File("evil.bin");
        File.WriteAllBytes(path, PickleCallingSystem());
        Assert.Contains("posix.system", LoadFails(path).Problem);
    }

    [Fact]
    public void TorchScriptClassesAreRefusedOutsideTorchScriptArchives()
    {
        using var dir = new TempDir();
        var path = dir.File("record.pt");
        var pickle = new MemoryStream();
        pickle.Write(new byte[] { 0x80, 0x02 });
        pickle.Write(Encoding.ASCII.GetBytes("c__torch__.model\nCLIP\n"));
        pickle.Write(new byte[] { (byte)')', 0x81, (byte)'.' });
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        using (var s = zip.CreateEntry("record/data.pkl").Open())
            s.Write(pickle.ToArray());
        Assert.Contains("__torch__.model.CLIP", LoadFails(path).Problem);
    }

    [Fact]
    public void ZipEntryClimbingOutOfTheArchiveIsRefused()
    {
        using var dir = new TempDir();
        var path = dir.File("slip.pt");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("slip/data.pkl").Open()) s.Write(new byte[] { 0x80, 0x02, (byte)'}', (byte)'.' });
            using (var s = zip.CreateEntry("slip/../../etc/cron.d/evil").Open()) s.Write(new byte[] { 1 });
        }
        Assert.Contains("outside the archive", LoadFails(path).Problem);
    }

    private static Dictionary<string, Tensor> ReadFixtureTensors(string file)
    {
        using var f = SafetensorsFile.Open(Fixtures.ReferencePath("vit", file));
        return f.Entries.ToDictionary(e => e.Name, e => f.Read(e).DetachFromDisposeScope());
    }

    private static string WriteVariant(TempDir dir, Action<Dictionary<string, Tensor>> change)
    {
        var tensors = ReadFixtureTensors("open_clip_model.safetensors");
        change(tensors);
        var path = dir.File("variant.safetensors");
        SafetensorsFile.Write(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    [Fact]
    public void MissingKeyIsListed()
    {
        using var dir = new TempDir();
        var path = WriteVariant(dir, t => t.Remove("visual.ln_post.bias"));
        var problem = LoadFails(path).Problem;
        Assert.Contains("missing keys: visual.ln_post.bias", problem);
    }

    [Fact]
    public void UnexpectedKeyIsListedButHarmlessExtrasAreNot()
    {
        using var dir = new TempDir();
        var path = WriteVariant(dir, t =>
        {
            t["visual.extra_head.weight"] = torch.zeros(2, 2);
            t["text.position_ids"] = torch.arange(77).unsqueeze(0);
            t["input_resolution"] = torch.tensor(224L);
        });
        var problem = LoadFails(path).Problem;
        Assert.Contains("unexpected keys: visual.extra_head.weight", problem);
        Assert.DoesNotContain("position_ids", problem);
        Assert.DoesNotContain("input_resolution", problem);
    }

    [Fact]
    public void MisshapedKeyIsListedWithBothShapes()
    {
        using var dir = new TempDir();
        var path = WriteVariant(dir, t => t["visual.ln_pre.bias"] = torch.zeros(127));
        var problem = LoadFails(path).Problem;
        Assert.Contains("visual.ln_pre.bias (file [127], model [128])", problem);
    }

    [Fact]
    public void NotACLIPStateDict()
    {
        using var dir = new TempDir();
        var path = dir.File("resnet.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["fc.weight"] = torch.zeros(2, 2) });
        Assert.Contains("every CLIP model has", LoadFails(path).Problem);
    }

    [Fact]
    public void UnknownHiddenActIsNamed()
    {
        using var dir = new TempDir();
        var source = Fixtures.ReferencePath("vit", "hf");
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        var config = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"quick_gelu\"", "\"relu\""));
        var e = Assert.Throws<ClipCheckpointException>(() => ClipModel.Load(dir.Path).Dispose());
        Assert.Equal(config, e.Path);
        Assert.Contains("unknown hidden_act 'relu'", e.Problem);
    }

    [Fact]
    public void FolderWithoutWeights()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        Assert.Contains("no weights", LoadFails(dir.Path).Problem);
    }
}
