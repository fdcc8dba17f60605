using System.Globalization;
using Melious.LoadBench;

// Melious.LoadBench: gateway overhead against a direct upstream, end to end. See docs/benchmarks.md.
if (args.Length > 0 && args[0] == "upstream")
{
    var port = 0;
    var parent = 0;
    for (var i = 1; i < args.Length - 1; i++)
    {
        if (args[i] == "--port")
        {
            port = int.Parse(args[++i], CultureInfo.InvariantCulture);
        }
        else if (args[i] == "--parent")
        {
            parent = int.Parse(args[++i], CultureInfo.InvariantCulture);
        }
    }

    return await UpstreamServer.RunAsync(port, parent);
}

if (args.Length > 0 && args[0] == "paced-summary")
{
    return Bench.PacedSummary(args.Skip(1));
}

Options options;
try
{
    options = Options.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 64;
}

// Whatever happens, no child (gateway, upstream, Azurite) outlives the bench.
AppDomain.CurrentDomain.ProcessExit += (_, _) => ChildProcess.KillAll();
Console.CancelKeyPress += (_, e) =>
{
    ChildProcess.KillAll();
    e.Cancel = false;
};
using var watchdog = new Timer(_ =>
{
    Console.Error.WriteLine($"load bench: deadline of {options.Deadline.TotalMinutes:0} min reached; stopping every child process");
    ChildProcess.KillAll();
    Environment.Exit(2);
}, null, options.Deadline, Timeout.InfiniteTimeSpan);

using var bench = new Bench(options);
try
{
    return await bench.RunAsync();
}
catch (Exception ex)
{
    Console.Error.WriteLine("load bench failed: " + ex);
    return 1;
}
