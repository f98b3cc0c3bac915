using System.IO.Compression;
using System.Security.Cryptography;
using Clip.MLNet.Native;
using Clip.MLNet.Tests.Packaging;
using Clip.MLNet.Tests.Support;

namespace Clip.MLNet.Tests.Native;

/// <summary>
/// TorchSharp's native library loaded by the library itself (<see cref="ClipNative"/>): the ELF facts it decides by,
/// the private copy it makes, and whole processes that start with an empty private cache, with a stray libtorch on
/// the library path, or with one loaded before Clip.MLNet.
/// </summary>
public sealed class NativeLoaderTests
{
    private const string Marker = "GLIBCXX_3.4.32";

    /// <summary>libLibTorchSharp.so straight from the TorchSharp .nupkg, as published.</summary>
    internal static string PublishedCopy(TempDir dir)
    {
        var version = RepositoryFacts.PackageVersion("TorchSharp");
        var nupkg = Path.Combine(NuGetPackagesFolder, "torchsharp", version, $"torchsharp.{version}.nupkg");
        using var zip = ZipFile.OpenRead(Fixtures.Require(nupkg));
        var path = dir.File(TorchSharpNativeLoader.LibraryFile);
        zip.GetEntry("runtimes/linux-x64/native/libLibTorchSharp.so")!.ExtractToFile(path);
        return path;
    }

    internal static string NuGetPackagesFolder => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
        ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Whether this machine's libstdc++ lacks the marker's version (Debian 12 and the like).</summary>
    internal static bool MachineLacksMarkerVersion(string published) =>
        TorchSharpNativeLoader.VersionsToWeaken(ElfImage.Read(published, withSymbols: true), TorchSharpNativeLoader.MappedLibraries()).Count > 0;

