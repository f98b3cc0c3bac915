using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Clip.MLNet.Native;

/// <summary>
/// Loads TorchSharp's native library (libLibTorchSharp.so) and the libtorch it was built for, by full path and
/// leaves first, before TorchSharp looks for them by name. Two things go wrong when TorchSharp does it itself:
/// <list type="bullet">
/// <item>TorchSharp 0.107's library asks for libstdc++'s GLIBCXX_3.4.32 for one marker symbol that nothing calls
/// (<c>std::ios_base_library_init()</c>, referenced by GCC 13's headers); a libstdc++ older than GCC 13's (Debian 12,
/// Ubuntu 22.04, RHEL 9) refuses the library. Where the ELF file shows that the missing version binds only such
/// markers, a private copy with that requirement marked weak (VER_FLG_WEAK, a two-byte change) is made in a per-user
/// cache and loaded instead; the NuGet cache and the application's files are never changed.</item>
/// <item>TorchSharp loads <c>torch_cpu</c> by name, so a system libtorch on the library path (Debian's libtorch-dev,
/// LD_LIBRARY_PATH) wins over the package's copy, and LD_LIBRARY_PATH also wins over libtorch's own $ORIGIN
/// run path. Loading every library of the package by full path, each after the libraries it needs, lets the dynamic
/// loader satisfy every later request by soname with the package's files.</item>
/// </list>
/// Linux x64 only; elsewhere TorchSharp's own loading is used as it is.
/// </summary>
internal static class TorchSharpNativeLoader
{
    /// <summary>Overrides the folder of the private copies (default: $XDG_CACHE_HOME or ~/.cache, then clip-mlnet/native).</summary>
    public const string CacheVariable = "CLIP_MLNET_NATIVE_CACHE";
    public const string LibraryFile = "libLibTorchSharp.so";
    private const string LibTorchCpuFile = "libtorch_cpu.so";
    private const string LibStdCxx = "libstdc++.so.6";

    /// <summary>Versions that may be marked weak, with the only symbols they may bind: markers nothing calls.</summary>
    private static readonly Dictionary<string, string[]> MarkerVersions = new(StringComparer.Ordinal)
    {
        ["GLIBCXX_3.4.32"] = ["_ZSt21ios_base_library_initv"],
    };

    /// <summary>What was loaded from where.</summary>
    internal sealed record Outcome(string Description, string? LibTorchSharp, string? PrivateCopy, IReadOnlyList<string> Loaded);

    private static IntPtr libTorchSharpHandle;

    public static Outcome Load()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new Outcome("TorchSharp's own loading (not Linux x64)", null, null, []);

        var mapped = MappedLibraries();
        if (mapped.FirstOrDefault(p => Path.GetFileName(p) == LibraryFile) is { } already)
        {
            // The application (or an earlier load context) initialised TorchSharp itself: nothing to choose any more,
            // but a libtorch from outside TorchSharp's packages would compute with the wrong library: say so.
            CheckNoStrayLibTorch(mapped, Path.GetDirectoryName(already)!, null);
            return new Outcome($"already loaded from {already}", already, null, []);
        }

        var searched = CandidateFolders();
        var original = searched.Select(d => Path.Combine(d, LibraryFile)).FirstOrDefault(File.Exists)
            ?? throw new ClipNativeLibraryException(
                $"TorchSharp's native library {LibraryFile} was not found (looked in {string.Join(", ", searched)}); " +
                $"add the package TorchSharp-cpu (or TorchSharp-cuda-linux) in version {TorchSharpVersion() ?? "matching TorchSharp"} to the application");
        var ownFolder = Path.GetDirectoryName(original)!;
        var libtorchFolder = new[] { ownFolder }.Concat(searched).FirstOrDefault(d => File.Exists(Path.Combine(d, LibTorchCpuFile)))
            ?? throw new ClipNativeLibraryException(
                $"libtorch ({LibTorchCpuFile}) for {original} was not found (looked in {string.Join(", ", searched)}); " +
                $"add the package TorchSharp-cpu (or TorchSharp-cuda-linux) in version {TorchSharpVersion() ?? "matching TorchSharp"} to the application");

        var image = ElfImage.Read(original, withSymbols: true);
        var toWeaken = VersionsToWeaken(image, mapped);
        var toLoad = toWeaken.Count == 0 ? original : PrivateCopy(original, image, toWeaken);

        // Leaves first: by the time a library is loaded, each library it needs is already there under its soname.
        var loaded = new List<string>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        void LoadWithDependencies(string path, IEnumerable<string> needed)
        {
            foreach (var name in needed)
            {
                var file = new[] { libtorchFolder, ownFolder }.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
                if (file is null || !visited.Add(file)) continue; // a system library (libc, libstdc++), or done already
                LoadWithDependencies(file, ElfImage.Read(file).Needed);
            }
            try
            {
                var handle = NativeLibrary.Load(path);
                if (path == toLoad) libTorchSharpHandle = handle;
                loaded.Add(path);
            }
            catch (DllNotFoundException e)
            {
                throw new ClipNativeLibraryException($"{path} could not be loaded: {OneLine(e.Message)}", e);
            }
        }
        LoadWithDependencies(toLoad, image.Needed);
        CheckNoStrayLibTorch(MappedLibraries(), libtorchFolder, toLoad);

