using System.Diagnostics;
using System.Runtime.InteropServices;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// A user's machine for the <c>melious</c> executable: a temporary HOME and project directory, a minimal environment
/// (PATH with only the system directories and, when asked, a bin directory holding one chosen <c>claude</c>), and
/// the CLI run as a real process. The executable is the build output, or <c>MELIOUS_CLI_UNDER_TEST</c> (the Native
/// AOT file or the installed .NET tool, as scripts/smoke-cli.sh runs it).
/// </summary>
internal sealed class CliSandbox : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("melious-cli-");

    public CliSandbox()
    {
        Home = Directory.CreateDirectory(Path.Combine(_root.FullName, "home")).FullName;
        Project = Directory.CreateDirectory(Path.Combine(_root.FullName, "project")).FullName;
        Bin = Directory.CreateDirectory(Path.Combine(_root.FullName, "bin")).FullName;
    }

    public string Home { get; }

    public string Project { get; }

    /// <summary>First on PATH: where <see cref="UseClaude"/> puts <c>claude</c>.</summary>
    public string Bin { get; }

    public string ConfigFile => Path.Combine(Home, ".config", "melious", "config.json");

    /// <summary>Extra variables for every run (the "parent shell").</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    public static string Executable { get; } = FindExecutable();

    /// <summary>The pinned Claude Code (tools/node_modules/.bin/claude) or the newest one (claude-code-latest).</summary>
    public static string ClaudePath(string version) => version switch
    {
        "pinned" => Path.Combine(RepoPaths.NodeBin, "claude"),
        "latest" => Path.Combine(RepoPaths.Root, "tools", "node_modules", "claude-code-latest", "bin", "claude.exe"),
        _ => throw new ArgumentOutOfRangeException(nameof(version)),
    };

    /// <summary>Puts this Claude Code first on PATH as <c>claude</c>.</summary>
    public void UseClaude(string version)
    {
        var target = ClaudePath(version);
        Assert.True(File.Exists(target), $"{target} is not installed (scripts/test.sh installs tools/)");
        File.CreateSymbolicLink(Path.Combine(Bin, "claude"), Path.GetFullPath(target));
    }

    public string PathVariable => string.Join(':', Bin, "/usr/local/bin", "/usr/bin", "/bin");

    /// <summary>The environment of a run: HOME, PATH, TERM, DOTNET_ROOT (for the framework-dependent apphost) and <see cref="Environment"/>.</summary>
    public void Fill(IDictionary<string, string?> environment)
    {
        environment.Clear();
        environment["HOME"] = Home;
        environment["PATH"] = PathVariable;
        environment["TERM"] = "dumb";
        environment["DOTNET_ROOT"] = DotnetRoot;
        environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        environment["DISABLE_AUTOUPDATER"] = "1";
        foreach (var (name, value) in Environment)
        {
            environment[name] = value;
        }
    }

    public async Task<ProcessResult> RunAsync(IEnumerable<string> args, string? stdin = null, string? workingDirectory = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(Executable) { WorkingDirectory = workingDirectory ?? Project };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        Fill(info.Environment);
        info.UseShellExecute = false;
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = new Process { StartInfo = info };
        var clock = Stopwatch.StartNew();
        process.Start();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        bounded.CancelAfter(timeout ?? TimeSpan.FromSeconds(150));
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(bounded.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }

        var result = new ProcessResult(process.ExitCode, await stdout.WaitAsync(TimeSpan.FromSeconds(10)), await stderr.WaitAsync(TimeSpan.FromSeconds(10)), clock.Elapsed, timedOut);
        TestContext.Current.TestOutputHelper?.WriteLine($"$ melious {string.Join(' ', info.ArgumentList)}  → exit {result.ExitCode} in {result.Duration.TotalSeconds:0.0} s\n{result.Stdout}{result.Stderr}");
        return result;
    }

    public Task<ProcessResult> RunAsync(params string[] args) => RunAsync(args, null);

    /// <summary>Starts the CLI with stdin, stdout and stderr redirected (stdin left open) and returns the running process.</summary>
    public Process Start(IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(Executable) { WorkingDirectory = Project, UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        Fill(info.Environment);
        return Process.Start(info)!;
    }

    /// <summary>Logs in (key on stdin) and asserts it worked.</summary>
    public async Task LoginAsync(string baseUrl, string key)
    {
        var login = await RunAsync(["login", "--base-url", baseUrl, "--key-stdin"], key + "\n");
        Assert.True(login.ExitCode == 0, login.Describe());
    }

    private static string DotnetRoot => Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    private static string FindExecutable()
    {
        if (System.Environment.GetEnvironmentVariable("MELIOUS_CLI_UNDER_TEST") is { Length: > 0 } configured)
        {
            return configured;
        }

        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        var path = Path.Combine(RepoPaths.Root, "src", "Melious.Cli", "bin", configuration, "net10.0", "melious");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is missing: build src/Melious.Cli ({configuration})");
    }

    public void Dispose()
    {
        try
        {
            _root.Delete(recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// A loopback HTTP hop in front of the gateway that records every request's headers (what Claude Code really sent:
/// x-api-key or not, which Bearer) and relays the gateway's answer as it streams.
/// </summary>
internal sealed class RecordingProxy : IAsyncDisposable
{
    private readonly ScriptedUpstream _server;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromMinutes(5) };

    private RecordingProxy(ScriptedUpstream server) => _server = server;

    public string BaseUrl => _server.BaseUrl;

    public IReadOnlyCollection<UpstreamRequest> Requests => _server.Requests;

    public static async Task<RecordingProxy> StartAsync(string target) => new(await ScriptedUpstream.StartAsync(async (request, context) =>
    {
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), target + request.Path);
        if (request.Body.Length > 0 || request.Method is "POST" or "PUT")
        {
            message.Content = new ByteArrayContent(request.Body);
        }

        foreach (var (name, value) in request.Headers)
        {
            if (name is "host" or "content-length" or "connection" or "transfer-encoding")
            {
                continue;
            }

            if (!message.Headers.TryAddWithoutValidation(name, value))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        using var response = await Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers))
        {
            if (header.Key is "Transfer-Encoding" or "Content-Length" or "Connection")
            {
                continue;
            }

            context.Response.Headers[header.Key] = header.Value.ToArray();
        }

        await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted);
        var buffer = new byte[8192];
        int read;
        while ((read = await stream.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }));

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
