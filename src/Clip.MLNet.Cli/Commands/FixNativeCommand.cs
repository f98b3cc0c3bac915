using System.CommandLine;
using System.Runtime.InteropServices;

namespace Clip.MLNet.Cli.Commands;

/// <summary>
/// <c>clip fix-native [PATH...]</c>: the user-facing form of the machine fix of build/GlibcxxWeakVersionTask.cs
/// (compiled into this tool): marks the GLIBCXX_3.4.32 requirement of libLibTorchSharp.so weak where the system
/// libstdc++ is older than GCC 13's. Touches nothing of TorchSharp but the file's bytes: it has to work exactly
/// where TorchSharp cannot load.
/// </summary>
internal static class FixNativeCommand
{
    private const string LibraryName = "libLibTorchSharp.so";

    public static Command Create()
    {
        var paths = new Argument<string[]>("PATH")
        {
            Description = $"{LibraryName} files, or folders searched for them (an app's output folder, a tool folder). " +
                "Default: this tool's own copy and every TorchSharp version in the NuGet cache ($NUGET_PACKAGES or ~/.nuget/packages).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var check = new Option<bool>("--check") { Description = "Report what each file needs; change nothing." };
        var force = new Option<bool>("--force") { Description = "Patch even where the system libstdc++ provides the version (to prepare files for another machine)." };
        var command = new Command("fix-native",
            $"Let TorchSharp's native library load on Linux systems whose libstdc++ is older than GCC 13 (Debian 12, Ubuntu 22.04, RHEL 9): " +
            $"marks its {ElfVersionNeed.GlibcxxVersion} requirement weak (a two-byte change; TorchSharp only names that version for a marker symbol nothing calls). " +
            "Idempotent; does nothing where the system provides the version.")
        {
            paths, check, force,
        };
        command.SetAction(parse => CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
            Run(parse.GetValue(paths) ?? [], parse.GetValue(check), parse.GetValue(force))));
        return command;
    }

    private static int Run(string[] paths, bool checkOnly, bool force)
    {
        var version = ElfVersionNeed.GlibcxxVersion;
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && !force)
        {
            Console.WriteLine($"Nothing to do: the {version} fix is for Linux.");
            return ExitCodes.Ok;
        }
        if (!force)
        {
            var system = SystemLibstdcxx.Find();
            if (system is not null && SystemLibstdcxx.Provides(system, version))
            {
                Console.WriteLine($"Nothing to do: {system} provides {version}, so TorchSharp loads as it is.");
                return ExitCodes.Ok;
            }
        }

        var files = paths.Length > 0 ? FromArguments(paths) : DefaultLocations();
        if (files.Count == 0)
        {
            throw new CliInputException(paths.Length > 0
                ? $"no {LibraryName} under {string.Join(", ", paths)}"
                : $"no {LibraryName} found in {string.Join(", ", DefaultSearchDescription())}; restore a project that references TorchSharp first, or give the file's path");
        }

        int failures = 0;
        foreach (var file in files)
        {
            try
            {
                var state = checkOnly ? ElfVersionNeed.Inspect(file, version) : ElfVersionNeed.MakeWeak(file, version);
                Console.WriteLine($"{file}: {ElfVersionNeed.Describe(state, version)}");
            }
            catch (UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {file}: permission denied; run as the file's owner (sudo for a shared NuGet cache)");
                failures++;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"error: {file}: {e.Message}");
                failures++;
            }
        }
        return failures == 0 ? ExitCodes.Ok : ExitCodes.BadInput;
    }

    private static List<string> FromArguments(string[] paths)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            if (File.Exists(path)) files.Add(Path.GetFullPath(path));
            else if (Directory.Exists(path))
                files.AddRange(Directory.EnumerateFiles(path, LibraryName, new EnumerationOptions
                {
                    RecurseSubdirectories = true,
                    IgnoreInaccessible = true,
                    AttributesToSkip = 0, // tool folders keep their packages under the hidden .store
                }).Select(Path.GetFullPath).Order(StringComparer.Ordinal));
            else throw new CliInputException($"{path}: no such file or folder");
        }
        return files.Distinct(StringComparer.Ordinal).ToList();
    }

    private static string NuGetCache =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } custom
            ? custom
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static IEnumerable<string> DefaultSearchDescription() =>
        [AppContext.BaseDirectory, Path.Combine(NuGetCache, "torchsharp", "*", "runtimes", "linux-x64", "native")];

    /// <summary>
    /// This tool's own copy (a RID-specific tool keeps it beside clip.dll; a build output under runtimes/), and the
    /// NuGet cache's copies: applications copy theirs from there at build time, notebooks load it from there.
    /// </summary>
    private static List<string> DefaultLocations()
    {
        var files = new List<string>();
        var own = AppContext.BaseDirectory;
        foreach (var candidate in new[] { Path.Combine(own, LibraryName), Path.Combine(own, "runtimes", "linux-x64", "native", LibraryName) })
            if (File.Exists(candidate)) files.Add(Path.GetFullPath(candidate));
        var torchsharp = Path.Combine(NuGetCache, "torchsharp");
        if (Directory.Exists(torchsharp))
            foreach (var versionFolder in Directory.GetDirectories(torchsharp).Order(StringComparer.Ordinal))
            {
                var candidate = Path.Combine(versionFolder, "runtimes", "linux-x64", "native", LibraryName);
                if (File.Exists(candidate)) files.Add(candidate);
            }
        return files.Distinct(StringComparer.Ordinal).ToList();
    }
}