    [Fact]
    public void Reads_the_soname_needed_libraries_and_what_the_marker_version_binds()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var image = ElfImage.Read(PublishedCopy(dir), withSymbols: true);
        Assert.Equal("libLibTorchSharp.so", image.SoName);
        Assert.Contains("libtorch_cpu.so", image.Needed);
        Assert.Contains("libstdc++.so.6", image.Needed);
        var need = Assert.Single(image.VersionNeeds, n => n.Name == Marker);
        Assert.Equal("libstdc++.so.6", need.Library);
        Assert.False(need.IsWeak);
        // The version binds one symbol, the marker that GCC 13's headers reference and nothing calls.
        Assert.Equal(["_ZSt21ios_base_library_initv"], image.SymbolsOfVersion(need.Index));
        // Older versions bind real code.
        var common = Assert.Single(image.VersionNeeds, n => n.Name == "GLIBCXX_3.4");
        Assert.True(image.SymbolsOfVersion(common.Index).Count > 10);
    }

    [Fact]
    public void Not_an_elf_file_is_an_error_naming_it()
    {
        using var dir = new TempDir();
        var text = dir.File("notes.so");
        File.WriteAllText(text, "not a library");
        var e = Assert.Throws<InvalidDataException>(() => ElfImage.Read(text));
        Assert.Contains(text, e.Message);
        var cut = dir.File("cut.so");
        if (!OperatingSystem.IsLinux()) return;
        File.WriteAllBytes(cut, File.ReadAllBytes(PublishedCopy(dir))[..4096]);
        Assert.Contains(cut, Assert.Throws<InvalidDataException>(() => ElfImage.Read(cut)).Message);
    }

    [Fact]
    public void Decides_by_the_libstdcxx_in_use_and_refuses_versions_that_bind_real_code()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var published = PublishedCopy(dir);
        var image = ElfImage.Read(published, withSymbols: true);
        var libstdcxx = TorchSharpNativeLoader.MappedLibraries().First(p => Path.GetFileName(p).StartsWith("libstdc++.so.6", StringComparison.Ordinal));
        var provides = ElfImage.Read(libstdcxx).VersionDefinitions.Contains(Marker);
        Assert.Equal(provides ? [] : [Marker], TorchSharpNativeLoader.VersionsToWeaken(image, [libstdcxx]));

        // A "libstdc++" that defines no GLIBCXX version at all: GLIBCXX_3.4 binds real code, so no copy can help.
        var other = TorchSharpNativeLoader.MappedLibraries().First(p => Path.GetFileName(p).StartsWith("libc.so", StringComparison.Ordinal));
        var fake = dir.File("libstdc++.so.6");
        File.Copy(other, fake);
        var e = Assert.Throws<ClipNativeLibraryException>(() => TorchSharpNativeLoader.VersionsToWeaken(image, [fake]));
        Assert.Contains(published, e.Message);
        Assert.Matches(@"needs (GLIBCXX|CXXABI)_[\d.]+ of libstdc\+\+\.so\.6 \(for _Z", e.Message); // a version binding real code
        Assert.Contains(fake, e.Message);
        Assert.Contains("GCC 13", e.Message);
    }

    [Fact]
    public void Private_copy_changes_one_bit_verifies_itself_and_repairs_a_damaged_copy()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var published = PublishedCopy(dir);
        var original = File.ReadAllBytes(published);
        var image = ElfImage.Read(published, withSymbols: true);
        var cache = Path.Combine(dir.Path, "cache");
        var previous = Environment.GetEnvironmentVariable(TorchSharpNativeLoader.CacheVariable);
        Environment.SetEnvironmentVariable(TorchSharpNativeLoader.CacheVariable, cache);
        try
        {
            // Two at once into an empty cache: both get the same, whole file.
            var copies = Enumerable.Range(0, 4).AsParallel().Select(_ => TorchSharpNativeLoader.PrivateCopy(published, image, [Marker])).ToArray();
            var copy = Assert.Single(copies.Distinct());
            Assert.StartsWith(cache, copy);
            var patched = File.ReadAllBytes(copy);
            var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToArray();
            Assert.Equal(original.Length, patched.Length);
            Assert.Equal(original[changed.Single()] | ElfImage.VerFlagWeak, patched[changed.Single()]);
            Assert.True(Assert.Single(ElfImage.Read(copy).VersionNeeds, n => n.Name == Marker).IsWeak);
            Assert.Equal(original, File.ReadAllBytes(published)); // the source is never changed
            Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(copy)!, "*.tmp", new EnumerationOptions { AttributesToSkip = 0 }));

            // Used as it is when it verifies; replaced when it does not.
            var written = File.GetLastWriteTimeUtc(copy);
            Thread.Sleep(20);
            Assert.Equal(copy, TorchSharpNativeLoader.PrivateCopy(published, image, [Marker]));
            Assert.Equal(written, File.GetLastWriteTimeUtc(copy));
            File.WriteAllBytes(copy, patched[..1000]);
            Assert.Equal(copy, TorchSharpNativeLoader.PrivateCopy(published, image, [Marker]));
            Assert.Equal(SHA256.HashData(patched), SHA256.HashData(File.ReadAllBytes(copy)));
        }
        finally
        {
            Environment.SetEnvironmentVariable(TorchSharpNativeLoader.CacheVariable, previous);
        }
    }

    /// <summary>A small real ELF library (libtorch's OpenMP runtime, which needs only libc), copied under libtorch's names: a stand-in for a system libtorch.</summary>
    private static string StrayLibTorch(TempDir dir)
    {
        var folder = Directory.CreateDirectory(dir.File("stray-libtorch")).FullName;
        var donor = TorchSharpNativeLoader.CandidateFolders().Select(d => Path.Combine(d, "libgomp-98b21ff3.so.1")).First(File.Exists);
        foreach (var name in new[] { "libtorch_cpu.so", "libtorch.so", "libc10.so" })
            File.Copy(donor, Path.Combine(folder, name));
        return folder;
    }

    [Fact]
    public void A_fresh_process_with_an_empty_private_cache_and_a_stray_libtorch_on_the_library_path_loads_and_computes()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var stray = StrayLibTorch(dir);
        var cache = dir.File("native-cache");
        var result = ProcessRunner.Dotnet([typeof(ChildProcessEntry).Assembly.Location, "native-embed", Fixtures.ReferencePath("vit", "hf")],
            dir.Path, new Dictionary<string, string?> { ["LD_LIBRARY_PATH"] = stray, [TorchSharpNativeLoader.CacheVariable] = cache },
            TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, result.Tail());
        Assert.Contains("features [2,", result.StdOut);
        Assert.DoesNotContain(stray, result.StdOut); // no library of the stray folder is mapped
        var copies = Directory.Exists(cache) ? Directory.GetFiles(cache, "libLibTorchSharp.so", SearchOption.AllDirectories) : [];
        Assert.Equal(MachineLacksMarkerVersion(PublishedCopy(dir)) ? 1 : 0, copies.Length);
    }

    [Fact]
    public void A_libtorch_loaded_before_Clip_MLNet_is_named_in_the_error()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var stray = Path.Combine(StrayLibTorch(dir), "libtorch_cpu.so");
        var result = ProcessRunner.Dotnet([typeof(ChildProcessEntry).Assembly.Location, "native-stray", stray], dir.Path,
            new Dictionary<string, string?> { [ChildProcessEntry.RawNativeVariable] = "1", [TorchSharpNativeLoader.CacheVariable] = dir.File("native-cache") },
            TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 3, result.Tail());
        Assert.Contains(stray, result.StdOut);
        Assert.Contains("ClipNative.Initialize()", result.StdOut);
    }
}
