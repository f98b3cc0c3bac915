using Clip.MLNet.Data;
using Clip.MLNet.Tests.Support;
using SkiaSharp;

namespace Clip.MLNet.Tests.Data;

/// <summary>Image folders and CSV/TSV files written here, read back; and their bad inputs.</summary>
public class ImageFolderAndCsvTests
{
    [Fact]
    public void ImageFolderClassesAreSortedSubfoldersAndFilesAreSortedImages()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("dog/b.png"), SKColors.Brown);
        DatasetFiles.WritePng(dir.File("dog/a.PNG"), SKColors.Brown);
        DatasetFiles.WritePng(dir.File("dog/nested/c.png"), SKColors.Brown);
        DatasetFiles.WritePng(dir.File("Zebra/z.png"), SKColors.White);
        DatasetFiles.WritePng(dir.File("cat/x.png"), SKColors.Gray);
        File.WriteAllText(dir.File("cat/notes.txt"), "not an image");
        File.WriteAllText(dir.File("README.md"), "a file at the top is not a class");
        DatasetFiles.WritePng(dir.File(".ipynb_checkpoints/x.png"), SKColors.Gray);   // hidden: not a class
        DatasetFiles.WritePng(dir.File("cat/._x.png"), SKColors.Gray);                // hidden: not an image
        DatasetFiles.WritePng(dir.File("cat/.cache/y.png"), SKColors.Gray);

        var data = ImageFolderReader.Read(dir.Path, "pets");

        Assert.Equal("pets", data.Name);
        Assert.Equal(new[] { "Zebra", "cat", "dog" }, data.ClassNames);   // ordinal: upper case first, as Python's sorted()
        Assert.Equal(new[] { "Zebra/z.png", "cat/x.png", "dog/a.PNG", "dog/b.png", "dog/nested/c.png" },
            data.ImagePaths!.Select(p => Path.GetRelativePath(dir.Path, p).Replace('\\', '/')));
        Assert.Equal(new[] { 0, 1, 2, 2, 2 }, data.Labels);
        Assert.All(data.ImagePaths!, p => Assert.True(Path.IsPathRooted(p)));
        Assert.False(data.HasCaptions);
    }

    [Fact]
    public void ImageFolderWithoutClassesOrWithAnEmptyClassIsNamed()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<InvalidDataException>(() => ImageFolderReader.Read(dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("no class folders", e.Message);

        DatasetFiles.WritePng(dir.File("a/1.png"), SKColors.Red);
        Directory.CreateDirectory(dir.File("b"));
        File.WriteAllText(dir.File("b/x.txt"), "");
        e = Assert.Throws<InvalidDataException>(() => ImageFolderReader.Read(dir.Path));
        Assert.Contains("'b'", e.Message);

        Assert.Throws<DirectoryNotFoundException>(() => ImageFolderReader.Read(dir.File("missing")));
    }

    [Fact]
    public void CsvWithQuotedCaptionsResolvesPathsAgainstItsFolder()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("img/a.png"), SKColors.Red);
        DatasetFiles.WritePng(dir.File("img/b.png"), SKColors.Blue);
        File.WriteAllText(dir.File("captions.csv"),
            "Image,caption,extra\n" +
            "img/a.png,\"a red square, plain\",1\n" +
            "img/a.png,\"a \"\"red\"\" one\nover two lines\",2\n" +
            "img/b.png,a blue square,3\n");

        var data = CsvDatasetReader.Read(dir.File("captions.csv"));

        Assert.Equal("captions", data.Name);
        Assert.Equal(new[] { "a red square, plain", "a \"red\" one\nover two lines", "a blue square" }, data.Captions);
        Assert.Equal(new[] { dir.File("img/a.png"), dir.File("img/a.png"), dir.File("img/b.png") }, data.ImagePaths);
        Assert.False(data.HasLabels);
    }

    [Fact]
    public void TsvWithLabelsGetsSortedClassesOrTheGivenOnes()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("a.png"), SKColors.Red);
        DatasetFiles.WritePng(dir.File("b.png"), SKColors.Blue);
        File.WriteAllText(dir.File("labels.tsv"), "filepath\tlabel\na.png\tred\nb.png\tblue\na.png\tred\n");

        var data = CsvDatasetReader.Read(dir.File("labels.tsv"));
        Assert.Equal(new[] { "blue", "red" }, data.ClassNames);
        Assert.Equal(new[] { 1, 0, 1 }, data.Labels);

        var ordered = CsvDatasetReader.Read(dir.File("labels.tsv"), new CsvDatasetOptions { ClassNames = new[] { "red", "green", "blue" } });
        Assert.Equal(new[] { 0, 2, 0 }, ordered.Labels);

        var e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(dir.File("labels.tsv"), new CsvDatasetOptions { ClassNames = new[] { "red" } }));
        Assert.Contains("labels.tsv, line 3", e.Message);
        Assert.Contains("'blue'", e.Message);
    }

    [Fact]
    public void RowWithoutCaptionOrImageIsNamedWithItsLine()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("a.png"), SKColors.Red);
        var csv = dir.File("pairs.csv");
        File.WriteAllText(csv, "image,caption\na.png,\"first,\nsecond\"\na.png,fine\na.png,  \n");
        var e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains($"{csv}, line 5", e.Message);
        Assert.Contains("no caption", e.Message);

        File.WriteAllText(csv, "image,caption\na.png,fine\n,an orphan caption\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains($"{csv}, line 3", e.Message);
        Assert.Contains("no image path", e.Message);

        File.WriteAllText(csv, "image,caption\n\na.png,fine\n\n\na.png,\n");   // blank lines still count
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains($"{csv}, line 6", e.Message);

        File.WriteAllText(csv, "image,caption\na.png\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains($"{csv}, line 2", e.Message);
        Assert.Contains("no caption", e.Message);
    }

    [Fact]
    public void MissingImageFileEmptyFileAndMissingColumnsAreNamed()
    {
        using var dir = new TempDir();
        var csv = dir.File("pairs.csv");
        File.WriteAllText(csv, "image,caption\nnot-there.png,a ghost\n");
        var e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains($"{csv}, line 2", e.Message);
        Assert.Contains("not-there.png", e.Message);

        File.WriteAllText(csv, "image,caption\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains(csv, e.Message);
        Assert.Contains("empty dataset", e.Message);

        File.WriteAllText(csv, "picture,caption\nx.png,y\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains("no image path column", e.Message);

        File.WriteAllText(csv, "image,words\nx.png,y\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains("neither a caption column", e.Message);

        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv, new CsvDatasetOptions { CaptionColumn = "text" }));
        Assert.Contains("no column 'text'", e.Message);

        File.WriteAllText(csv, "image,caption\n\"x.png,y\n");
        e = Assert.Throws<InvalidDataException>(() => CsvDatasetReader.Read(csv));
        Assert.Contains(csv, e.Message);
    }

    [Fact]
    public void CsvSpecTakesColumnNames()
    {
        using var dir = new TempDir();
        DatasetFiles.WritePng(dir.File("a.png"), SKColors.Red);
        File.WriteAllText(dir.File("f.csv"), "file_name,sentence,kind\na.png,a red square,red\n");
        var data = DatasetSpec.Parse($"sq=csv:{dir.File("f.csv")};image=file_name;caption=sentence;label=kind").Load();
        Assert.Equal("sq", data.Name);
        Assert.Equal(new[] { "a red square" }, data.Captions);
        Assert.Equal(new[] { "red" }, data.ClassNames);
    }
}
