using System.Diagnostics;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>What a client process (node, claude) did: exit code, output, duration, and whether it had to be killed.</summary>
internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr, TimeSpan Duration, bool TimedOut)
{
    public string Describe() =>
        $"exit {ExitCode}{(TimedOut ? " (killed on timeout)" : "")} after {Duration.TotalSeconds:0.0} s\n--- stdout ---\n{Tail(Stdout)}\n--- stderr ---\n{Tail(Stderr)}";

    private static string Tail(string text) => text.Length <= 8000 ? text : "…" + text[^8000..];
}

/// <summary>Runs a client process with stdin closed, bounded by a timeout; on timeout the whole process tree is killed.</summary>
internal static class ClientProcess
{
    public static async Task<ProcessResult> RunAsync(ProcessStartInfo info, TimeSpan timeout, CancellationToken cancellationToken)
    {
        info.UseShellExecute = false;
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = new Process { StartInfo = info };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.StandardInput.Close();
        using var drain = new CancellationTokenSource();
        var stdout = process.StandardOutput.ReadToEndAsync(drain.Token);
        var stderr = process.StandardError.ReadToEndAsync(drain.Token);

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(bounded.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
            Kill(process);
            await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        }

        var duration = clock.Elapsed;

        // Grandchildren may keep the pipes open after the process itself exited: give the readers a moment, then stop.
        drain.CancelAfter(TimeSpan.FromSeconds(5));
        var output = await ReadAsync(stdout);
        var error = await ReadAsync(stderr);
        return new ProcessResult(process.ExitCode, output, error, duration, timedOut);
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    private static async Task<string> ReadAsync(Task<string> reader)
    {
        try
        {
            return await reader;
        }
        catch (OperationCanceledException)
        {
            return "(output still open after exit; not read)";
        }
    }
}
