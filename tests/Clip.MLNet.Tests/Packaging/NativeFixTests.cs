using System.IO.Compression;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Packaging;

/// <summary>The GLIBCXX_3.4.32 machine fix (build/GlibcxxWeakVersionTask.cs) on TorchSharp's library as published.</summary>
public sealed class NativeFixTests
{
    /// <summary>libLibTorchSharp.so straight from the TorchSharp .nupkg: the cache's unpacked copy may have been fixed already.</summary>
    private static string PristineCopy(TempDir dir)
    {
        var version = RepositoryFacts.PackageVersion("TorchSharp");
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var nupkg = Path.Combine(root, "torchsharp", version, $"torchsharp.{version}.nupkg");
        using var zip = ZipFile.OpenRead(Fixtures.Require(nupkg));
        var path = dir.File("libLibTorchSharp.so");
        zip.GetEntry("runtimes/linux-x64/native/libLibTorchSharp.so")!.ExtractToFile(path);
        return path;
    }

    [Fact]
    public void Marks_only_the_GLIBCXX_3_4_32_requirement_weak_and_only_once()
    {
        using var dir = new TempDir();
        var path = PristineCopy(dir);
        var original = File.ReadAllBytes(path);
        Assert.Equal(ElfVersionNeedState.Required, ElfVersionNeed.Inspect(path));

        Assert.Equal(ElfVersionNeedState.MadeWeak, ElfVersionNeed.MakeWeak(path));
        var fixedBytes = File.ReadAllBytes(path);
        Assert.Equal(original.Length, fixedBytes.Length);
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != fixedBytes[i]).ToArray();
        Assert.Single(changed);
        Assert.Equal(original[changed[0]] | 0x2, fixedBytes[changed[0]]); // VER_FLG_WEAK in vna_flags
        Assert.Equal(ElfVersionNeedState.Weak, ElfVersionNeed.Inspect(path));

        Assert.Equal(ElfVersionNeedState.Weak, ElfVersionNeed.MakeWeak(path));
        Assert.Equal(fixedBytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void Leaves_other_files_alone()
    {
        using var dir = new TempDir();
        var pristine = PristineCopy(dir);
        var text = dir.File("notes.txt");
        File.WriteAllText(text, "not a library");
        Assert.Equal(ElfVersionNeedState.NotElf, ElfVersionNeed.MakeWeak(text));
        Assert.Equal("not a library", File.ReadAllText(text));

        // A damaged library (cut short) is reported, not patched at a wrong offset.
        var cut = dir.File("cut.so");
        File.WriteAllBytes(cut, File.ReadAllBytes(pristine)[..4096]);
        Assert.Equal(ElfVersionNeedState.NotElf, ElfVersionNeed.MakeWeak(cut));

        // A library that asks for no such version.
        Assert.Equal(ElfVersionNeedState.NotRequired, ElfVersionNeed.Inspect(pristine, "GLIBCXX_9.9.99"));
    }

    [Fact]
    public void Knows_whether_the_system_library_provides_a_version()
    {
        if (!OperatingSystem.IsLinux()) return;
        var lib = SystemLibstdcxx.Find();
        Assert.NotNull(lib);
        Assert.True(SystemLibstdcxx.Provides(lib, "GLIBCXX_3.4"));
        Assert.False(SystemLibstdcxx.Provides(lib, "GLIBCXX_9.9.99"));
    }
}
