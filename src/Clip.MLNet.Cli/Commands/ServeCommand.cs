using System.CommandLine;
using Clip.MLNet.Search;
using Clip.MLNet.Serve;

namespace Clip.MLNet.Cli.Commands;

/// <summary><c>clip serve</c>: the search page and JSON API over an index folder (see <see cref="ClipSearchServer"/>).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var index = new Option<string>("--index") { Description = "The index folder (written by clip index).", Required = true };
        var port = new Option<int>("--port") { Description = "The TCP port (0: any free port; the address is printed).", DefaultValueFactory = _ => 8080 };
        var host = new Option<string>("--host") { Description = "The address to listen on (0.0.0.0 for every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var model = CommonOptions.Model(required: false);
        model.Description = "The model that embeds queries (default: the one recorded in index.json; another model is refused).";
        var threads = CommonOptions.Threads();
        var command = new Command("serve", "Serve a search page (GET /) and a JSON API (GET/POST /api/search) over an index folder.")
        {
            index, port, host, model, threads,
        };
        command.SetAction((parse, cancellation) => Task.FromResult(CliRunner.Run(parse.GetValue(CommonOptions.Verbose), () =>
        {
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            int p = parse.GetValue(port);
            if (p is < 0 or > 65535) throw new CliInputException($"--port must be 0 to 65535, got {p}");
            using var searcher = ClipIndexSearcher.Open(parse.GetValue(index)!, new ClipIndexSearchOptions { Model = parse.GetValue(model) });
            ClipSearchServer server;
            try
            {
                server = ClipSearchServer.StartAsync(searcher, parse.GetValue(host)!, p, cancellation).GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new CliInputException($"--host {parse.GetValue(host)} --port {p}: cannot listen ({e.Message})", e);
            }
            try
            {
                foreach (var url in server.Urls) Console.Error.WriteLine($"serving {searcher.Folder} ({searcher.Count} images) at {url}");
                Console.Error.Flush();
                server.WaitForShutdownAsync(cancellation).GetAwaiter().GetResult();
            }
            finally
            {
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return ExitCodes.Ok;
        })));
        return command;
    }
}
