using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Yarp.ReverseProxy.Configuration;

// Melious.YarpAnchor --port P --destination http://127.0.0.1:U/ [--parent PID]
// A pass-through reverse proxy (YARP with its defaults) on 127.0.0.1:P for every path to the destination; exits with
// its parent. Started by the paced pass of bench/Melious.LoadBench (docs/benchmarks-paced.md).
var port = 0;
var destination = "";
var parent = 0;
for (var i = 0; i < args.Length - 1; i++)
{
    switch (args[i])
    {
        case "--port": port = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--destination": destination = args[++i]; break;
        case "--parent": parent = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
    }
}

if (port <= 0 || destination.Length == 0)
{
    Console.Error.WriteLine("usage: Melious.YarpAnchor --port P --destination URL [--parent PID]");
    return 64;
}

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Limits.MaxConcurrentConnections = null;
    k.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
    k.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http1);
});
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "all", ClusterId = "upstream", Match = new RouteMatch { Path = "{**catch-all}" } }],
    [new ClusterConfig
    {
        ClusterId = "upstream",
        Destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal) { ["u"] = new() { Address = destination } },
        // Plain HTTP/1.1 to the upstream, as nginx does; no connection limit.
        HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionExact },
    }]);
var app = builder.Build();
app.MapReverseProxy();
await app.StartAsync();
Console.Out.WriteLine($"yarp anchor listening on 127.0.0.1:{port} → {destination} (pid {Environment.ProcessId})");
Console.Out.Flush();

// Exit with the bench, whatever happens to it (or on SIGTERM / Ctrl+C).
var stopping = app.Lifetime.ApplicationStopping;
while (!stopping.IsCancellationRequested && (parent <= 0 || File.Exists($"/proc/{parent}/stat")))
{
    await Task.Delay(500, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
}

using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
await app.StopAsync(stop.Token);
return 0;
