using System.Diagnostics;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious launch claude-code -- -p …</c> with the real Claude Code (the version tools/ pins, and the newest),
/// found through PATH: the model slots are pinned (main, subagent, haiku), the key goes as Bearer and no x-api-key
/// arrives although the parent shell has a real Anthropic key, and claude's exit code is melious's.
/// </summary>
public sealed class LaunchTests(AzuriteFixture azurite)
{
    private const string ParentAnthropicKey = "sk-ant-api03-ParentShellKeyParentShellKeyParentShellKey0123456789-AAAA";

    [Theory]
    [InlineData("pinned")]
    [InlineData("latest")]
    public async Task Launch_PinsEverySlot_SendsOnlyTheBearerKey_AndPassesTheExitCodeThrough(string version)
    {
        const string Marker = "SUBAGENT-REPORT-7731";
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var model = request.Model();
            if (model == "secondary-model")
            {
                return Sse.WriteAsync(context, Sse.TextAnswer(["The subagent found: ", Marker], prompt: 4000));
            }

            if (request.HasToolMessage())
            {
                return Sse.WriteAsync(context, Sse.TextAnswer(["Summary: ", ScenarioExtensions.ContentText(request.ToolMessages().Single())], prompt: 9000));
            }

            if (model == "main-model" && request.BodyText.Contains("delegate this", StringComparison.Ordinal))
            {
                var arguments = JsonSerializer.Serialize(new { description = "Look around", prompt = "Report what you find.", subagent_type = "general-purpose" });
                return Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "call_agent", "Agent", arguments), Sse.Finish("tool_calls"), Sse.Usage(9000, 40)]);
            }

            return Sse.WriteAsync(context, Sse.TextAnswer([$"answered by {model}"], prompt: 3000));
        });
        await using var proxy = await RecordingProxy.StartAsync(s.Gateway.BaseUrl);
        using var box = new CliSandbox();
        box.UseClaude(version);
        await box.LoginAsync(proxy.BaseUrl, s.Key);

        // The parent shell: a real Anthropic key, a wrong base URL and a model that would override the pins.
        box.Environment["ANTHROPIC_API_KEY"] = ParentAnthropicKey;
        box.Environment["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9/v1";
        box.Environment["ANTHROPIC_MODEL"] = "claude-opus-4-8";

        // 1. The main model, and a subagent on its pinned model.
        var run = await box.RunAsync(["launch", "claude-code", "--", "-p", "delegate this to a subagent", "--output-format", "json"]);
        var report = run.Describe() + "\nupstream: " + string.Join(", ", s.Upstream.Requests.Select(r => r.Model()));
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith('{'))).RootElement;
        Assert.False(result.GetProperty("is_error").GetBoolean(), report);
        Assert.Equal("main-model", s.Upstream.Requests.First().Model());

        // The subagent ran on its pinned model (the newest Claude Code runs it in the background and may answer first).
        Assert.Contains(s.Upstream.Requests, r => r.Model() == "secondary-model");
        Assert.True(result.GetProperty("modelUsage").TryGetProperty("secondary-model", out _), report);
        Assert.All(s.Upstream.Requests, r => Assert.Contains(r.Model(), new[] { "main-model", "secondary-model", "light-model" }));

        // Told once, by name only.
        Assert.Single(run.Stderr.Split('\n'), l => l.StartsWith("melious: not passing", StringComparison.Ordinal));
        Assert.Contains("not passing ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_MODEL from your shell", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("ParentShellKey", run.Stdout + run.Stderr, StringComparison.Ordinal);

        // 2. The haiku slot.
        var upstreamBefore = s.Upstream.Requests.Count;
        var haiku = await box.RunAsync(["launch", "claude-code", "--", "-p", "--model", "haiku", "say hi", "--output-format", "json"]);
        Assert.True(haiku.ExitCode == 0, haiku.Describe());
        var haikuModels = s.Upstream.Requests.Skip(upstreamBefore).Select(r => r.Model()).ToList();
        Assert.NotEmpty(haikuModels);
        Assert.All(haikuModels, m => Assert.Equal("light-model", m));

        // Every request Claude Code made: the key as Bearer, never an x-api-key.
        var messages = proxy.Requests.Where(r => r.Path.StartsWith("/v1/messages", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(messages);
        Assert.All(proxy.Requests.Where(r => r.Path.StartsWith("/v1/", StringComparison.Ordinal) && !r.Path.StartsWith("/v1/models", StringComparison.Ordinal) && !r.Path.StartsWith("/v1/me", StringComparison.Ordinal)), r =>
        {
            Assert.Equal("Bearer " + s.Key, r.Headers["authorization"]);
            Assert.False(r.Headers.ContainsKey("x-api-key"), $"{r.Method} {r.Path} carried x-api-key");
        });

        // 3. The exit code: claude's own for a bad flag.
        var direct = new ProcessStartInfo(CliSandbox.ClaudePath(version)) { WorkingDirectory = box.Project, RedirectStandardOutput = true, RedirectStandardError = true };
        direct.ArgumentList.Add("--no-such-flag-melious");
        box.Fill(direct.Environment);
        var expected = await ClientProcess.RunAsync(direct, TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.NotEqual(0, expected.ExitCode);
        var failed = await box.RunAsync(["launch", "claude-code", "--", "--no-such-flag-melious"]);
        Assert.Equal(expected.ExitCode, failed.ExitCode);
    }
}
