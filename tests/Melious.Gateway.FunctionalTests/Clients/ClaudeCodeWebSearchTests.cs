using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Web;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Melious.Gateway.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// The newest Claude Code (tools/node_modules/claude-code-latest, <c>MELIOUS_CLAUDE_LATEST</c> overrides) asks
/// something that needs its WebSearch tool, through the gateway, an OpenAI-compatible scripted model and a scripted
/// SearXNG. A recording proxy between Claude Code and the gateway keeps the exact bytes Claude Code received, so the
/// search response is checked against the SSE grammar as Claude Code saw it.
/// </summary>
public sealed class ClaudeCodeWebSearchTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string LatestClaude()
    {
        if (Environment.GetEnvironmentVariable("MELIOUS_CLAUDE_LATEST") is { Length: > 0 } configured)
        {
            return configured;
        }

        var path = Path.Combine(RepoPaths.Root, "tools", "node_modules", "claude-code-latest", "bin", "claude.exe");
        Assert.True(File.Exists(path), $"the newest Claude Code is not installed at {path} (or set MELIOUS_CLAUDE_LATEST)");
        return path;
    }

    [Fact]
    public async Task Newest_Claude_Code_WebSearch_runs_through_the_gateway_provider()
    {
        var marker = "WSMARK" + Guid.NewGuid().ToString("N")[..12];
        await using var provider = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            var q = HttpUtility.ParseQueryString(new Uri("http://x" + request.Path).Query)["q"] ?? "";
            var results = new JsonArray(
                new JsonObject { ["url"] = "https://news.example.com/melious", ["title"] = "Melious release " + marker, ["content"] = "The gateway now searches. " + q, ["publishedDate"] = "2026-12-01" },
                new JsonObject { ["url"] = "https://docs.example.com/web-search", ["title"] = "Web search docs", ["content"] = "SearXNG, Brave and Tavily." });
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(new JsonObject { ["query"] = q, ["results"] = results }.ToJsonString(), Ct);
        });

        // The model: in Claude Code's WebSearch request (the gateway offers web_search) it searches, then summarizes;
        // in the main conversation it calls Claude Code's WebSearch tool, then answers from its result.
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var body = request.Json;
            var offered = body.TryGetProperty("tools", out var tools) ? tools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()).ToList() : [];
            var toolMessages = request.ToolMessages().Select(ScenarioExtensions.ContentText).ToList();
            if (offered.Contains("web_search") && !offered.Contains("WebSearch"))
            {
                return toolMessages.Count == 0
                    ? Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "call_s", "web_search", """{"query":"melious gateway news"}"""), Sse.Finish("tool_calls"), Sse.Usage(900, 15)])
                    : Sse.WriteAsync(context, [Sse.Role(), Sse.Content("The top result is titled "), Sse.Content(toolMessages[0].Contains(marker, StringComparison.Ordinal) ? marker : "unknown"), Sse.Content("."), Sse.Finish("stop"), Sse.Usage(1200, 12)]);
            }

            if (offered.Contains("WebSearch") && toolMessages.Count == 0)
            {
                return Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "call_w", "WebSearch", """{"query":"melious gateway news"}"""), Sse.Finish("tool_calls"), Sse.Usage(9000, 20)]);
            }

            var answer = toolMessages.Any(t => t.Contains(marker, StringComparison.Ordinal)) ? "Search said " + marker : "Search said nothing";
            return Sse.WriteAsync(context, [Sse.Role(), Sse.Content(answer), Sse.Finish("stop"), Sse.Usage(9500, 8)]);
        }, new Dictionary<string, string?>
        {
            ["Melious:Search:Provider"] = "searxng",
            ["Melious:Search:BaseUrl"] = provider.BaseUrl,
            ["Melious:Search:PricePerSearch"] = "0.005",
            ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
        });
        await using var proxy = await RecordingProxy.StartAsync(s.Gateway.BaseUrl);

        var home = Directory.CreateTempSubdirectory("melious-claude-ws-");
        try
        {
            var info = new ProcessStartInfo(LatestClaude()) { WorkingDirectory = home.FullName };
            foreach (var arg in new[] { "-p", "Search the web: what is new in the melious gateway?", "--output-format", "json", "--allowedTools", "WebSearch" })
            {
                info.ArgumentList.Add(arg);
            }

            info.Environment.Clear();
            info.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin";
            info.Environment["HOME"] = home.FullName;
            info.Environment["TERM"] = "dumb";
            info.Environment["ANTHROPIC_BASE_URL"] = proxy.BaseUrl;
            info.Environment["ANTHROPIC_API_KEY"] = s.Key;
            info.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
            info.Environment["DISABLE_TELEMETRY"] = "1";
            info.Environment["DISABLE_AUTOUPDATER"] = "1";
            info.Environment["CLAUDE_CODE_MAX_RETRIES"] = "0";

            // The newest Claude Code defers WebSearch behind its ToolSearch tool; that path is tested on its own.
            info.Environment["ENABLE_TOOL_SEARCH"] = "false";
            var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(150), Ct);

            var report = new StringBuilder(run.Describe()).Append("\n--- through the proxy ---");
            foreach (var exchange in proxy.Exchanges)
            {
                report.Append($"\n{exchange.Method} {exchange.Path} -> {exchange.Status}, {exchange.Response.Length} bytes; tools: {ToolTypes(exchange)}");
            }

            foreach (var r in s.Upstream.Requests)
            {
                report.Append("\n--- upstream ---\n").Append(r.BodyText.Length > 1500 ? r.BodyText[^1500..] : r.BodyText);
            }

            foreach (var e in proxy.Exchanges)
            {
                report.Append("\n--- response ---\n").Append(Encoding.UTF8.GetString(e.Response));
            }

            Assert.True(run.ExitCode == 0 && !run.TimedOut, report.ToString());
            var result = JsonDocument.Parse(run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.TrimStart().StartsWith('{'))).RootElement;
            Assert.False(result.GetProperty("is_error").GetBoolean(), report.ToString());
            Assert.Contains("Search said " + marker, result.GetProperty("result").GetString(), StringComparison.Ordinal);

            // The provider received the model's query.
            var search = Assert.Single(provider.Requests);
            Assert.Equal("melious gateway news", HttpUtility.ParseQueryString(new Uri("http://x" + search.Path).Query)["q"]);

            // Claude Code's WebSearch request carried the server tool, and what it received is a valid Anthropic
            // stream (or message) with server_tool_use, web_search_tool_result and text, in that order.
            var exchangeWithSearch = proxy.Exchanges.Single(e => ToolTypes(e).Contains("web_search_", StringComparison.Ordinal));
            var blocks = ContentOf(exchangeWithSearch);
            Assert.Equal(["server_tool_use", "web_search_tool_result", "text"], blocks.Select(b => (string)b!["type"]!));
            Assert.Equal("melious gateway news", (string?)blocks[0]!["input"]!["query"]);
            Assert.Equal("https://news.example.com/melious", (string?)blocks[1]!["content"]![0]!["url"]);
            Assert.Contains(marker, (string)blocks[2]!["text"]!, StringComparison.Ordinal);

            // The main conversation's next turn carried the WebSearch result (links and summary) back to the model.
            var mainFollowUp = s.Upstream.Requests.Last(r => r.HasToolMessage() && !r.Json.GetProperty("tools").EnumerateArray().Any(t => t.GetProperty("function").GetProperty("name").GetString() == "web_search"));
            Assert.Contains("https://news.example.com/melious", ScenarioExtensions.ContentText(mainFollowUp.ToolMessages().Single()), StringComparison.Ordinal);

            // A second turn of Claude Code's own search request, replaying what it received, reaches the upstream
            // as a tool call and the same result text (decoded from encrypted_content).
            var replay = JsonNode.Parse(exchangeWithSearch.Request)!.AsObject();
            replay["stream"] = false;
            replay["messages"]!.AsArray().Add(new JsonObject { ["role"] = "assistant", ["content"] = blocks.DeepClone() });
            replay["messages"]!.AsArray().Add(new JsonObject { ["role"] = "user", ["content"] = "and the second result?" });
            var firstToolText = ScenarioExtensions.ContentText(s.Upstream.Requests.First(r => r.HasToolMessage()).ToolMessages().Single());
            var again = await s.PostAsync(replay);
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            var replayedTool = s.Upstream.Last.ToolMessages().Single();
            Assert.Equal((string?)blocks[0]!["id"], replayedTool.GetProperty("tool_call_id").GetString());
            Assert.Equal(firstToolText, ScenarioExtensions.ContentText(replayedTool));
            Assert.Contains("SearXNG, Brave and Tavily.", firstToolText, StringComparison.Ordinal);

            // The billing row of the search request counts the search.
            var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
            var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Any(row => row.GetInt32("WebSearchRequests") > 0), TimeSpan.FromSeconds(30));
            var searched = Assert.Single(rows, row => row.GetInt32("WebSearchRequests") > 0);
            Assert.Equal(1, searched.GetInt32("WebSearchRequests"));
            Assert.Equal(5_000_000, UsageTables.Long(searched, "WebSearchCostNanos"));
        }
        finally
        {
            try
            {
                home.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string ToolTypes(RecordingProxy.Exchange exchange)
    {
        try
        {
            var body = JsonNode.Parse(exchange.Request);
            return body?["tools"] is JsonArray tools ? string.Join(",", tools.Select(t => (string?)t?["type"] ?? (string?)t?["name"])) : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    /// <summary>The content blocks Claude Code received: from the SSE (grammar-checked) or a JSON message.</summary>
    private static JsonArray ContentOf(RecordingProxy.Exchange exchange)
    {
        var text = Encoding.UTF8.GetString(exchange.Response);
        if (exchange.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) == true)
        {
            return JsonNode.Parse(SseGrammar.ToContent(SseGrammar.Validate(text)))!.AsArray();
        }

        return JsonNode.Parse(text)!["content"]!.AsArray();
    }

    /// <summary>A loopback reverse proxy that forwards to the gateway and keeps each request body and the bytes sent back.</summary>
    private sealed class RecordingProxy : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly HttpClient _client = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = Timeout.InfiniteTimeSpan };

        private RecordingProxy(WebApplication app) => _app = app;

        public sealed record Exchange(string Method, string Path, string Request, int Status, string? ContentType, byte[] Response);

        public ConcurrentQueue<Exchange> Exchanges { get; } = new();

        public string BaseUrl { get; private set; } = "";

        public static async Task<RecordingProxy> StartAsync(string target)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var proxy = new RecordingProxy(app);
            app.Run(context => proxy.ForwardAsync(context, target));
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            proxy.BaseUrl = $"http://127.0.0.1:{new Uri(address).Port}";
            return proxy;
        }

        private async Task ForwardAsync(HttpContext context, string target)
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            var path = context.Request.Path + context.Request.QueryString;
            using var forward = new HttpRequestMessage(new HttpMethod(context.Request.Method), target + path);
            if (body.Length > 0 || HttpMethods.IsPost(context.Request.Method))
            {
                forward.Content = new ByteArrayContent(body.ToArray());
            }

            foreach (var (name, values) in context.Request.Headers)
            {
                if (name.Equals("Host", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                if (!forward.Headers.TryAddWithoutValidation(name, values.ToArray()))
                {
                    forward.Content?.Headers.TryAddWithoutValidation(name, values.ToArray());
                }
            }

            using var response = await _client.SendAsync(forward, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
            context.Response.StatusCode = (int)response.StatusCode;
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (!name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    context.Response.Headers[name] = values.ToArray();
                }
            }

            using var copy = new MemoryStream();
            await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                copy.Write(buffer, 0, read);
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }

            Exchanges.Enqueue(new Exchange(context.Request.Method, path, Encoding.UTF8.GetString(body.ToArray()), (int)response.StatusCode, response.Content.Headers.ContentType?.ToString(), copy.ToArray()));
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
