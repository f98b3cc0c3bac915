using System.IO.Compression;
using static TorchSharp.torch;

namespace Clip.MLNet.Weights;

/// <summary>
/// A PyTorch zip archive: what <c>torch.save</c> writes (a pickled object in <c>data.pkl</c>, storages
/// in <c>data/</c>) and what <c>torch.jit.save</c> writes (the same, plus <c>code/</c> and
/// <c>constants.pkl</c>, with modules pickled as <c>__torch__</c> objects). Only the data is read;
/// TorchScript code is never looked at.
/// </summary>
internal sealed class TorchArchive : IDisposable
{
    private readonly ZipArchive zip;
    private readonly string prefix;
    private readonly string path;

    private TorchArchive(string path, ZipArchive zip, string prefix, bool isTorchScript)
    {
        this.path = path;
        this.zip = zip;
        this.prefix = prefix;
        IsTorchScript = isTorchScript;
    }

    /// <summary>True for a TorchScript archive (<c>torch.jit.save</c>).</summary>
    public bool IsTorchScript { get; }

    public static TorchArchive Open(string path)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read, leaveOpen: false);
        }
        catch (InvalidDataException e)
        {
            throw new ClipCheckpointException(path, $"not a readable zip archive (truncated or damaged file?): {e.Message}", e);
        }
        try
        {
            foreach (var entry in zip.Entries)
            {
                var name = entry.FullName.Replace('\\', '/');
                if (name.StartsWith('/') || name.Split('/').Any(part => part == "..") || (name.Length > 1 && name[1] == ':'))
                    throw new ClipCheckpointException(path, $"the archive entry '{entry.FullName}' points outside the archive; refusing the file");
            }
            var pickles = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
            if (pickles.Count != 1)
                throw new ClipCheckpointException(path, "a zip archive, but not a PyTorch checkpoint (no single '<name>/data.pkl' entry)");
            var prefix = pickles[0].FullName[..^"data.pkl".Length];
            bool isScript = zip.GetEntry(prefix + "constants.pkl") is not null || zip.Entries.Any(e => e.FullName.StartsWith(prefix + "code/", StringComparison.Ordinal));
            var byteorder = zip.GetEntry(prefix + "byteorder");
            if (byteorder is not null)
            {
                using var r = new StreamReader(byteorder.Open());
                if (r.ReadToEnd().Trim() != "little") throw new ClipCheckpointException(path, "big-endian PyTorch archives are not supported");
            }
            return new TorchArchive(path, zip, prefix, isScript);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>Unpickles <c>data.pkl</c> under the allow-list (TorchScript classes only in a TorchScript archive).</summary>
    public object? LoadData()
    {
        var entry = zip.GetEntry(prefix + "data.pkl")!;
        using var raw = entry.Open();
        using var buffered = new MemoryStream();
        try { raw.CopyTo(buffered); }
        catch (InvalidDataException e) { throw new ClipCheckpointException(path, $"data.pkl cannot be read: {e.Message}", e); }
        buffered.Position = 0;
        return PickleReader.Load(buffered, path, allowTorchScriptClasses: IsTorchScript);
    }

    /// <summary>Reads the tensor <paramref name="t"/> from its storage entry.</summary>
    public Tensor Read(TensorRef t, string name)
    {
        var entry = zip.GetEntry(prefix + "data/" + t.Storage.Key)
            ?? throw new ClipCheckpointException(path, $"the storage of '{name}' (data/{t.Storage.Key}) is missing from the archive");
        long bytes = t.Storage.Numel * TensorBytes.ElementSize(t.Storage.DType);
        if (entry.Length < bytes)
            throw new ClipCheckpointException(path, $"the storage of '{name}' holds {entry.Length} bytes, {bytes} expected (truncated file?)");
        using var stream = entry.Open();
        Tensor storage;
        try { storage = TensorBytes.ReadTensor(stream, t.Storage.DType, t.Storage.Numel, path, $"the storage of '{name}'"); }
        catch (InvalidDataException e)
        {
            throw new ClipCheckpointException(path, $"the storage of '{name}' cannot be read: {e.Message}", e);
        }
        using (storage)
        {
            long numel = t.Shape.Aggregate(1L, (a, b) => a * b);
            if (t.Offset == 0 && numel == t.Storage.Numel && IsContiguous(t.Shape, t.Stride))
                return storage.view(t.Shape);
            using var view = storage.as_strided(t.Shape, t.Stride, t.Offset);
            return view.clone();
        }
    }

    private static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    /// <summary>Flattens what <see cref="LoadData"/> returned into named tensors.</summary>
    public static void Collect(object? root, string prefix, Dictionary<string, TensorRef> into)
    {
        switch (root)
        {
            case TensorRef t:
                into[prefix] = t;
                break;
            case PickleRecord r when r.Attributes is not null:
                foreach (var (k, v) in r.Attributes.Items)
                    if (k is string key && (v is TensorRef || v is PickleRecord))
                        Collect(v, prefix.Length == 0 ? key : prefix + "." + key, into);
                break;
            case PickleDict d:
                foreach (var (k, v) in d.Items)
                    if (k is string key && v is TensorRef t)
                        into[prefix.Length == 0 ? key : prefix + "." + key] = t;
                break;
        }
    }

    public void Dispose() => zip.Dispose();
}
