using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using StackExchange.Redis;

namespace Clip.MLNet.Cluster;

/// <summary>The configuration workers and submitters share: cluster identity, Redis, timeouts.</summary>
internal static class ClusterHosting
{
    /// <summary>The grain storage (Redis) holding jobs and the board.</summary>
    public const string Storage = "clip";

    public const string ClusterId = "clip-index";
    public const string ServiceId = "clip-index";

    /// <summary>How long one grain call may take before it fails (and is retried): short, as grain calls only book-keep.</summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(10);

    public static ConfigurationOptions Redis(ClipClusterConnection connection) => ConfigurationOptions.Parse(connection.RedisConfiguration);

    public static void ConfigureSilo(ISiloBuilder silo, ClipClusterConnection connection, ClipClusterWorkerOptions options)
    {
        silo.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        silo.UseRedisClustering(o => o.ConfigurationOptions = Redis(connection));
        silo.AddRedisGrainStorage(Storage, o => o.ConfigurationOptions = Redis(connection));
        var address = options.AdvertisedAddress ?? AddressTowards(connection);
        silo.ConfigureEndpoints(address, options.SiloPort ?? FreePort(), options.GatewayPort ?? FreePort(), listenOnAnyHostAddress: true);
        silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = ResponseTimeout);
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            // Orleans declares a silo dead after NumMissedProbesLimit probes of ProbeTimeout each go unanswered, on the
            // votes of NumVotesForDeathDeclaration silos (capped to the live ones). Defaults: 5 s, 3, 2.
            o.ProbeTimeout = options.ProbeTimeout;
            if (options.ProbeTimeout < TimeSpan.FromSeconds(5))
            {
                o.TableRefreshTimeout = TimeSpan.FromSeconds(Math.Max(1, options.ProbeTimeout.TotalSeconds * 2));
                o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(Math.Max(2, options.ProbeTimeout.TotalSeconds * 5));
                o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(Math.Max(10, options.ProbeTimeout.TotalSeconds * 20));
            }
        });
    }

    public static void ConfigureClient(IClientBuilder client, ClipClusterConnection connection)
    {
        client.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        client.UseRedisClustering(o => o.ConfigurationOptions = Redis(connection));
        client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = ResponseTimeout);
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
    }

    public static void ConfigureLogging(ILoggingBuilder logging, bool verbose)
    {
        logging.ClearProviders();
        if (!verbose) return;
        logging.AddSimpleConsole(o => o.SingleLine = true);
        logging.AddFilter((category, level) => level >= LogLevel.Warning);
        logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }

    /// <summary>The address other machines reach this one at: the local side of a route to Redis (loopback for a loopback Redis).</summary>
    private static IPAddress AddressTowards(ClipClusterConnection connection)
    {
        if (connection.IsLoopback) return IPAddress.Loopback;
        try
        {
            var target = Dns.GetHostAddresses(connection.Host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(target, connection.Port);
            return ((IPEndPoint)socket.LocalEndPoint!).Address;
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            throw new ClipClusterException($"{connection}: cannot tell this machine's address towards Redis ({e.Message}); give --address", e);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
