using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.ML.Tokenizers;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// The real Claude Code CLI (tools/node_modules/.bin/claude, 2.1.197) in <c>-p</c> mode against the gateway: a Read
/// tool round trip through an OpenAI-compatible upstream, and the real Claude Code request bodies (captured through
/// an Anthropic-mode upstream, which receives them verbatim) checked against count_tokens.
/// </summary>
public sealed class ClaudeCodeTests(AzuriteFixture azurite)
{
    private const string Prompt = "read the file and tell me what it says";
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    private static readonly Tokenizer Cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
    private static readonly Tokenizer O200k = TiktokenTokenizer.CreateForEncoding("o200k_base");

    /// <summary>The gateway's own categories at Trace: the "routed … stream=" lines count client requests, and the key-leak check sees everything.</summary>
    private static readonly Dictionary<string, string?> VerboseLogs = new() { ["Logging:LogLevel:Melious"] = "Trace" };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public async Task ReadToolRoundTrip_ThroughAnOpenAIUpstream(bool authToken, bool thinking)
    {
        using var workspace = new Workspace();
        var requests = 0;
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            Interlocked.Increment(ref requests);
            return request.HasToolMessage()
                ? Sse.WriteAsync(context, [Sse.Role(), Sse.Content("The file says: "), Sse.Content(workspace.Marker), Sse.Finish("stop"), Sse.Usage(9000, 12)])
                : Sse.WriteAsync(context, ReadCall(workspace.FilePath, thinking));
        }, VerboseLogs);

        var run = await RunClaudeAsync(s.Gateway.BaseUrl, workspace, authToken
            ? new() { ["ANTHROPIC_AUTH_TOKEN"] = s.Key, ["ANTHROPIC_API_KEY"] = "" }
            : new() { ["ANTHROPIC_API_KEY"] = s.Key });

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(ResultLine(run)).RootElement;
        Assert.False(result.GetProperty("is_error").GetBoolean(), report);
        Assert.Contains(workspace.Marker, result.GetProperty("result").GetString(), StringComparison.Ordinal);

        // The tool result travelled back as an OpenAI tool message, answering the call the gateway had issued.
        var withResult = s.Upstream.Requests.Where(r => r.HasToolMessage()).ToList();
        Assert.NotEmpty(withResult);
        var toolMessage = withResult[0].ToolMessages().Single();
        Assert.Contains(workspace.Marker, OpenAIRequests.ContentText(toolMessage), StringComparison.Ordinal);
        var callId = withResult[0].Json.GetProperty("messages").EnumerateArray()
            .Where(m => m.GetProperty("role").GetString() == "assistant" && m.TryGetProperty("tool_calls", out _))
            .SelectMany(m => m.GetProperty("tool_calls").EnumerateArray()).Single().GetProperty("id").GetString();
        Assert.Equal(callId, toolMessage.GetProperty("tool_call_id").GetString());

        // Models: the tier mapping applied to every call; Claude Code's model names never reached the upstream.
        Assert.All(s.Upstream.Requests, r => Assert.Contains(r.Model(), new[] { "main-model", "light-model" }));
        Assert.Equal("main-model", s.Upstream.Requests.First().Model());
        Assert.DoesNotContain(s.Upstream.Requests, r => r.Model().StartsWith("claude", StringComparison.OrdinalIgnoreCase));

        // One upstream call per model turn, all streamed: Claude Code never fell back to non-streaming.
        var routed = s.Gateway.RoutedStreamFlags();
        Assert.True(routed.All(streamed => streamed), "Claude Code fell back to non-streaming (a stream it could not use):\n" + report);
        Assert.Equal(routed.Count, s.Upstream.Requests.Count);
        Assert.Equal(2, requests);
        Assert.All(s.Upstream.Requests, r => Assert.True(r.Json.GetProperty("stream").GetBoolean()));

        // The key never appears in the gateway's logs, nor in anything the upstream received.
        AssertKeyNotLeaked(s);
    }

    /// <summary>
    /// Captures the real Claude Code /v1/messages bodies through an Anthropic-mode upstream (the gateway forwards them
    /// byte for byte except <c>model</c>), checks their shape, and compares the gateway's count_tokens for them with
    /// the same requests rendered through a ChatML/Qwen chat template and counted with cl100k_base and o200k_base.
    /// </summary>
    [Fact]
    public async Task RealClaudeCodeRequests_CountTokensIsWithinTenPercentOfRealTokenizers()
    {
        using var workspace = new Workspace();
        await using var s = await Scenario.StartAsync(azurite, async (request, context) =>
        {
            var body = request.Json;
            if (!body.TryGetProperty("stream", out var stream) || !stream.GetBoolean())
            {
                await Sse.ErrorAsync(context, 500, "this scripted upstream only answers streaming requests");
                return;
            }

            var model = body.GetProperty("model").GetString()!;
            if (AnthropicUpstream.HasToolResult(body))
            {
                await AnthropicUpstream.TextAsync(context, model, "The file says: " + workspace.Marker, inputTokens: 20000);
            }
            else
            {
                await AnthropicUpstream.ToolUseAsync(context, model, "toolu_01Capture" + Guid.NewGuid().ToString("N")[..12], "Read", new JsonObject { ["file_path"] = workspace.FilePath }, inputTokens: 19000);
            }
        }, VerboseLogs, anthropicUpstream: true);

        var run = await RunClaudeAsync(s.Gateway.BaseUrl, workspace, new() { ["ANTHROPIC_AUTH_TOKEN"] = s.Key, ["ANTHROPIC_API_KEY"] = "" });

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        Assert.Contains(workspace.Marker, JsonDocument.Parse(ResultLine(run)).RootElement.GetProperty("result").GetString(), StringComparison.Ordinal);
        var bodies = s.Upstream.Requests.Where(r => r.Path.Contains("/messages", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, bodies.Count);
        Assert.All(bodies, b => Assert.Equal("main-model", b.Model()));

        // The shape docs/claude-code.md describes: ~76 KB, system blocks, ~24 tools, a role:"system" message.
        var first = JsonNode.Parse(bodies[0].Body)!.AsObject();
        Assert.True(bodies[0].Body.Length > 40_000, $"first body is only {bodies[0].Body.Length} bytes");
        Assert.True(first["system"] is JsonArray { Count: >= 2 }, "system is an array of text blocks");
        var tools = first["tools"]!.AsArray();
        Assert.True(tools.Count >= 15, $"{tools.Count} tools");
        Assert.Contains(tools, t => t!["name"]!.GetValue<string>() == "Read");
        Assert.Contains(first["messages"]!.AsArray(), m => m!["role"]!.GetValue<string>() == "system");
        Assert.True(AnthropicUpstream.HasToolResult(bodies[1].Json));

        var output = TestContext.Current.TestOutputHelper;
        foreach (var (body, index) in bodies.Select((b, i) => (b, i)))
        {
            var request = JsonNode.Parse(body.Body)!.AsObject();
            request["model"] = "claude-opus-4-8";
            var response = await s.PostAsync(request, "/v1/messages/count_tokens?beta=true");
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            var counted = (await s.JsonAsync(response)).GetProperty("input_tokens").GetInt64();
            var rendered = ChatTemplate.Render(request);
            var cl100k = Cl100k.CountTokens(rendered);
            var o200k = O200k.CountTokens(rendered);
            output?.WriteLine($"request {index}: {body.Body.Length} bytes, count_tokens {counted}, cl100k {cl100k}, o200k {o200k}");
            AssertClose(counted, cl100k, $"request {index} vs cl100k_base");
            AssertClose(counted, o200k, $"request {index} vs o200k_base");
        }

        AssertKeyNotLeaked(s);
    }

    private static string[] ReadCall(string path, bool thinking)
    {
        var arguments = JsonSerializer.Serialize(new Dictionary<string, string> { ["file_path"] = path });
        var a = arguments.Length / 3;
        var b = 2 * arguments.Length / 3;
        var lines = new List<string> { Sse.Role() };
        if (thinking)
        {
            lines.Add(Sse.Reasoning("The user wants the file's content. "));
            lines.Add(Sse.Reasoning("I will read it with the Read tool."));
        }

        lines.Add(Sse.ToolCall(0, "call_read_1", "Read", ""));
        lines.Add(Sse.ToolCall(0, null, null, arguments[..a]));
        lines.Add(Sse.ToolCall(0, null, null, arguments[a..b]));
        lines.Add(Sse.ToolCall(0, null, null, arguments[b..]));
        lines.Add(Sse.Finish("tool_calls"));
        lines.Add(Sse.Usage(8500, 40, reasoning: thinking ? 15 : 0));
        return [.. lines];
    }

    private static async Task<ProcessResult> RunClaudeAsync(string baseUrl, Workspace workspace, Dictionary<string, string> auth)
    {
        var info = new ProcessStartInfo(RepoPaths.Tool("claude", "MELIOUS_CLAUDE")) { WorkingDirectory = workspace.Project };
        foreach (var arg in new[] { "-p", Prompt, "--output-format", "json" })
        {
            info.ArgumentList.Add(arg);
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        info.Environment.Clear();
        info.Environment["PATH"] = path;
        info.Environment["HOME"] = workspace.Home;
        info.Environment["TERM"] = "dumb";
        info.Environment["ANTHROPIC_BASE_URL"] = baseUrl;
        info.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        info.Environment["DISABLE_TELEMETRY"] = "1";
        info.Environment["DISABLE_AUTOUPDATER"] = "1";
        info.Environment["CLAUDE_CODE_MAX_RETRIES"] = "0";
        foreach (var (name, value) in auth)
        {
            info.Environment[name] = value;
        }

        var run = await ClientProcess.RunAsync(info, RunTimeout, Ct);
        TestContext.Current.TestOutputHelper?.WriteLine($"claude -p ran {run.Duration.TotalSeconds:0.0} s, exit {run.ExitCode}");
        return run;
    }

    private static string ResultLine(ProcessResult run) =>
        run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last(l => l.StartsWith('{'));

    private static string Report(ProcessResult run, Scenario s)
    {
        var text = new StringBuilder(run.Describe());
        text.Append("\n--- upstream requests ---");
        foreach (var r in s.Upstream.Requests)
        {
            var stream = r.Json.TryGetProperty("stream", out var flag) ? flag.ToString() : "absent";
            text.Append($"\n{r.Method} {r.Path} model={r.Json.GetProperty("model")} stream={stream} bytes={r.Body.Length}");
        }

        text.Append("\n--- gateway log (warnings and errors) ---");
        foreach (var line in s.Gateway.Logs.Lines.Where(l => l.StartsWith("Warning", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal) || l.Contains(" routed (", StringComparison.Ordinal)))
        {
            text.Append('\n').Append(line.Length > 400 ? line[..400] + "…" : line);
        }

        return text.ToString();
    }

    private static void AssertKeyNotLeaked(Scenario s)
    {
        var secret = s.Key[^16..];
        Assert.DoesNotContain(s.Gateway.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        Assert.DoesNotContain(s.Upstream.Requests, r => r.BodyText.Contains(secret, StringComparison.Ordinal) || r.Headers.Values.Any(v => v.Contains(secret, StringComparison.Ordinal)));
    }

    private static void AssertClose(long estimate, long actual, string what)
    {
        var ratio = (double)estimate / actual;
        Assert.True(Math.Abs(ratio - 1) <= 0.10, $"{what}: count_tokens {estimate}, tokenizer {actual}, ratio {ratio:0.000} (tolerance ±10%)");
    }

    /// <summary>A fresh HOME and a project directory holding a file with a unique marker; deleted afterwards.</summary>
    private sealed class Workspace : IDisposable
    {
        private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("melious-claude-");

        public Workspace()
        {
            Home = Directory.CreateDirectory(Path.Combine(_root.FullName, "home")).FullName;
            Project = Directory.CreateDirectory(Path.Combine(_root.FullName, "project")).FullName;
            Marker = "MARKER-" + Guid.NewGuid().ToString("N");
            FilePath = Path.Combine(Project, "notes.txt");
            File.WriteAllText(FilePath, Marker + "\n");
        }

        public string Home { get; }

        public string Project { get; }

        public string Marker { get; }

        public string FilePath { get; }

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
}
