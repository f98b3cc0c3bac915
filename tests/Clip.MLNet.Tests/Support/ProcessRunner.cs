using System.Diagnostics;
using System.Text;

namespace Clip.MLNet.Tests.Support;

/// <summary>Runs a program to completion with a time limit, capturing its output; kills the whole tree on timeout.</summary>
internal static class ProcessRunner
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed)
    {
        public string Output => StdOut + StdErr;

        /// <summary>The end of the output, for assertion messages.</summary>
        public string Tail(int chars = 6000) => Output.Length <= chars ? Output : "..." + Output[^chars..];
    }

    // Set by `dotnet test` for its own MSBuild; a child build must find its SDK by itself.
    private static readonly string[] InheritedBuildVariables =
        { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" };

    public static Result Run(string fileName, IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        foreach (var name in InheritedBuildVariables) info.Environment.Remove(name);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        if (environment is not null)
            foreach (var (k, v) in environment)
                if (v is null) info.Environment.Remove(k); else info.Environment[k] = v;

        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close(); // nothing started here may wait for a person
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var limit = timeout ?? TimeSpan.FromMinutes(5);
        if (!process.WaitForExit(limit))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            throw new TimeoutException($"{fileName} {string.Join(' ', info.ArgumentList)} ran past {limit.TotalSeconds:F0} s; output so far:\n{Tail(stdout, stderr)}");
        }
        process.WaitForExit(); // flushes the asynchronous readers
        lock (stdout) lock (stderr)
            return new Result(process.ExitCode, stdout.ToString(), stderr.ToString(), clock.Elapsed);
    }

    private static string Tail(StringBuilder stdout, StringBuilder stderr)
    {
        string all;
        lock (stdout) lock (stderr) all = stdout + stderr.ToString();
        return all.Length <= 6000 ? all : "..." + all[^6000..];
    }

    /// <summary>Runs <c>dotnet ARGS</c>.</summary>
    public static Result Dotnet(IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null) =>
        Run("dotnet", arguments, workingDirectory, environment, timeout);

    /// <summary>
    /// Runs this test assembly as a fresh process (<see cref="ChildProcessEntry"/>) and returns its stdout, line by line
    /// as written (each line ends with a newline); fails the test on a non-zero exit.
    /// </summary>
    public static string TestAssembly(params string[] arguments)
    {
        var result = Dotnet([typeof(ChildProcessEntry).Assembly.Location, .. arguments], Directory.GetCurrentDirectory());
        Xunit.Assert.True(result.ExitCode == 0, $"child process failed ({result.ExitCode}): {result.Tail()}");
        return result.StdOut;
    }
}