        try
        {
            // TorchSharp's P/Invokes ask for "LibTorchSharp": give them this handle rather than another copy.
            NativeLibrary.SetDllImportResolver(typeof(TorchSharp.torch).Assembly,
                (name, _, _) => name == "LibTorchSharp" ? libTorchSharpHandle : IntPtr.Zero);
        }
        catch (InvalidOperationException)
        {
            // The application set a resolver of its own; the loader still finds the library by its soname.
        }
        var description = toLoad == original
            ? $"{original} with libtorch from {libtorchFolder}"
            : $"{toLoad} (a copy of {original} with {string.Join(", ", toWeaken)} marked weak) with libtorch from {libtorchFolder}";
        return new Outcome(description, original, toLoad == original ? null : toLoad, loaded);
    }

    /// <summary>
    /// The libstdc++ versions that the library asks for as hard requirements and that the libstdc++ this process
    /// uses does not define. Each must bind only marker symbols, else the library cannot work here and the error
    /// says what to install.
    /// </summary>
    internal static List<string> VersionsToWeaken(ElfImage image, IReadOnlyList<string> mapped)
    {
        // /proc/self/maps shows the file itself (libstdc++.so.6.0.30), not the soname's link.
        var libstdcxx = mapped.FirstOrDefault(p => Path.GetFileName(p).StartsWith(LibStdCxx, StringComparison.Ordinal)) ?? SystemLibStdCxx();
        if (libstdcxx is null) return [];
        var provided = ElfImage.Read(libstdcxx).VersionDefinitions;
        var result = new List<string>();
        foreach (var need in image.VersionNeeds.Where(n => n.Library == LibStdCxx && !n.IsWeak && !provided.Contains(n.Name)))
        {
            var symbols = image.SymbolsOfVersion(need.Index);
            if (MarkerVersions.TryGetValue(need.Name, out var markers) && symbols.All(markers.Contains))
                result.Add(need.Name);
            else
                throw new ClipNativeLibraryException(
                    $"{image.Path} needs {need.Name} of {LibStdCxx} (for {string.Join(", ", symbols.DefaultIfEmpty("its symbols"))}), " +
                    $"which {libstdcxx} does not provide: install a newer libstdc++ (GCC 13 or later)");
        }
        return result;
    }

    /// <summary>
    /// A copy of <paramref name="original"/> with the requirements on <paramref name="versions"/> marked weak, in the
    /// per-user cache, under a folder named by the original's SHA-256. Verified by hash on every use; written to a
    /// temporary file and renamed into place, so that processes starting at once never see a half-written file.
    /// </summary>
    internal static string PrivateCopy(string original, ElfImage image, IReadOnlyCollection<string> versions)
    {
        var bytes = File.ReadAllBytes(original);
        var originalHash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        foreach (var need in image.VersionNeeds.Where(n => versions.Contains(n.Name)))
            bytes[need.FlagsOffset] |= (byte)ElfImage.VerFlagWeak; // vna_flags is little-endian: the bit is in its first byte
        var expected = SHA256.HashData(bytes);

        var folder = Path.Combine(CacheRoot(), originalHash[..16]);
        var target = Path.Combine(folder, LibraryFile);
        if (File.Exists(target) && SHA256.HashData(File.ReadAllBytes(target)).AsSpan().SequenceEqual(expected)) return target;
        try
        {
            Directory.CreateDirectory(folder);
            var temporary = Path.Combine(folder, $".{LibraryFile}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            // A rename replaces atomically: a process that mapped an earlier (damaged) file keeps its own inode.
            File.Move(temporary, target, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ClipNativeLibraryException(
                $"cannot write the private copy of {original} under {folder} ({OneLine(e.Message)}); set {CacheVariable} to a writable folder", e);
        }
        if (!SHA256.HashData(File.ReadAllBytes(target)).AsSpan().SequenceEqual(expected))
            throw new ClipNativeLibraryException($"the private copy {target} of {original} does not verify after writing; remove it and try again");
        return target;
    }

    internal static string CacheRoot() => CacheFolder("native", underChosen: null);

    /// <summary>
    /// A per-user cache folder: <c>$XDG_CACHE_HOME/clip-mlnet/NAME</c> or <c>~/.cache/clip-mlnet/NAME</c>; where
    /// <see cref="CacheVariable"/> is set, that folder itself (<paramref name="underChosen"/> null, the private copies)
    /// or its subfolder <paramref name="underChosen"/>, so that one variable moves every machine-level file.
    /// </summary>
    internal static string CacheFolder(string name, string? underChosen)
    {
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } chosen)
            return underChosen is null ? Path.GetFullPath(chosen) : Path.Combine(Path.GetFullPath(chosen), underChosen);
        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "clip-mlnet", name);
    }

    /// <summary>
    /// Where TorchSharp's packages put their native files: the application's native search folders (from its
    /// deps.json), TorchSharp's own folder, and the NuGet packages folder that a notebook loads TorchSharp from
    /// (torchsharp/VERSION and libtorch-cpu-linux-x64/VERSION).
    /// </summary>
    internal static List<string> CandidateFolders()
    {
        var folders = new List<string>();
        void Add(string? folder)
        {
            if (string.IsNullOrEmpty(folder)) return;
            var full = Path.GetFullPath(folder);
            if (Directory.Exists(full) && !folders.Contains(full)) folders.Add(full);
        }
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirectories)
            foreach (var folder in searchDirectories.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                Add(folder);
        var torchSharp = typeof(TorchSharp.torch).Assembly.Location;
        var torchSharpFolder = string.IsNullOrEmpty(torchSharp) ? null : Path.GetDirectoryName(torchSharp);
        foreach (var folder in new[] { torchSharpFolder, AppContext.BaseDirectory })
        {
            Add(folder);
            if (folder is not null) Add(Path.Combine(folder, "runtimes", "linux-x64", "native"));
        }

        var roots = new List<string>();
        // A notebook loads TorchSharp.dll from the packages folder: ROOT/torchsharp/VERSION/lib/TFM/TorchSharp.dll.
        if (torchSharpFolder is not null && Path.GetFullPath(Path.Combine(torchSharpFolder, "..", "..", "..")) is var id
            && Path.GetFileName(id).Equals("torchsharp", StringComparison.OrdinalIgnoreCase))
            roots.Add(Path.GetDirectoryName(id)!);
        roots.Add(Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));
        var version = TorchSharpVersion();
        var libtorch = LibTorchVersion();
        foreach (var root in roots)
        {
            if (version is not null) Add(Path.Combine(root, "torchsharp", version, "runtimes", "linux-x64", "native"));
            if (libtorch is not null) Add(Path.Combine(root, "libtorch-cpu-linux-x64", libtorch, "runtimes", "linux-x64", "native"));
        }
        return folders;
    }

    /// <summary>TorchSharp's package version, from its assembly (read without running TorchSharp's static constructor).</summary>
    internal static string? TorchSharpVersion()
    {
        var assembly = typeof(TorchSharp.torch).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        return informational?.Split('+')[0] ?? assembly.GetName().Version?.ToString(3);
    }

    /// <summary>
    /// The libtorch package version TorchSharp was built for (a constant inside TorchSharp, "2.10.0.0"), as NuGet
    /// names its folder ("2.10.0"). Reading a constant's value does not run the type's static constructor, which
    /// would start TorchSharp's own loading.
    /// </summary>
    internal static string? LibTorchVersion()
    {
        var field = typeof(TorchSharp.torch).GetField("libtorchPackageVersion", BindingFlags.NonPublic | BindingFlags.Static);
        if (field?.GetRawConstantValue() is not string raw || !Version.TryParse(raw, out var v)) return null;
        return v.Revision > 0 ? v.ToString(4) : v.ToString(3);
    }

    /// <summary>The libraries mapped into this process (from /proc/self/maps), in the order they appear.</summary>
    internal static List<string> MappedLibraries()
    {
        var result = new List<string>();
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var path = line[slash..];
                if (path.Contains(".so", StringComparison.Ordinal) && !result.Contains(path)) result.Add(path);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return result;
    }

    /// <summary>A libtorch mapped from anywhere but <paramref name="folder"/> would be mixed with TorchSharp's: refuse, naming it.</summary>
    private static void CheckNoStrayLibTorch(IReadOnlyList<string> mapped, string folder, string? loaded)
    {
        var ours = Path.GetFullPath(folder);
        foreach (var path in mapped)
        {
            var name = Path.GetFileName(path);
            if (name is not (LibTorchCpuFile or "libtorch.so" or "libc10.so")) continue;
            if (Path.GetDirectoryName(path) == ours) continue;
            throw new ClipNativeLibraryException(
                $"{path} is loaded into this process, but TorchSharp {TorchSharpVersion()} needs the libtorch of its own package ({Path.Combine(ours, name)}): " +
                $"another libtorch (a system libtorch-dev, or one on LD_LIBRARY_PATH) was loaded first{(loaded is null ? " by code that initialised TorchSharp before Clip.MLNet" : "")}; " +
                "call ClipNative.Initialize() before any other use of TorchSharp, or remove that library from the library path");
        }
    }

    /// <summary>The libstdc++ the dynamic loader would pick on common x86-64 layouts, where the process has not mapped one yet.</summary>
    private static string? SystemLibStdCxx() =>
        new[]
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", // Debian, Ubuntu
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6",                                // Fedora, RHEL, openSUSE
            "/usr/lib/libstdc++.so.6",                                                             // Arch
        }.FirstOrDefault(File.Exists);

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
