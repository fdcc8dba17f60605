using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Cli;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// Features of the newest Claude Code (tools/node_modules/claude-code-latest, 2.1.332 when written) against the
/// gateway: gateway model discovery in the interactive <c>/model</c> picker (under tmux), and tool search
/// (<c>ENABLE_TOOL_SEARCH=true</c>) with deferred MCP tools toward an OpenAI-compatible upstream. A recording proxy
/// between Claude Code and the gateway keeps what the client really sent. Skipped only when tmux or the binary is
/// missing (scripts/test.sh installs both).
/// </summary>
public sealed class ClaudeCodeLatestTests(AzuriteFixture azurite)
{
    /// <summary>A catalog model as an operator names it: an upstream id with a path, and a display name of its own.</summary>
    private const string CatalogModel = "Qwen/Qwen3-Coder-480B-A35B-Instruct";
    private const string DisplayName = "Qwen3 Coder 480B (Melious test)";
    private const string Alias = "claude-melious-qwen3-coder-480b-a35b-instruct";

    private static readonly Dictionary<string, string?> VerboseLogs = new()
    {
        ["Logging:LogLevel:Melious"] = "Trace",
        ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// <c>CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1</c>: at start Claude Code fetches <c>/v1/models?limit=1000</c>,
    /// caches the ids matching /(claude|anthropic)/i in ~/.claude/cache/gateway-models.json, and <c>/model</c> lists
    /// them by display name, described "From gateway". Picking the catalog model's alias with the arrow keys makes the
    /// next prompt go to that model's upstream id.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ModelPicker_ListsTheGatewaysModels_AndThePickedOneServesTheNextPrompt(bool authToken)
    {
        var claude = RequireLatestClaudeUnderTmux();
        using var workspace = new ClaudeCodeTests.Workspace();
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
            Sse.WriteAsync(context, Sse.TextAnswer([$"answer from {request.Model()}"], prompt: 3000)), VerboseLogs);
        await s.Gateway.Services.GetRequiredService<ModelCatalogStore>().UpsertModelAsync(CatalogModel, new Dictionary<string, object?> { ["DisplayName"] = DisplayName }, Ct);
        await s.Gateway.RefreshCatalogAsync();
        await using var proxy = await RecordingProxy.StartAsync(s.Gateway.BaseUrl);
        TrustProjectAndSkipOnboarding(workspace, approvedApiKey: authToken ? null : s.Key);

        var environment = ClientEnvironment(workspace, proxy.BaseUrl, s.Key);
        if (!authToken)
        {
            environment.Remove("ANTHROPIC_AUTH_TOKEN");
            environment["ANTHROPIC_API_KEY"] = s.Key;
        }

        environment["TERM"] = "xterm-256color";
        environment["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] = "1";
        // The client's default is 3 s, which a first request to a freshly started gateway on a loaded machine can miss
        // (discovery then silently lists nothing); the behaviour under test is the listing, not the timeout.
        environment["CLAUDE_CODE_GATEWAY_MODEL_DISCOVERY_TIMEOUT_MS"] = "60000";
        await using var tmux = await TmuxSession.StartAsync(claude, [], environment, workspace.Project);

        await tmux.WaitForAsync(IsPromptReady, "Claude Code's prompt");
        var cache = Path.Combine(workspace.Home, ".claude", "cache", "gateway-models.json");
        await WaitUntilAsync(() => File.Exists(cache) && File.ReadAllText(cache).Contains(Alias, StringComparison.Ordinal), $"{cache} to list {Alias}", tmux);
        // Discovery authenticates as the session does: the token as a bearer, or the key as x-api-key.
        var discovery = proxy.Requests.First(r => r.Method == "GET" && r.Path == "/v1/models?limit=1000");
        Assert.Equal(authToken ? "Bearer " + s.Key : null, discovery.Headers.TryGetValue("authorization", out var bearer) ? bearer : null);
        Assert.Equal(authToken ? null : s.Key, discovery.Headers.TryGetValue("x-api-key", out var apiKey) ? apiKey : null);
        var cached = JsonNode.Parse(File.ReadAllText(cache))!;
        Assert.Equal(proxy.BaseUrl, cached["baseUrl"]!.GetValue<string>());
        var models = cached["models"]!.AsArray();
        Assert.Contains(models, m => m!["id"]!.GetValue<string>() == Alias && m["display_name"]!.GetValue<string>() == DisplayName);
        Assert.All(models, m => Assert.Matches("(?i)(claude|anthropic)", m!["id"]!.GetValue<string>()));

        // /model: the picker opens; it shows ten options at a time, so the gateway's models further down scroll into
        // view as the cursor moves. Down, one key at a time (each move seen on the screen), until the cursor (❯) is on
        // the catalog model's display name; every option line seen on the way is kept.
        await tmux.TypeAsync("/model");
        await tmux.WaitForAsync(screen => screen.Contains("/model", StringComparison.Ordinal) && screen.Contains("Switch model", StringComparison.Ordinal), "the /model suggestion", visibleOnly: true);
        await tmux.KeysAsync("Enter");
        var picker = await tmux.WaitForAsync(screen => screen.Contains("Select model", StringComparison.Ordinal) && CursorLine(screen).Length > 0, "the model picker", visibleOnly: true);
        var seen = new HashSet<string>(PickerOptions(picker).Select(Unmarked), StringComparer.Ordinal);
        for (var moves = 0; !CursorLine(picker).Contains(DisplayName, StringComparison.Ordinal); moves++)
        {
            Assert.True(moves < 30, $"the cursor never reached {DisplayName}; options seen:\n{string.Join('\n', seen)}\n{picker}");
            var before = CursorLine(picker);
            await tmux.KeysAsync("Down");
            picker = await tmux.WaitForAsync(screen => CursorLine(screen) != before && CursorLine(screen).Length > 0, "the picker's cursor to move", TimeSpan.FromSeconds(60), visibleOnly: true);
            seen.UnionWith(PickerOptions(picker).Select(Unmarked));
        }

        // The display name, in the gateway's section ("From gateway", the description Claude Code gives a discovered
        // model without one); the other catalog models are listed there too.
        Assert.True(CursorLine(picker).Contains("From gateway", StringComparison.Ordinal), "the gateway's model is described \"From gateway\":\n" + picker);
        foreach (var model in new[] { "main-model", "secondary-model", "light-model" })
        {
            Assert.Contains(seen, option => option.Contains(model, StringComparison.Ordinal) && option.Contains("From gateway", StringComparison.Ordinal));
        }

        TestContext.Current.TestOutputHelper?.WriteLine("picker options seen:\n" + string.Join('\n', seen));
        await tmux.KeysAsync("Enter");
        await tmux.WaitForAsync(screen => screen.Contains("Set model to " + DisplayName, StringComparison.Ordinal), "the model to be set");

        var upstreamBefore = s.Upstream.Requests.Count;
        var clientBefore = proxy.Requests.Count;
        const string prompt = "which model answers after the pick";
        await tmux.TypeAsync(prompt);
        await tmux.WaitForAsync(screen => screen.Contains(prompt, StringComparison.Ordinal), "the typed prompt", TimeSpan.FromSeconds(60), visibleOnly: true);
        await tmux.KeysAsync("Enter");
        await tmux.WaitForAsync(screen => screen.Contains("answer from " + CatalogModel, StringComparison.Ordinal), "the picked model's answer");

        // The next Messages request carried the alias, and the gateway sent it to the catalog model's upstream id.
        var sent = proxy.Requests.Skip(clientBefore).Where(r => r.Method == "POST" && r.Path.StartsWith("/v1/messages", StringComparison.Ordinal) && !r.Path.Contains("count_tokens", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(sent);
        Assert.Equal(Alias, sent[0].Json.GetProperty("model").GetString());
        var upstream = s.Upstream.Requests.Skip(upstreamBefore).ToList();
        Assert.NotEmpty(upstream);
        Assert.Equal(CatalogModel, upstream[0].Model());
        Assert.Equal(CatalogModel, upstream.Single(r => r.BodyText.Contains(prompt, StringComparison.Ordinal)).Model());
        Assert.Equal(Alias, ReadSettingsModel(workspace));
        AssertKeyNotLeaked(s);
    }

    /// <summary>
    /// <c>ENABLE_TOOL_SEARCH=true</c> with six MCP tools (tests/…/Clients/mcp/inventory-server.mjs): Claude Code sends
    /// only its ToolSearch tool and a <c>defer_loading</c> placeholder, naming the deferred tools in the prompt. The
    /// scripted model searches (ToolSearch select:…), Claude Code answers with a <c>tool_reference</c> and from then on
    /// sends the loaded tool (deferred); the model calls it, the MCP server runs it, and the session ends with its
    /// answer. Toward the OpenAI upstream no deferred tool is offered before its tool_reference, and
    /// <c>defer_loading</c> never leaves the gateway.
    /// </summary>
    [Fact]
    public async Task ToolSearch_DeferredMcpTools_ReachTheOpenAIUpstreamOnlyOnceReferenced()
    {
        var claude = RequireLatestClaude();
        using var workspace = new ClaudeCodeTests.Workspace();
        const string loaded = "mcp__inventory__lookup_order";
        const string orderId = "ORD-4711";
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var tools = UpstreamToolNames(request);
            var lastTool = request.ToolMessages().Select(ScenarioExtensions.ContentText).LastOrDefault();
            if (!tools.Contains("ToolSearch") || request.Model() != "main-model")
            {
                return Sse.WriteAsync(context, Sse.TextAnswer(["side request answered"], prompt: 500));
            }

            if (lastTool is null)
            {
                return Sse.WriteAsync(context, Call("call_search_1", "ToolSearch", new { query = "select:" + loaded, max_results = 1 }));
            }

            if (lastTool.Contains(workspace.Marker, StringComparison.Ordinal))
            {
                return Sse.WriteAsync(context, Sse.TextAnswer([$"Order {orderId}: ", lastTool], prompt: 9000));
            }

            return tools.Contains(loaded)
                ? Sse.WriteAsync(context, Call("call_lookup_1", loaded, new { order_id = orderId }))
                : Sse.WriteAsync(context, Sse.TextAnswer(["the tool was never loaded: ", lastTool], prompt: 9000));
        }, VerboseLogs);
        await using var proxy = await RecordingProxy.StartAsync(s.Gateway.BaseUrl);

        var mcpConfig = new JsonObject
        {
            ["mcpServers"] = new JsonObject
            {
                ["inventory"] = new JsonObject
                {
                    ["command"] = "node",
                    ["args"] = new JsonArray(Path.Combine(RepoPaths.Root, "tests", "Melious.Gateway.FunctionalTests", "Clients", "mcp", "inventory-server.mjs")),
                    ["env"] = new JsonObject { ["MELIOUS_MCP_MARKER"] = workspace.Marker },
                },
            },
        };
        var info = new ProcessStartInfo(claude) { WorkingDirectory = workspace.Project };
        foreach (var arg in new[] { "-p", $"What is the status of order {orderId}?", "--output-format", "json", "--strict-mcp-config", "--mcp-config", mcpConfig.ToJsonString(), "--allowedTools", loaded })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Clear();
        foreach (var (name, value) in ClientEnvironment(workspace, proxy.BaseUrl, s.Key))
        {
            info.Environment[name] = value;
        }

        info.Environment["ENABLE_TOOL_SEARCH"] = "true";
        var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(180), Ct);
        var report = Report(run, s, proxy);
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(ClaudeCodeTests.ResultLine(run)).RootElement;
        Assert.False(result.GetProperty("is_error").GetBoolean(), report);
        Assert.Contains(workspace.Marker, result.GetProperty("result").GetString(), StringComparison.Ordinal);

        // What Claude Code sent: ToolSearch plus a defer_loading tool, the MCP tools only named in the prompt.
        var sent = proxy.Requests.Where(r => r.Method == "POST" && r.Path.StartsWith("/v1/messages?", StringComparison.Ordinal)).Select(r => JsonNode.Parse(r.Body)!.AsObject()).Where(b => ToolNames(b).Contains("ToolSearch")).ToList();
        Assert.True(sent.Count >= 3, report);
        var first = sent[0];
        Assert.Contains(first["tools"]!.AsArray(), t => t!["defer_loading"]?.GetValue<bool>() == true);
        Assert.DoesNotContain(loaded, ToolNames(first));
        Assert.Contains(loaded, first["messages"]!.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(sent, b => ToolNames(b).Any(n => n.StartsWith("mcp__inventory__", StringComparison.Ordinal) && n != loaded));

        // After the search: a tool_reference to the tool in a tool_result, and the tool itself, still deferred.
        var referencing = sent.First(b => b["messages"]!.ToJsonString().Contains("\"tool_reference\"", StringComparison.Ordinal));
        var reference = referencing["messages"]!.AsArray().SelectMany(m => m!["content"] is JsonArray blocks ? blocks : []).Where(b => b!["type"]?.GetValue<string>() == "tool_result")
            .SelectMany(b => b!["content"] is JsonArray inner ? inner : []).Single(b => b!["type"]!.GetValue<string>() == "tool_reference");
        Assert.Equal(loaded, reference!["tool_name"]!.GetValue<string>());
        var loadedTool = referencing["tools"]!.AsArray().Single(t => t!["name"]!.GetValue<string>() == loaded);
        Assert.True(loadedTool!["defer_loading"]?.GetValue<bool>() == true, "the loaded tool stays deferred: " + loadedTool.ToJsonString());

        // Toward the upstream: the placeholder and the tool before its reference never offered; defer_loading stripped.
        var main = s.Upstream.Requests.Where(r => UpstreamToolNames(r).Contains("ToolSearch")).ToList();
        Assert.Equal(3, main.Count);
        Assert.All(main, r => Assert.DoesNotContain("defer_loading", r.BodyText, StringComparison.Ordinal));
        Assert.All(main, r => Assert.DoesNotContain(UpstreamToolNames(r), n => n == "DeferredToolPlaceholder"));
        Assert.DoesNotContain(loaded, UpstreamToolNames(main[0]));
        Assert.Contains(loaded, UpstreamToolNames(main[1]));
        Assert.Contains(loaded, UpstreamToolNames(main[2]));
        Assert.Contains(main[1].ToolMessages(), m => ScenarioExtensions.ContentText(m).Contains(loaded, StringComparison.Ordinal));
        Assert.Contains(main[2].ToolMessages(), m => ScenarioExtensions.ContentText(m).Contains($"order {orderId} is shipped ({workspace.Marker})", StringComparison.Ordinal));
        AssertKeyNotLeaked(s);
    }

    /// <summary>The key (sent as a bearer token, on discovery too) never reaches a gateway log line or the upstream.</summary>
    private static void AssertKeyNotLeaked(Scenario s)
    {
        var secret = s.Key[^16..];
        Assert.DoesNotContain(s.Gateway.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        Assert.DoesNotContain(s.Upstream.Requests, r => r.BodyText.Contains(secret, StringComparison.Ordinal) || r.Headers.Values.Any(v => v.Contains(secret, StringComparison.Ordinal)));
    }

    private static string RequireLatestClaude()
    {
        var claude = ClaudeCodeTests.ClaudeBinary(ClaudeCodeTests.Latest);
        if (!File.Exists(claude))
        {
            Assert.Skip($"the newest Claude Code is not installed at {claude} (scripts/test.sh installs tools/)");
        }

        return claude;
    }

    private static string RequireLatestClaudeUnderTmux()
    {
        if (TmuxSession.Unavailable is { } why)
        {
            Assert.Skip(why);
        }

        return RequireLatestClaude();
    }

    /// <summary>The environment Claude Code gets (nothing else of the test process): the gateway (through the proxy) and its key as a bearer token.</summary>
    private static Dictionary<string, string> ClientEnvironment(ClaudeCodeTests.Workspace workspace, string baseUrl, string key) => new()
    {
        ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
        ["HOME"] = workspace.Home,
        ["TERM"] = "dumb",
        ["ANTHROPIC_BASE_URL"] = baseUrl,
        ["ANTHROPIC_AUTH_TOKEN"] = key,
        ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1",
        ["DISABLE_TELEMETRY"] = "1",
        ["DISABLE_AUTOUPDATER"] = "1",
        ["CLAUDE_CODE_MAX_RETRIES"] = "0",
    };

    /// <summary>
    /// A user who finished Claude Code's onboarding and trusts the project (no first-run dialogs); with
    /// <paramref name="approvedApiKey"/>, one who answered "use this key" to the custom ANTHROPIC_API_KEY dialog
    /// (Claude Code remembers the key's last 20 characters).
    /// </summary>
    private static void TrustProjectAndSkipOnboarding(ClaudeCodeTests.Workspace workspace, string? approvedApiKey = null)
    {
        var config = new Dictionary<string, object>
        {
            ["hasCompletedOnboarding"] = true,
            ["theme"] = "dark",
            ["projects"] = new Dictionary<string, object> { [workspace.Project] = new Dictionary<string, object> { ["hasTrustDialogAccepted"] = true } },
        };
        if (approvedApiKey is not null)
        {
            config["customApiKeyResponses"] = new Dictionary<string, string[]> { ["approved"] = [approvedApiKey.Trim()[^20..]], ["rejected"] = [] };
        }

        File.WriteAllText(Path.Combine(workspace.Home, ".claude.json"), JsonSerializer.Serialize(config));
    }

    private static bool IsPromptReady(string screen) =>
        screen.Contains("Claude Code v", StringComparison.Ordinal) && screen.Split('\n').Any(l => l.TrimStart().StartsWith('❯'));

    private static async Task WaitUntilAsync(Func<bool> condition, string what, TmuxSession tmux)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"waited 120 s for {what}; the terminal shows:\n{await tmux.CaptureAsync()}");
            }

