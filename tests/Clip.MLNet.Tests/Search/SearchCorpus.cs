using System.Diagnostics;
using System.Text;
using Clip.MLNet.Indexing;
using Clip.MLNet.Tests.Indexing;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Search;

[CollectionDefinition(Name)]
public sealed class SearchCollection : ICollectionFixture<SearchCorpus>
{
    public const string Name = "Search";
}

/// <summary>
/// What the search tests share: an index of <see cref="ImageCount"/> small generated images in 3 partitions, built by
/// <c>clip index</c> with the reference ViT, the model loaded in this process (to embed queries for brute force), and one
/// <c>clip serve</c> process on 127.0.0.1 (any free port) over the index.
/// </summary>
public sealed class SearchCorpus : IDisposable
{
    public const int ImageCount = 300;

    private readonly TempDir temp = new();
    private readonly Lazy<ClipModel> model = new(() => ClipModel.Load(IndexCorpus.ModelPath));
    private readonly Lazy<ServerProcess> server;

    public SearchCorpus()
    {
        Images = Path.Combine(temp.Path, "images");
        for (int i = 0; i < ImageCount; i++)
        {
            var folder = Path.Combine(Images, $"set{i % 4}");
            Directory.CreateDirectory(folder);
            var format = i % 2 == 0 ? "jpg" : "png";
            File.WriteAllBytes(Path.Combine(folder, $"item{i:D3}.{format}"), IndexCorpus.Image(i, format, 64, 48));
        }
        Index = Path.Combine(temp.Path, "index");
        var result = IndexCorpus.Cli(["index", "--model", IndexCorpus.ModelPath, "--images", Images, "--output", Index, "--partitions", "3", "--batch", "50", "--quiet"]);
        Assert.True(result.ExitCode == 0, result.Tail());
        server = new Lazy<ServerProcess>(() => ServerProcess.Start(Index));
    }

    public string Images { get; }

    /// <summary>The index folder.</summary>
    public string Index { get; }

    /// <summary>The reference model in this process (shared: do not dispose).</summary>
    public ClipModel Model => model.Value;

    /// <summary>The base address of the running <c>clip serve</c>, for example <c>http://127.0.0.1:40123</c>.</summary>
    public string ServerUrl => server.Value.Url;

    /// <summary>The server's output so far (for assertion messages).</summary>
    public string ServerOutput => server.IsValueCreated ? server.Value.Output : "";

    /// <summary>A copy of the index in a new folder (to damage).</summary>
    public string CopyIndex(string name)
    {
        var copy = Path.Combine(temp.Path, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var file in Directory.EnumerateFiles(Index, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(Index, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return copy;
    }

    /// <summary>Every row of the index's img_emb files (partition by partition) with its metadata path.</summary>
    public (float[] Row, string Path)[] Rows()
    {
        var layout = ClipIndexReader.ReadLayout(Index);
        var rows = new List<(float[], string)>();
        for (int p = 0; p < layout.Partitions; p++)
        {
            var embeddings = IndexCorpus.ReadRows(layout.ImageEmbeddingPath(p));
            var metadata = ClipIndexReader.ReadMetadata(layout.MetadataPath(p));
            Assert.Equal(embeddings.Length, metadata.Count);
            for (int i = 0; i < embeddings.Length; i++) rows.Add((embeddings[i], metadata[i].ImagePath));
        }
        return [.. rows];
    }

    /// <summary>The query's normalised float32 embedding, computed in this process.</summary>
    public float[] EmbedText(string text)
    {
        using var tokens = Model.Tokenizer!.Tokenize([text]);
        using var features = Model.EncodeText(tokens);
        using var normal = ClipModel.Normalize(features);
        return normal.data<float>().ToArray();
    }

    public void Dispose()
    {
        if (server.IsValueCreated) server.Value.Dispose();
        if (model.IsValueCreated) model.Value.Dispose();
        temp.Dispose();
    }

    /// <summary>A <c>clip serve</c> child process; its address is read from its first line on stderr.</summary>
    private sealed class ServerProcess : IDisposable
    {
        private readonly Process process;
        private readonly StringBuilder output = new();

        private ServerProcess(Process process, string url)
        {
            this.process = process;
            Url = url;
        }

        public string Url { get; private set; }

        public string Output { get { lock (output) return output.ToString(); } }

        public static ServerProcess Start(string index)
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var a in new[] { IndexCorpus.ToolPath, "serve", "--index", index, "--port", "0", "--host", "127.0.0.1" }) info.ArgumentList.Add(a);
            info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            var process = Process.Start(info)!;
            var result = new ServerProcess(process, "");
            var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            void Line(string? line)
            {
                if (line is null) { ready.TrySetException(new InvalidOperationException("clip serve exited: " + result.Output)); return; }
                lock (result.output) result.output.AppendLine(line);
                int at = line.IndexOf(" at http://", StringComparison.Ordinal);
                if (line.StartsWith("serving ", StringComparison.Ordinal) && at > 0) ready.TrySetResult(line[(at + 4)..].Trim());
            }
            process.ErrorDataReceived += (_, e) => Line(e.Data);
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (result.output) result.output.AppendLine(e.Data); };
            process.StandardInput.Close();
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            if (!ready.Task.Wait(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("clip serve did not start in 2 minutes: " + result.Output);
            }
            result.Url = ready.Task.Result;
            return result;
        }

        public void Dispose()
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit(10_000);
            process.Dispose();
        }
    }
}
