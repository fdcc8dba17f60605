using System.Diagnostics;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// An interactive program in a real terminal: a tmux server of its own (a private <c>-L</c> socket) running one
/// command in a detached session, whose screen is read with capture-pane and driven with send-keys. Waits poll the
/// screen, bounded (never a fixed sleep as the assertion); disposing kills the tmux server and what runs in it.
/// </summary>
internal sealed class TmuxSession : IAsyncDisposable
{
    private const string Target = "main";
    private readonly string _socket = "melious-" + Guid.NewGuid().ToString("N")[..8];

    private TmuxSession()
    {
    }

    /// <summary>Null when tmux can be run, else why not (the reason a test skips with).</summary>
    public static string? Unavailable { get; } = FindTmux();

    /// <summary>
    /// Starts <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>, with
    /// exactly <paramref name="environment"/> (<c>env -i</c>: nothing of the test process leaks in). When the program
    /// ends the pane prints <c>EXIT=&lt;code&gt;</c> and stays open, so its last screen can still be read.
    /// </summary>
    public static async Task<TmuxSession> StartAsync(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, string workingDirectory, int width = 160, int height = 50)
    {
        var command = "env -i " + string.Join(' ', environment.Select(e => $"{e.Key}={Quote(e.Value)}"))
            + " " + string.Join(' ', arguments.Prepend(program).Select(Quote)) + "; echo EXIT=$?; sleep 600";
        var session = new TmuxSession();
        await session.RunAsync("new-session", "-d", "-s", Target, "-x", width.ToString(System.Globalization.CultureInfo.InvariantCulture), "-y", height.ToString(System.Globalization.CultureInfo.InvariantCulture), "-c", workingDirectory, command);
        return session;
    }

    /// <summary>The visible screen plus 200 lines of scrollback.</summary>
    public Task<string> CaptureAsync() => RunAsync("capture-pane", "-p", "-t", Target, "-S", "-200");

    /// <summary>The visible screen only (what a user sees now: the open dialog, the cursor line).</summary>
    public Task<string> ScreenAsync() => RunAsync("capture-pane", "-p", "-t", Target);

    /// <summary>Types <paramref name="text"/> literally.</summary>
    public Task TypeAsync(string text) => RunAsync("send-keys", "-t", Target, "-l", text);

    /// <summary>Sends tmux key names (Enter, Down, Escape, C-c…).</summary>
    public Task KeysAsync(params string[] keys) => RunAsync(["send-keys", "-t", Target, .. keys]);

    /// <summary>Polls <paramref name="screen"/> (default: <see cref="CaptureAsync"/>) until <paramref name="condition"/> holds, at most <paramref name="wait"/>.</summary>
    public async Task<(bool Met, string Screen)> TryWaitForAsync(Func<string, bool> condition, TimeSpan wait, bool visibleOnly = false)
    {
        var deadline = DateTime.UtcNow + wait;
        var screen = "";
        while (true)
        {
            screen = visibleOnly ? await ScreenAsync() : await CaptureAsync();
            if (condition(screen))
            {
                return (true, screen);
            }

            if (DateTime.UtcNow >= deadline)
            {
                return (false, screen);
            }

            await Task.Delay(300, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Like <see cref="TryWaitForAsync"/>, failing the test with the screen when the condition never held (default: 180 s).</summary>
    public async Task<string> WaitForAsync(Func<string, bool> condition, string what, TimeSpan? wait = null, bool visibleOnly = false)
    {
        var bound = wait ?? TimeSpan.FromSeconds(180);
        var (met, screen) = await TryWaitForAsync(condition, bound, visibleOnly);
        Assert.True(met, $"waited {bound.TotalSeconds:0} s for {what}; the terminal shows:\n{screen}");
        return screen;
    }

    public async ValueTask DisposeAsync() => await RunAsync("kill-server");

    private async Task<string> RunAsync(params string[] args)
    {
        var info = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-L");
        info.ArgumentList.Add(_socket);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
        await process.WaitForExitAsync(CancellationToken.None);
        await error;
        return await output;
    }

    /// <summary>Single-quoted for the shell tmux runs the command with.</summary>
    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static string? FindTmux()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("tmux", "-V") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
            process.WaitForExit(10_000);
            return process.ExitCode == 0 ? null : "tmux -V failed";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "tmux is not installed (scripts/test.sh installs it)";
        }
    }
}
