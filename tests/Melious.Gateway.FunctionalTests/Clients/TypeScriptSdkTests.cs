using System.Diagnostics;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// The official TypeScript SDK (<c>@anthropic-ai/sdk</c> from tools/node_modules, the library Claude Code is built on)
/// run by <c>node</c> against the real gateway: create, stream + finalMessage, countTokens, tool use, a bad key.
/// </summary>
public sealed class TypeScriptSdkTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Script = """
        import Anthropic, { AuthenticationError } from '__SDK__';

        const baseURL = process.env.MELIOUS_TEST_BASE_URL;
        const key = process.env.MELIOUS_TEST_KEY;
        const model = 'claude-sonnet-4-5-20250929';
        const out = {};

        const viaApiKey = new Anthropic({ baseURL, apiKey: key, maxRetries: 0 });
        const viaToken = new Anthropic({ baseURL, apiKey: null, authToken: key, maxRetries: 0 });

        const created = await viaApiKey.messages.create({ model, max_tokens: 100, messages: [{ role: 'user', content: 'plain' }] });
        out.create = { text: created.content.map(b => b.text ?? '').join(''), model: created.model, stop_reason: created.stop_reason,
                       usage: created.usage, billing_cost: created.billing_cost, environment_impact: created.environment_impact };

        const stream = viaToken.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'streamed' }] });
        const events = [];
        let streamedText = '';
        let finalDelta = null;
        stream.on('streamEvent', e => { events.push(e.type); if (e.type === 'message_delta') finalDelta = e; });
        stream.on('text', t => { streamedText += t; });
        const final = await stream.finalMessage();
        out.stream = { text: streamedText, final_text: final.content.map(b => b.text ?? '').join(''), model: final.model,
                       stop_reason: final.stop_reason, usage: final.usage, events,
                       billing_cost: finalDelta?.billing_cost, environment_impact: finalDelta?.environment_impact };

        const counted = await viaApiKey.messages.countTokens({ model, messages: [{ role: 'user', content: 'count these few words please' }] });
        out.count = counted;

        const tools = [{ name: 'get_weather', description: 'Weather for a city',
                         input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } }];
        const ask = { role: 'user', content: 'weather in Paris?' };
        const first = await viaApiKey.messages.stream({ model, max_tokens: 100, tools, messages: [ask] }).finalMessage();
        const toolUse = first.content.find(b => b.type === 'tool_use');
        const second = await viaApiKey.messages.create({ model, max_tokens: 100, tools, messages: [
            ask,
            { role: 'assistant', content: first.content },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: 'sunny, 18 degrees' }] },
        ] });
        out.tool = { id: toolUse.id, name: toolUse.name, input: toolUse.input, stop_reason: first.stop_reason,
                     answer: second.content.map(b => b.text ?? '').join('') };

        try {
            await new Anthropic({ baseURL, apiKey: 'sk-mel-wrongwrongwrongwrongwrongwrongwrong0xxxxxxx', maxRetries: 0 })
                .messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
            out.error = { thrown: false };
        } catch (e) {
            out.error = { thrown: true, authentication: e instanceof AuthenticationError, status: e.status, message: e.message, type: e.error?.error?.type };
        }

        console.log(JSON.stringify(out));
        """;

    [Fact]
    public async Task TypeScriptSdk_CreateStreamCountToolsAndErrors()
    {
        var sdk = Path.Combine(RepoPaths.Root, "tools", "node_modules", "@anthropic-ai", "sdk", "index.mjs");
        Assert.True(File.Exists(sdk), $"{sdk} is missing: run `npm install` in tools/ (scripts/test.sh does).");
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var prompt = request.Json.GetProperty("messages")[0].GetProperty("content").ToString();
            if (request.HasToolMessage())
            {
                return Sse.WriteAsync(context, Sse.TextAnswer(["It is sunny."]));
            }

            if (request.Json.TryGetProperty("tools", out _))
            {
                return Sse.WriteAsync(context,
                [
                    Sse.Role(),
                    Sse.ToolCall(0, "call_1", "get_weather", "{\"location\""),
                    Sse.ToolCall(0, null, null, ": \"Paris\"}"),
                    Sse.Finish("tool_calls"),
                    Sse.Usage(200, 10),
                ]);
            }

            return Sse.WriteAsync(context, Sse.TextAnswer(["echo:", " " + prompt], prompt: 150));
        });

        var directory = Directory.CreateTempSubdirectory("melious-ts-sdk-");
        try
        {
            var script = Path.Combine(directory.FullName, "client.mjs");
            await File.WriteAllTextAsync(script, Script.Replace("__SDK__", new Uri(sdk).AbsoluteUri, StringComparison.Ordinal), Ct);
            var info = new ProcessStartInfo("node") { WorkingDirectory = directory.FullName };
            info.ArgumentList.Add(script);
            foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("ANTHROPIC_", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                info.Environment.Remove(name);
            }

            info.Environment["MELIOUS_TEST_BASE_URL"] = s.Gateway.BaseUrl;
            info.Environment["MELIOUS_TEST_KEY"] = s.Key;

            var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(60), Ct);

            Assert.True(run.ExitCode == 0 && !run.TimedOut, run.Describe());
            var result = JsonDocument.Parse(run.Stdout.Trim().Split('\n')[^1]).RootElement;

            var create = result.GetProperty("create");
            Assert.Equal("echo: plain", create.GetProperty("text").GetString());
            Assert.Equal("claude-sonnet-4-5-20250929", create.GetProperty("model").GetString());
            Assert.Equal("end_turn", create.GetProperty("stop_reason").GetString());
            Assert.Equal(2, create.GetProperty("usage").GetProperty("output_tokens").GetInt32());
            Assert.Equal("USD", create.GetProperty("billing_cost").GetProperty("currency").GetString());
            Assert.Equal(JsonValueKind.Object, create.GetProperty("environment_impact").ValueKind);

            var stream = result.GetProperty("stream");
            Assert.Equal("echo: streamed", stream.GetProperty("text").GetString());
            Assert.Equal("echo: streamed", stream.GetProperty("final_text").GetString());
            Assert.Equal("end_turn", stream.GetProperty("stop_reason").GetString());
            Assert.True(stream.GetProperty("usage").GetProperty("input_tokens").GetInt32() > 0);
            var events = stream.GetProperty("events").EnumerateArray().Select(e => e.GetString()).ToList();
            Assert.Equal("message_start", events[0]);
            Assert.Equal("message_stop", events[^1]);
            Assert.Equal("message_delta", events[^2]);
            Assert.Equal("USD", stream.GetProperty("billing_cost").GetProperty("currency").GetString());
            Assert.Equal(JsonValueKind.Object, stream.GetProperty("environment_impact").ValueKind);

            Assert.InRange(result.GetProperty("count").GetProperty("input_tokens").GetInt32(), 5, 40);

            var tool = result.GetProperty("tool");
            Assert.Equal("tool_use", tool.GetProperty("stop_reason").GetString());
            Assert.Equal("get_weather", tool.GetProperty("name").GetString());
            Assert.Equal("Paris", tool.GetProperty("input").GetProperty("location").GetString());
            Assert.Equal("It is sunny.", tool.GetProperty("answer").GetString());
            var toolMessage = s.Upstream.Requests.Single(r => r.HasToolMessage()).ToolMessages().Single();
            Assert.Equal(tool.GetProperty("id").GetString(), toolMessage.GetProperty("tool_call_id").GetString());
            Assert.Equal("sunny, 18 degrees", ScenarioExtensions.ContentText(toolMessage));

            var error = result.GetProperty("error");
            Assert.True(error.GetProperty("thrown").GetBoolean());
            Assert.True(error.GetProperty("authentication").GetBoolean(), error.ToString());
            Assert.Equal(401, error.GetProperty("status").GetInt32());
            Assert.Equal("authentication_error", error.GetProperty("type").GetString());
            Assert.Contains("invalid API key", error.GetProperty("message").GetString(), StringComparison.Ordinal);

            Assert.Equal(4, s.Upstream.Requests.Count);
            Assert.All(s.Upstream.Requests, r => Assert.Equal("secondary-model", r.Model()));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