            await Task.Delay(300, Ct);
        }
    }

    /// <summary>The picker's numbered option lines ("  ❯ 6. Name   Description").</summary>
    private static List<string> PickerOptions(string screen) =>
        screen.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s*(❯\s*)?\d+\.\s")).ToList();

    /// <summary>An option line without the cursor mark, so that the same option reads the same with or without it.</summary>
    private static string Unmarked(string line) => line.Replace("❯", " ", StringComparison.Ordinal).Trim();

    private static string CursorLine(string screen) =>
        PickerOptions(screen).FirstOrDefault(l => l.TrimStart().StartsWith('❯')) ?? "";

    private static string? ReadSettingsModel(ClaudeCodeTests.Workspace workspace)
    {
        var settings = Path.Combine(workspace.Home, ".claude", "settings.json");
        return File.Exists(settings) ? JsonNode.Parse(File.ReadAllText(settings))?["model"]?.GetValue<string>() : null;
    }

    private static string[] Call(string id, string name, object arguments)
    {
        var json = JsonSerializer.Serialize(arguments);
        var half = json.Length / 2;
        return [Sse.Role(), Sse.ToolCall(0, id, name, ""), Sse.ToolCall(0, null, null, json[..half]), Sse.ToolCall(0, null, null, json[half..]), Sse.Finish("tool_calls"), Sse.Usage(8000, 30)];
    }

    private static List<string> UpstreamToolNames(UpstreamRequest request) =>
        request.Json.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array
            ? tools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()!).ToList()
            : [];

    private static List<string> ToolNames(JsonObject body) =>
        body["tools"] is JsonArray tools ? tools.Select(t => t!["name"]?.GetValue<string>() ?? "").ToList() : [];

    private static string Report(ProcessResult run, Scenario s, RecordingProxy proxy)
    {
        var text = new StringBuilder(run.Describe());
        text.Append("\n--- client requests ---");
        foreach (var r in proxy.Requests)
        {
            text.Append($"\n{r.Method} {r.Path} bytes={r.Body.Length}");
        }

        text.Append("\n--- upstream requests ---");
        foreach (var r in s.Upstream.Requests)
        {
            text.Append($"\n{r.Method} {r.Path} model={r.Model()} tools=[{string.Join(",", UpstreamToolNames(r))}] tool messages={r.ToolMessages().Count()}");
        }

        text.Append("\n--- gateway warnings and errors ---");
        foreach (var line in s.Gateway.Logs.Lines.Where(l => l.StartsWith("Warning", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal)))
        {
            text.Append('\n').Append(line.Length > 400 ? line[..400] + "…" : line);
        }

        return text.ToString();
    }
}
