using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Clip.MLNet.Tests.Indexing;

namespace Clip.MLNet.Tests.Cluster;

/// <summary>
/// A fact that needs Debian's <c>redis-server</c>: skipped when it is not installed, except under CI (CI=true), where a
/// missing Redis is a failure (<c>.ci/run</c> installs it).
/// </summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (RedisServer.Executable is null && !RedisServer.IsCI)
            Skip = "redis-server is not installed (apt-get install -y redis-server); the cluster tests need it";
    }
}

/// <summary>A throwaway <c>redis-server</c> on a free loopback port, nothing saved to disk.</summary>
internal sealed class RedisServer : IDisposable
{
    private readonly Process process;

    public static bool IsCI => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>redis-server on PATH (or in /usr/bin, /usr/sbin), or null.</summary>
    public static string? Executable =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Append("/usr/bin").Append("/usr/sbin")
            .Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    public RedisServer()
    {
        var executable = Executable ?? throw new InvalidOperationException("redis-server is not installed (apt-get install -y redis-server): CI must have it");
        Port = FreePort();
        var info = new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" }) info.ArgumentList.Add(a);
        process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                break;
            }
            catch (SocketException) when (clock.Elapsed < TimeSpan.FromSeconds(20) && !process.HasExited)
            {
                Thread.Sleep(50);
            }
        }
    }

    public int Port { get; }

    public string Connection => $"redis://127.0.0.1:{Port}";

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public void Dispose()
    {
        try { process.Kill(); process.WaitForExit(); } catch (InvalidOperationException) { }
        process.Dispose();
    }
}

/// <summary>A <c>clip worker</c> process (the tool built beside the tests), its output kept line by line.</summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly Process process;
    private readonly List<string> lines = [];
    private readonly List<TimeSpan> times = [];
    private readonly Stopwatch clock = Stopwatch.StartNew();

    public WorkerProcess(string connection, IEnumerable<string> flags, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { IndexCorpus.ToolPath, "worker", "--cluster", connection }.Concat(flags)) info.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        process = Process.Start(info)!;
        process.StandardInput.Close();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) { lines.Add(e.Data); times.Add(clock.Elapsed); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) { lines.Add(e.Data); times.Add(clock.Elapsed); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string[] Lines
    {
        get { lock (lines) return lines.ToArray(); }
    }

    public string Output => string.Join('\n', Lines);

    /// <summary>How long ago the last line starting with <paramref name="prefix"/> came, or null.</summary>
    public TimeSpan? SinceLast(string prefix)
    {
        lock (lines)
        {
            int i = lines.FindLastIndex(l => l.StartsWith(prefix, StringComparison.Ordinal));
            return i < 0 ? null : clock.Elapsed - times[i];
        }
    }

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    /// <summary>Waits for a line containing <paramref name="text"/>; false when the time is up or the worker exited first.</summary>
    public bool WaitFor(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (Lines.Any(l => l.Contains(text, StringComparison.Ordinal))) return true;
            if (process.HasExited) { process.WaitForExit(); return Lines.Any(l => l.Contains(text, StringComparison.Ordinal)); }
            Thread.Sleep(20);
        }
        return false;
    }

    public bool WaitForExit(TimeSpan timeout)
    {
        if (!process.WaitForExit(timeout)) return false;
        process.WaitForExit();
        return true;
    }

    /// <summary>SIGKILL: no goodbye to the cluster, its lease is left for membership to free.</summary>
    public void Kill()
    {
        process.Kill();
        process.WaitForExit();
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(); } } catch (InvalidOperationException) { }
        process.Dispose();
    }
}
