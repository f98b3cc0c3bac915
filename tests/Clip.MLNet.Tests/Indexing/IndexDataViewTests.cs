using Clip.MLNet.Indexing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Clip.MLNet.Tests.Indexing;

/// <summary>An index read back as an ML.NET IDataView, and the library API (progress, cancellation).</summary>
[Collection(IndexCollection.Name)]
public sealed class IndexDataViewTests(IndexCorpus corpus)
{
    [Fact]
    public void AnIndexReadsBackAsADataViewOfEmbeddingsAndMetadata()
    {
        var ml = new MLContext(seed: 1);
        var view = ClipIndexReader.LoadDataView(ml, corpus.FullRun);
        var embedding = view.Schema["ImageEmbedding"];
        Assert.Equal(64, ((VectorDataViewType)embedding.Type).Size);
        Assert.Equal(TextDataViewType.Instance, view.Schema["ImagePath"].Type);
        Assert.Equal(TextDataViewType.Instance, view.Schema["Caption"].Type);
        Assert.Null(view.Schema.GetColumnOrNull("TextEmbedding"));

        var paths = view.GetColumn<string>("ImagePath").ToList();
        var vectors = view.GetColumn<float[]>("ImageEmbedding").ToList();
        var partitions = view.GetColumn<int>("Partition").ToList();
        Assert.Equal(IndexCorpus.ImageCount, paths.Count);
        var layout = ClipIndexReader.ReadLayout(corpus.FullRun);
        int row = 0;
        for (int p = 0; p < 4; p++)
        {
            var rows = IndexCorpus.ReadRows(layout.ImageEmbeddingPath(p));
            var metadata = ClipIndexReader.ReadMetadata(layout.MetadataPath(p));
            for (int r = 0; r < rows.Length; r++, row++)
            {
                Assert.Equal(metadata[r].ImagePath, paths[row]);
                Assert.Equal(rows[r], vectors[row]);
                Assert.Equal(p, partitions[row]);
            }
        }
        // A usual consumer: k-means over the embeddings.
        var clusters = ml.Clustering.Trainers.KMeans("ImageEmbedding", numberOfClusters: 3).Fit(view).Transform(view);
        Assert.Equal(IndexCorpus.ImageCount, clusters.GetColumn<uint>("PredictedLabel").Count());
    }

    [Fact]
    public void TheLibraryReportsProgressAndStopsWhenCancelled()
    {
        var folder = corpus.NewFolder("library");
        var progress = new List<ClipIndexProgress>();
        var options = new ClipIndexOptions { OutputFolder = folder, ModelName = "reference", ModelSha256 = ClipIndexer.ModelSha256(IndexCorpus.ModelPath), Partitions = 3, BatchSize = 4 };
        var source = ClipIndexSource.FromImages([Path.Combine(corpus.Images, "group1")]);
        using (var cancel = new CancellationTokenSource())
        {
            var indexer = ClipIndexer.Open(corpus.Model, source, options);
            var stopping = new Progress(p => { if (p.Partition == 1) cancel.Cancel(); });
            Assert.ThrowsAny<OperationCanceledException>(() => indexer.Run(null, stopping, cancel.Token));
            Assert.True(indexer.IsComplete(0));
            Assert.False(indexer.IsComplete(1));
            Assert.Empty(Directory.GetFiles(Path.Combine(folder, ".partial")));
        }
        var resumed = ClipIndexer.Open(corpus.Model, source, options).Run(null, new Progress(progress.Add));
        Assert.Equal([false, true, true], resumed.Select(r => r.Written));
        Assert.Equal(IndexCorpus.ImageCount / 3, resumed.Sum(r => r.Rows) + ClipIndexReader.ReadMetadata(Path.Combine(folder, "metadata", "metadata_0.parquet")).Count);
        var last = progress[^1];
        Assert.Equal(last.ItemsTotal, last.ItemsDone);
        Assert.Equal(0, last.Failed);
        Assert.True(last.ImagesPerSecond > 0);
    }

    private sealed class Progress(Action<ClipIndexProgress> report) : IProgress<ClipIndexProgress>
    {
        public void Report(ClipIndexProgress value) => report(value);
    }
}
