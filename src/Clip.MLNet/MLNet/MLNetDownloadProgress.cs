using System.Globalization;
using Microsoft.ML.Runtime;

namespace Clip.MLNet.Transforms;

/// <summary>
/// Download progress on ML.NET's channels: a progress channel (bytes done of total, pulled by whatever
/// tracks ML.NET progress) and log lines on <c>MLContext.Log</c> when a file starts, at each tenth, and when it is done.
/// </summary>
internal sealed class MLNetDownloadProgress : IProgress<ClipDownloadProgress>, IDisposable
{
    private readonly IChannel log;
    private readonly IProgressChannel channel;
    private readonly IProgress<ClipDownloadProgress>? inner;
    private readonly object gate = new();
    private ClipDownloadProgress? last;
    private int tenthsLogged;

    public MLNetDownloadProgress(IHostEnvironment env, string name, IProgress<ClipDownloadProgress>? inner)
    {
        this.inner = inner;
        log = env.Start("Clip.MLNet pretrained");
        channel = env.StartProgressChannel($"Downloading {name}");
        channel.SetHeader(new ProgressHeader(new[] { "bytes" }), entry =>
        {
            ClipDownloadProgress? p;
            lock (gate) p = last;
            if (p is { } v) entry.SetProgress(0, v.BytesReceived, v.TotalBytes ?? double.NaN);
        });
    }

    public void Report(ClipDownloadProgress value)
    {
        string? message = null;
        lock (gate)
        {
            bool newFile = last is not { } previous || previous.Url != value.Url || previous.Completed;
            if (newFile)
            {
                tenthsLogged = 0;
                message = $"Downloading {value.File} of {value.Model} from {value.Url}" + (value.TotalBytes is long t ? $" ({Size(t)})" : "");
            }
            if (value.Completed)
            {
                message = $"Downloaded and verified {value.File} of {value.Model} ({Size(value.BytesReceived)})";
            }
            else if (value.TotalBytes is long total && total > 0)
            {
                int tenths = (int)(10 * value.BytesReceived / total);
                if (tenths > tenthsLogged && !newFile)
                {
                    tenthsLogged = tenths;
                    message = $"{value.File}: {10 * tenths}% ({Size(value.BytesReceived)} of {Size(total)})";
                }
            }
            last = value;
        }
        if (message is not null) log.Info(MessageSensitivity.None, message);
        inner?.Report(value);
    }

    private static string Size(long bytes) => bytes >= 1 << 20
        ? (bytes / (double)(1 << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB"
        : bytes.ToString(CultureInfo.InvariantCulture) + " bytes";

    public void Dispose()
    {
        channel.Dispose();
        log.Dispose();
    }
}
