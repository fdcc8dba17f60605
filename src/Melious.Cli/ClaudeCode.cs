using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Melious.Cli;

/// <summary>Finding, installing and running the <c>claude</c> executable.</summary>
public static partial class ClaudeCode
{
    public const string NpmPackage = "@anthropic-ai/claude-code";

    /// <summary><c>claude</c> on PATH, else in npm's global prefix; null when neither has it.</summary>
    public static string? Locate()
    {
        if (FindOnPath("claude") is { } found)
        {
            return found;
        }

        if (FindOnPath("npm") is { } npm && Capture(npm, ["prefix", "-g"]) is { Length: > 0 } prefix)
        {
            var candidate = OperatingSystem.IsWindows() ? Path.Combine(prefix, "claude.cmd") : Path.Combine(prefix, "bin", "claude");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Why the Node.js on PATH cannot run Claude Code (missing, or older than 18), or null when it can.</summary>
    public static string? NodeProblem()
    {
        if (FindOnPath("node") is not { } node)
        {
            return "node was not found on PATH (npm is there, but cannot run without it)";
        }

        var version = Capture(node, ["--version"]);
        if (version is null || !int.TryParse(version.TrimStart('v', 'V').Split('.')[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var major))
        {
            return $"{node} --version did not answer with a version";
        }

        return major < 18 ? $"Node.js {version} is too old" : null;
    }

    /// <summary>The first line <c>claude --version</c> prints (e.g. <c>2.1.197 (Claude Code)</c>), or null.</summary>
    public static string? Version(string claude) => Capture(claude, ["--version"]);

    public static string? FindOnPath(string name)
    {
        var names = OperatingSystem.IsWindows() ? new[] { name + ".exe", name + ".cmd", name } : [name];
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var candidate in names)
            {
                var path = Path.Combine(directory, candidate);
                if (File.Exists(path) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0))
                {
                    return path;
                }
            }
        }

        return null;
    }

    /// <summary>Runs a short command and returns the first line of its stdout (null on failure; at most 60 s).</summary>
    public static string? Capture(string file, string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            foreach (var arg in args)
            {
                info.ArgumentList.Add(arg);
            }

            using var process = Process.Start(info)!;
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }

            var line = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
            return process.ExitCode == 0 ? line : null;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Runs a program as a child with inherited stdin, stdout, stderr and terminal, and returns its exit code (128 +
    /// signal number when a signal ended it). melious waits for the child whatever signal it gets: SIGTERM, SIGHUP
    /// and SIGQUIT are forwarded to the child (and SIGINT when stdin is not a terminal; from a terminal, Ctrl-C
    /// already reaches the whole foreground process group, and Claude Code decides itself whether to end).
    /// </summary>
    public static async Task<int> RunAttachedAsync(ProcessStartInfo info)
    {
        info.UseShellExecute = false;
        info.RedirectStandardInput = false;
        info.RedirectStandardOutput = false;
        info.RedirectStandardError = false;
        using var process = new Process { StartInfo = info };
        var gate = new object();
        var started = false;
        var pending = new List<int>();

        // Registered before the child starts, so no signal in between ends melious by default; one that arrives
        // before the child exists is forwarded as soon as it does.
        void Relay(PosixSignalContext context, int signal)
        {
            context.Cancel = true;
            lock (gate)
            {
                if (!started)
                {
                    pending.Add(signal);
                    return;
                }
            }

            Forward(process, signal);
        }

        var registrations = new List<PosixSignalRegistration>();
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                var interactive = !Console.IsInputRedirected;
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
                {
                    if (interactive)
                    {
                        c.Cancel = true;
                    }
                    else
                    {
                        Relay(c, 2);
                    }
                }));
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Relay(c, 15)));
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => Relay(c, 1)));
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => Relay(c, 3)));
            }
            else
            {
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true));
            }

            process.Start();
            int[] early;
            lock (gate)
            {
                started = true;
                early = [.. pending];
            }

            foreach (var signal in early)
            {
                Forward(process, signal);
            }

            await process.WaitForExitAsync();
            return process.ExitCode;
        }
        finally
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }

    private static void Forward(Process process, int signal)
    {
        try
        {
            if (!process.HasExited)
            {
                _ = Kill(process.Id, signal);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
