using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Tests.Tokens;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.ML.Tokenizers;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// The real Claude Code CLI (tools/node_modules/.bin/claude) in <c>-p</c> mode against the gateway, in a minimal,
/// isolated environment (fresh HOME, only PATH inherited): Read tool round trips through an OpenAI-compatible
/// upstream (with and without streamed thinking, with either credential variable), an Explore subagent on the haiku
/// tier, Claude Code's own count_tokens call on a large file, its non-streaming fallback after a broken stream, and
/// its real request bodies (captured through an Anthropic-mode upstream, which receives them verbatim) checked
/// against count_tokens. Every run asserts that Claude Code never silently fell back to non-streaming (unless the
/// test provokes it) and that the key never reaches a log line or the upstream.
/// </summary>
public sealed class ClaudeCodeTests(AzuriteFixture azurite)
{
    private const string Prompt = "read the file and tell me what it says";
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    private static readonly Tokenizer Cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
    private static readonly Tokenizer O200k = TiktokenTokenizer.CreateForEncoding("o200k_base");

    /// <summary>
    /// The gateway's own categories at Trace (its "routed … stream=" lines show each Messages request's stream flag, and
    /// the key-leak check sees everything) plus ASP.NET Core's request lines (every HTTP request Claude Code made).
    /// </summary>
    private static readonly Dictionary<string, string?> VerboseLogs = new()
    {
        ["Logging:LogLevel:Melious"] = "Trace",
        ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(true, true, Pinned)]
    [InlineData(false, false, Pinned)]
    [InlineData(true, true, Latest)]
    [InlineData(false, false, Latest)]
    public async Task ReadToolRoundTrip_ThroughAnOpenAIUpstream(bool authToken, bool thinking, string version)
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
            : new() { ["ANTHROPIC_API_KEY"] = s.Key }, version);

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(ResultLine(run)).RootElement;
        Assert.False(result.GetProperty("is_error").GetBoolean(), report);
        Assert.Contains(workspace.Marker, result.GetProperty("result").GetString(), StringComparison.Ordinal);

        // The tool result travelled back as an OpenAI tool message, answering the call the gateway had issued.
        var withResult = s.Upstream.Requests.Where(r => r.HasToolMessage()).ToList();
        Assert.NotEmpty(withResult);
        var toolMessage = withResult[0].ToolMessages().Single();
        Assert.Contains(workspace.Marker, ScenarioExtensions.ContentText(toolMessage), StringComparison.Ordinal);
        var callId = withResult[0].Json.GetProperty("messages").EnumerateArray()
            .Where(m => m.GetProperty("role").GetString() == "assistant" && m.TryGetProperty("tool_calls", out _))
            .SelectMany(m => m.GetProperty("tool_calls").EnumerateArray()).Single().GetProperty("id").GetString();
        Assert.Equal(callId, toolMessage.GetProperty("tool_call_id").GetString());

        // Models: the tier mapping applied to every call; Claude Code's model names never reached the upstream.
        Assert.All(s.Upstream.Requests, r => Assert.Contains(r.Model(), new[] { "main-model", "light-model" }));
        Assert.Equal("main-model", s.Upstream.Requests.First().Model());
        Assert.DoesNotContain(s.Upstream.Requests, r => r.Model().StartsWith("claude", StringComparison.OrdinalIgnoreCase));

        // One call per model turn, all streamed: Claude Code never fell back to non-streaming (which it does,
        // silently, when it cannot use a stream; the gateway always streams from the upstream, so only the
        // client-side requests show it).
        AssertNoNonStreamingFallback(s, report);
        Assert.Equal(["POST /v1/messages?beta=true", "POST /v1/messages?beta=true"], s.Gateway.ClientRequests().Where(r => r.StartsWith("POST", StringComparison.Ordinal)));
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
        AssertNoNonStreamingFallback(s, report);

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

    /// <summary>
    /// The Agent tool: Claude Code runs an Explore subagent on its haiku model (claude-haiku-4-5-20251001), which the
    /// gateway maps to the light tier; the subagent's own Read round trip and the main thread's both go through.
    /// </summary>
    [Fact]
    public async Task Subagent_RunsOnTheLightModel()
    {
        using var workspace = new Workspace();
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var subagent = request.Model() == "light-model";
            if (subagent)
            {
                return request.HasToolMessage()
                    ? Sse.WriteAsync(context, Sse.TextAnswer(["The subagent read: ", workspace.Marker], prompt: 5000))
                    : Sse.WriteAsync(context, ReadCall(workspace.FilePath, thinking: false));
            }

            if (request.HasToolMessage())
            {
                var found = ScenarioExtensions.ContentText(request.ToolMessages().Single());
                return Sse.WriteAsync(context, Sse.TextAnswer(["Summary: ", found], prompt: 9500));
            }

            var arguments = JsonSerializer.Serialize(new { description = "Read the notes", prompt = "Read notes.txt in the current directory and report its exact content.", subagent_type = "Explore" });
            return Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "call_agent", "Agent", arguments[..20]), Sse.ToolCall(0, null, null, arguments[20..]), Sse.Finish("tool_calls"), Sse.Usage(9000, 50)]);
        }, VerboseLogs);

        var run = await RunClaudeAsync(s.Gateway.BaseUrl, workspace, new() { ["ANTHROPIC_AUTH_TOKEN"] = s.Key, ["ANTHROPIC_API_KEY"] = "" });

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        Assert.Contains(workspace.Marker, JsonDocument.Parse(ResultLine(run)).RootElement.GetProperty("result").GetString(), StringComparison.Ordinal);
        Assert.Equal(["main-model", "light-model", "light-model", "main-model"], s.Upstream.Requests.Select(r => r.Model()));
        var subagentTools = s.Upstream.Requests.ElementAt(1).Json.GetProperty("tools").GetArrayLength();
        var mainTools = s.Upstream.Requests.ElementAt(0).Json.GetProperty("tools").GetArrayLength();
        Assert.True(subagentTools < mainTools, $"the subagent has its own, smaller tool set ({subagentTools} vs {mainTools})");
        AssertNoNonStreamingFallback(s, report);
        AssertKeyNotLeaked(s);
    }

    /// <summary>
    /// A large file (~165 KB: under the Read tool's 256 KB limit, over its 25,000-token cap): Claude Code's Read asks
    /// the gateway's count_tokens how big the content is (its only use of count_tokens in -p mode) and truncates the
    /// result, quoting the count. That count must be the real size.
    /// </summary>
    [Theory]
    [InlineData("prose-and-code")]
    [InlineData("log")]
    public async Task LargeRead_ClaudeCodeSizesItThroughCountTokens(string kind)
    {
        using var workspace = new Workspace();
        var content = kind == "log"
            ? string.Join("\n", Enumerable.Range(0, 2000).Select(i => $"2026-11-24 10:{i / 60 % 60:00}:{i % 60:00} INFO worker {i % 8} processed batch {i} in {37 * i % 900} ms"))
            : LargeProseAndCode();
        File.WriteAllText(workspace.FilePath, content);
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
            request.HasToolMessage()
                ? Sse.WriteAsync(context, Sse.TextAnswer(["The file is long."], prompt: 30000))
                : Sse.WriteAsync(context, ReadCall(workspace.FilePath, thinking: false)), VerboseLogs);

        var run = await RunClaudeAsync(s.Gateway.BaseUrl, workspace, new() { ["ANTHROPIC_API_KEY"] = s.Key });

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        Assert.Contains("POST /v1/messages/count_tokens?beta=true", s.Gateway.ClientRequests());
        Assert.Contains(s.Gateway.Logs.Lines, l => l.Contains("Request finished", StringComparison.Ordinal) && l.Contains("/v1/messages/count_tokens", StringComparison.Ordinal) && l.Contains(" - 200 ", StringComparison.Ordinal));
        var toolResult = ScenarioExtensions.ContentText(s.Upstream.Requests.Single(r => r.HasToolMessage()).ToolMessages().Single());
        var match = System.Text.RegularExpressions.Regex.Match(toolResult, @"\((?<tokens>\d+) tokens, cap (?<cap>\d+)\)");
        Assert.True(match.Success, "Claude Code did not truncate the file by tokens: " + toolResult[..Math.Min(500, toolResult.Length)]);

        // Claude Code sizes the raw file content (no line numbers) with the gateway's count.
        var counted = long.Parse(match.Groups["tokens"].Value, System.Globalization.CultureInfo.InvariantCulture);
        TestContext.Current.TestOutputHelper?.WriteLine($"Read sized {content.Length} chars at {counted} tokens; cl100k {Cl100k.CountTokens(content)}, o200k {O200k.CountTokens(content)}");
        AssertClose(counted, Cl100k.CountTokens(content), "count_tokens of the file content vs cl100k_base");
        AssertClose(counted, O200k.CountTokens(content), "count_tokens of the file content vs o200k_base");
        AssertNoNonStreamingFallback(s, report);
        AssertKeyNotLeaked(s);
    }

    /// <summary>
    /// The upstream drops the stream halfway: the gateway ends its stream with an error event, Claude Code re-sends
    /// the request without <c>stream</c>, and the gateway's non-streaming answer (with usage) must satisfy it.
    /// </summary>
    [Fact]
    public async Task BrokenUpstreamStream_ClaudeCodeFallsBackToNonStreaming_AndSucceeds()
    {
        using var workspace = new Workspace();
        var calls = 0;
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
            Interlocked.Increment(ref calls) == 1
                ? Sse.WriteAsync(context, [Sse.Role(), Sse.Content("The file")], done: false)
                : Sse.WriteAsync(context, Sse.TextAnswer(["Recovered: ", workspace.Marker], prompt: 9000)), VerboseLogs);

        var run = await RunClaudeAsync(s.Gateway.BaseUrl, workspace, new() { ["ANTHROPIC_AUTH_TOKEN"] = s.Key, ["ANTHROPIC_API_KEY"] = "" });

        var report = Report(run, s);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(ResultLine(run)).RootElement;
        Assert.Equal("Recovered: " + workspace.Marker, result.GetProperty("result").GetString());
        Assert.Equal([true, false], s.Gateway.RoutedStreamFlags());
        Assert.Equal(2, s.Upstream.Requests.Count);
        Assert.All(s.Upstream.Requests, r => Assert.True(r.Json.GetProperty("stream").GetBoolean()));
        AssertKeyNotLeaked(s);
    }

    /// <summary>Realistic text, ~165 KB: the token-estimator calibration corpus (English prose and C# code), four times.</summary>
    private static string LargeProseAndCode()
    {
        var golden = Path.Combine(RepoPaths.Root, "tests", "Melious.Gateway.Tests", "Golden", "tokens");
        var sample = File.ReadAllText(Path.Combine(golden, "prose.md")) + "\n" + File.ReadAllText(Path.Combine(golden, "code.cs.txt"));
        return string.Join("\n", Enumerable.Repeat(sample, 4));
    }

    internal static string[] ReadCall(string path, bool thinking)
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

    /// <summary>The pinned Claude Code (tools/node_modules/.bin/claude, 2.1.197).</summary>
    public const string Pinned = "pinned";

    /// <summary>The newest Claude Code (the <c>claude-code-latest</c> alias package; scripts/bump-claude-code.sh moves it).</summary>
    public const string Latest = "latest";

    internal static string ClaudeBinary(string version) => version == Latest
        ? Environment.GetEnvironmentVariable("MELIOUS_CLAUDE_LATEST") is { Length: > 0 } configured
            ? configured
            : Path.Combine(RepoPaths.Root, "tools", "node_modules", "claude-code-latest", "bin", "claude.exe")
        : RepoPaths.Tool("claude", "MELIOUS_CLAUDE");

    internal static async Task<ProcessResult> RunClaudeAsync(string baseUrl, Workspace workspace, Dictionary<string, string> auth, string version = Pinned)
    {
        var info = new ProcessStartInfo(ClaudeBinary(version)) { WorkingDirectory = workspace.Project };
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

    internal static string ResultLine(ProcessResult run) =>
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

        text.Append("\n--- gateway log (requests, routing, warnings and errors) ---");
        foreach (var line in s.Gateway.Logs.Lines.Where(l => l.StartsWith("Warning", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal)
            || l.Contains(" routed (", StringComparison.Ordinal) || l.Contains("Request finished", StringComparison.Ordinal)))
        {
            text.Append('\n').Append(line.Length > 400 ? line[..400] + "…" : line);
        }

        return text.ToString();
    }

    private static void AssertNoNonStreamingFallback(Scenario s, string report)
    {
        var routed = s.Gateway.RoutedStreamFlags();
        Assert.True(routed.Count > 0, "no \"routed … stream=\" lines in the gateway log: the fallback check cannot see anything\n" + report);
        Assert.True(routed.All(streamed => streamed), "Claude Code fell back to non-streaming (it could not use a stream):\n" + report);
        Assert.Equal(routed.Count, s.Gateway.ClientRequests().Count(r => r.StartsWith("POST /v1/messages?", StringComparison.Ordinal) || r == "POST /v1/messages"));
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
    internal sealed class Workspace : IDisposable
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
