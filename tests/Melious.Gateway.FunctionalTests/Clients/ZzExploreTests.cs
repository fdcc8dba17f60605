using System.Diagnostics;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Clients;

public sealed class ZzExploreTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Cases => new() { "count", "dump" };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Explore(string name)
    {
        var root = Directory.CreateTempSubdirectory("melious-x-");
        var home = Directory.CreateDirectory(Path.Combine(root.FullName, "home")).FullName;
        var project = Directory.CreateDirectory(Path.Combine(root.FullName, "project")).FullName;
        var file = Path.Combine(project, "notes.txt");
        File.WriteAllText(file, name == "count" ? string.Join("\n", Enumerable.Range(0, 3500).Select(i => $"line {i} the quick brown fox jumps over the lazy dog")) : "MARKER-123\n");
        var file2 = Path.Combine(project, "other.txt");
        File.WriteAllText(file2, "SECOND-456\n");
        var args = JsonSerializer.Serialize(new Dictionary<string, string> { ["file_path"] = file });
        var args2 = JsonSerializer.Serialize(new Dictionary<string, string> { ["file_path"] = file2 });
        var n = 0;
        await using var s = await Scenario.StartAsync(azurite, async (request, context) =>
        {
            var i = Interlocked.Increment(ref n);
            File.WriteAllText($"/tmp/explore/{name}-{i}.json", request.Path + "\n" + request.BodyText);
            var hasTool = request.HasToolMessage();
            string Raw(object delta, string? finish = null) => JsonSerializer.Serialize(new { id = "x", @object = "chat.completion.chunk", choices = new[] { new { index = 0, delta, finish_reason = finish } } });
            var isSub = request.Json.GetProperty("model").GetString() == "light-model";
            switch (name)
            {
                case "onechunk" when !hasTool:
                    await Sse.WriteAsync(context, [Raw(new { role = "assistant", tool_calls = new[] { new { index = 0, id = "c1", type = "function", function = new { name = "Read", arguments = args } } } }), Raw(new { }, "tool_calls"), Sse.Usage(9000, 30)]);
                    return;
                case "rcontent" when !hasTool:
                    await Sse.WriteAsync(context, [Raw(new { role = "assistant", reasoning_content = "hmm " }), Raw(new { reasoning_content = "let me read" }), Raw(new { content = "\n\n" }), Sse.ToolCall(0, "c1", "Read", args), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
                    return;
                case "stopwithtools" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "c1", "Read", args), Sse.Finish("stop"), Sse.Usage(9000, 30)]);
                    return;
                case "nousage" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "c1", "Read", args), Sse.Finish("tool_calls")]);
                    return;
                case "nousage":
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("Done: answer"), Sse.Finish("stop")]);
                    return;
                case "emptycontent" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Content(""), Sse.Content(""), Sse.ToolCall(0, "c1", "Read", args), Sse.Content(""), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
                    return;
                case "agent" when isSub && !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "s1", "Read", args), Sse.Finish("tool_calls"), Sse.Usage(5000, 30)]);
                    return;
                case "agent" when isSub:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("Subagent found MARKER-123"), Sse.Finish("stop"), Sse.Usage(5000, 30)]);
                    return;
                case "agent" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "c1", "Agent", JsonSerializer.Serialize(new { description = "Read notes", prompt = "Read notes.txt in the current directory and report its content", subagent_type = "Explore" })), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
                    return;
                case "truncate" when i == 1:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("partial")], done: false);
                    return;
                case "parallel" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "c1", "Read", args), Sse.ToolCall(1, "c2", "Read", args2), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
                    return;
                case "length" when i == 1:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("cut off here"), Sse.Finish("length"), Sse.Usage(9000, 30)]);
                    return;
                case "overflow":
                    await Sse.ErrorAsync(context, 400, "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (8000 in the messages, 32000 in the completion).");
                    return;
                case "texttool" when !hasTool:
                    await Sse.WriteAsync(context, [Sse.Role(), Sse.Reasoning("think"), Sse.Content("I'll read it."), Sse.ToolCall(0, "c1", "Read", args), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
                    return;
            }

            if (hasTool || name is "truncate" or "length")
            {
                await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("Done: answer"), Sse.Finish("stop"), Sse.Usage(9000, 12)]);
            }
            else
            {
                await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "c1", "Read", args), Sse.Finish("tool_calls"), Sse.Usage(9000, 30)]);
            }
        }, new Dictionary<string, string?> { ["Logging:LogLevel:Melious"] = "Trace", ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information" });

        var info = new ProcessStartInfo(RepoPaths.Tool("claude", "MELIOUS_CLAUDE")) { WorkingDirectory = project };
        foreach (var a in new[] { "-p", "read the file and tell me what it says", "--output-format", "json" }) info.ArgumentList.Add(a);
        var path = Environment.GetEnvironmentVariable("PATH")!;
        info.Environment.Clear();
        info.Environment["PATH"] = path;
        info.Environment["HOME"] = home;
        info.Environment["TERM"] = "dumb";
        info.Environment["ANTHROPIC_BASE_URL"] = s.Gateway.BaseUrl;
        info.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        info.Environment["DISABLE_TELEMETRY"] = "1";
        info.Environment["DISABLE_AUTOUPDATER"] = "1";
        info.Environment["CLAUDE_CODE_MAX_RETRIES"] = "0";
        info.Environment["ANTHROPIC_AUTH_TOKEN"] = s.Key;
        var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(120), Ct);
        var lines = new List<string> { run.Describe() };
        lines.AddRange(s.Gateway.Logs.Lines.Where(l => !l.StartsWith("Trace Melious.Gateway.Usage", StringComparison.Ordinal)).Select(l => l.Length > 600 ? l[..600] : l));
        File.WriteAllLines($"/tmp/explore/{name}.log", lines);
        root.Delete(true);
    }
}
