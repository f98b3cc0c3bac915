using System.Globalization;
using System.Net.Sockets;

namespace Clip.MLNet.Cluster;

/// <summary>A problem with the cluster or a job: unreachable Redis, a refused job, workers of different versions.</summary>
public sealed class ClipClusterException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Where a cluster lives: <c>redis://HOST:PORT</c>, the Redis server that holds Orleans' membership table (which workers
/// are alive) and the jobs' state.
/// </summary>
public sealed record ClipClusterConnection
{
    /// <summary>The connection as given.</summary>
    public string Text { get; }

    /// <summary>Redis's host name or address.</summary>
    public string Host { get; }

    /// <summary>Redis's port.</summary>
    public int Port { get; }

    private ClipClusterConnection(string text, string host, int port)
    {
        Text = text;
        Host = host;
        Port = port;
    }

    /// <summary>StackExchange.Redis's configuration string for this server (<c>HOST:PORT</c>), failing fast when it is down.</summary>
    internal string RedisConfiguration => $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)},abortConnect=false,connectTimeout=3000";

    /// <summary>Parses <c>redis://HOST:PORT</c> (the port defaults to 6379).</summary>
    /// <exception cref="ClipClusterException">Not a connection of that form.</exception>
    public static ClipClusterConnection Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri) || uri.Scheme != "redis" || uri.Host.Length == 0
            || (uri.AbsolutePath.Length > 1) || uri.Query.Length > 0)
            throw new ClipClusterException($"--cluster '{text}': expected redis://HOST:PORT (a PostgreSQL cluster is not supported yet)");
        return new ClipClusterConnection(text.Trim(), uri.Host, uri.IsDefaultPort || uri.Port < 0 ? 6379 : uri.Port);
    }

    /// <summary>Whether Redis is on this machine's loopback (then workers advertise 127.0.0.1).</summary>
    internal bool IsLoopback => Host is "localhost" or "127.0.0.1" or "::1" or "[::1]";

    /// <summary>Fails within <paramref name="timeout"/> with an error naming the address when nothing answers there.</summary>
    /// <exception cref="ClipClusterException">Nothing accepts a connection at the address.</exception>
    public void CheckReachable(TimeSpan timeout)
    {
        using var client = new TcpClient();
        try
        {
            var connect = client.ConnectAsync(Host.Trim('[', ']'), Port);
            if (!connect.Wait(timeout))
                throw new ClipClusterException($"{Text}: the cluster's Redis does not answer (no connection within {timeout.TotalSeconds:F0} s)");
        }
        catch (AggregateException e) when (e.InnerException is SocketException s)
        {
            throw new ClipClusterException($"{Text}: cannot reach the cluster's Redis ({s.Message})", s);
        }
        catch (SocketException s)
        {
            throw new ClipClusterException($"{Text}: cannot reach the cluster's Redis ({s.Message})", s);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Text;
}
