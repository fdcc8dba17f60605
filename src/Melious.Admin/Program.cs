using System.Runtime.InteropServices;
using Melious.Admin;
using Microsoft.Extensions.Configuration;

// Settings come from the environment, as for the gateway: Melious__Storage__ConnectionString, Melious__Storage__TablePrefix, …
var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();

// The first Ctrl-C (or SIGTERM) cancels the command where it can stop safely ("error: cancelled", exit 130); a second
// one ends the process at once.
using var interrupted = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    if (!interrupted.IsCancellationRequested)
    {
        context.Cancel = true;
        interrupted.Cancel();
    }
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
return await AdminCli.RunAsync(args, Console.Out, Console.Error, configuration, interrupted.Token);
