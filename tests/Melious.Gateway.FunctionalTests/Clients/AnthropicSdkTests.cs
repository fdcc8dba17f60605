using System.Net;
using System.Text.Json;
using Anthropic;
using Anthropic.Core;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>The official Anthropic .NET SDK (package <c>Anthropic</c>) against the real gateway.</summary>
public sealed class AnthropicSdkTests(AzuriteFixture azurite)
{
    private const string Sonnet = "claude-sonnet-4-5-20250929";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Create_NonStreaming_ReturnsTheTranslatedMessage(bool bearer)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["Hello", " from", " upstream"], prompt: 321));
        using var client = Client(s, bearer);

        var message = await client.Messages.Create(Params("Say hello"), Ct);

        Assert.StartsWith("msg_", message.ID, StringComparison.Ordinal);
        Assert.Equal(Sonnet, message.Model.Raw());
        Assert.Equal("Hello from upstream", Text(message));
        Assert.Equal(StopReason.EndTurn, message.StopReason!.Value());
        Assert.Equal(3, message.Usage.OutputTokens);
        Assert.True(message.Usage.InputTokens > 0);
        Assert.Equal("secondary-model", s.Upstream.Last.Model());
        Assert.Equal("Say hello", s.Upstream.Last.Json.GetProperty("messages")[0].GetProperty("content").ToString());
    }

    [Fact]
    public async Task CreateStreaming_EventsComeInOrder_AndTextAccumulates()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["One", ", two", ", three."]));
        using var client = Client(s);

        var types = new List<string>();
        var text = "";
        await foreach (var e in client.Messages.CreateStreaming(Params("Count"), Ct))
        {
            e.Validate();
            types.Add(e.Json.GetProperty("type").GetString()!);
            if (e.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var textDelta))
            {
                text += textDelta.Text;
            }
        }

        Assert.Equal("One, two, three.", text);
        var collapsed = types.Where((t, i) => i == 0 || t != types[i - 1]).ToList();
        Assert.Equal(["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], collapsed);
        Assert.Equal(3, types.Count(t => t == "content_block_delta"));

        // The SDK's own accumulator builds the same message.
        var aggregated = await client.Messages.CreateStreaming(Params("Count"), Ct).Aggregate();
        Assert.Equal("One, two, three.", Text(aggregated));
        Assert.Equal(Sonnet, aggregated.Model.Raw());
        Assert.Equal(StopReason.EndTurn, aggregated.StopReason!.Value());
        Assert.All(s.Upstream.Requests, r => Assert.True(r.Json.GetProperty("stream").GetBoolean()));
    }

    [Fact]
    public async Task BetaStreaming_OnTheBetaPath_LikeClaudeCode()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["beta", " ok"]));
        using var client = Client(s);
        var raw = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(
            """{"model":"claude-opus-4-8","max_tokens":64000,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"adaptive"},"output_config":{"effort":"high"},"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}}""")!;
        var parameters = Anthropic.Models.Beta.Messages.MessageCreateParams.FromRawUnchecked(new Dictionary<string, JsonElement>(), new Dictionary<string, JsonElement>(), raw);

        var message = await client.Beta.Messages.CreateStreaming(parameters, Ct).Aggregate();

        Assert.Equal("beta ok", string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : "")));
        Assert.Equal("claude-opus-4-8", message.Model.Raw());
        Assert.Equal("main-model", s.Upstream.Last.Model());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ToolUse_RoundTrip_ResultReachesTheUpstreamAsAToolMessage(bool stream)
    {
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
            request.HasToolMessage()
                ? Sse.WriteAsync(context, Sse.TextAnswer(["It is ", "18 °C in Paris."], prompt: 400))
                : Sse.WriteAsync(context,
                [
                    Sse.Role(),
                    Sse.Content("Let me check."),
                    Sse.ToolCall(0, "call_abc", "get_weather", ""),
                    Sse.ToolCall(0, null, null, "{\"locat"),
                    Sse.ToolCall(0, null, null, "ion\": \"Paris\", \"unit\": \"c\"}"),
                    Sse.Finish("tool_calls"),
                    Sse.Usage(300, 20),
                ]));
        using var client = Client(s);
        var tools = new List<ToolUnion>
        {
            new Tool
            {
                Name = "get_weather",
                Description = "Current weather for a city",
                InputSchema = new InputSchema
                {
                    Properties = new Dictionary<string, JsonElement>
                    {
                        ["location"] = JsonSerializer.SerializeToElement(new { type = "string" }),
                        ["unit"] = JsonSerializer.SerializeToElement(new { type = "string", @enum = new[] { "c", "f" } }),
                    },
                    Required = ["location"],
                },
            },
        };
        var question = new UserMessageParam("What's the weather in Paris?");
        var first = await SendAsync(client, new MessageCreateParams { Model = Sonnet, MaxTokens = 1024, Messages = [question], Tools = tools }, stream);

        Assert.Equal(StopReason.ToolUse, first.StopReason!.Value());
        var toolUse = first.Content.Select(b => b.TryPickToolUse(out var t) ? t : null).Single(t => t is not null)!;
        Assert.Equal("get_weather", toolUse.Name);
        Assert.Equal("Paris", toolUse.Input["location"].GetString());
        Assert.Equal("c", toolUse.Input["unit"].GetString());
        Assert.Matches("^toolu_[A-Za-z0-9_-]+$", toolUse.ID);
        Assert.Equal("Let me check.", Text(first));

        var assistant = new AssistantMessageParam(new List<ContentBlockParam>
        {
            new TextBlockParam("Let me check."),
            new ToolUseBlockParam { ID = toolUse.ID, Name = toolUse.Name, Input = toolUse.Input },
        });
        var result = new UserMessageParam(new List<ContentBlockParam> { new ToolResultBlockParam(toolUse.ID) { Content = "18 degrees, sunny" } });
        var second = await SendAsync(client, new MessageCreateParams { Model = Sonnet, MaxTokens = 1024, Messages = [question, assistant, result], Tools = tools }, stream);

        Assert.Equal("It is 18 °C in Paris.", Text(second));
        Assert.Equal(StopReason.EndTurn, second.StopReason!.Value());
        Assert.Equal(2, s.Upstream.Requests.Count);
        var upstream = s.Upstream.Last;
        var call = upstream.Json.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "assistant").GetProperty("tool_calls").EnumerateArray().Single();
        Assert.Equal(toolUse.ID, call.GetProperty("id").GetString());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("Paris", JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("location").GetString());
        var tool = upstream.ToolMessages().Single();
        Assert.Equal(toolUse.ID, tool.GetProperty("tool_call_id").GetString());
        Assert.Equal("18 degrees, sunny", ScenarioExtensions.ContentText(tool));
        Assert.Equal("get_weather", upstream.Json.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ThinkingTextAndParallelTools_ParseIntoTypedBlocks(bool stream)
    {
        await using var s = await Scenario.StartAsync(azurite,
            Sse.Role(),
            Sse.Reasoning("Two files; "),
            Sse.Reasoning("read both."),
            Sse.Content("Reading them."),
            Sse.ToolCall(0, "call_a", "Read", "{\"file_path\": \"/tmp/a.txt\"}"),
            Sse.ToolCall(1, "call_b", "Read", "{\"file_pa"),
            Sse.ToolCall(1, null, null, "th\": \"/tmp/b.txt\"}"),
            Sse.Finish("tool_calls"),
            Sse.Usage(900, 60, cached: 512, reasoning: 8));
        using var client = Client(s);

        var message = await SendAsync(client, Params("read a and b"), stream);

        Assert.Equal(4, message.Content.Count);
        Assert.True(message.Content[0].TryPickThinking(out var thinking));
        Assert.Equal("Two files; read both.", thinking.Thinking);
        Assert.False(string.IsNullOrEmpty(thinking.Signature));
        Assert.True(message.Content[1].TryPickText(out var text));
        Assert.Equal("Reading them.", text.Text);
        var paths = message.Content.Skip(2).Select(b => b.TryPickToolUse(out var t) ? t.Input["file_path"].GetString() : null).ToList();
        Assert.Equal(["/tmp/a.txt", "/tmp/b.txt"], paths);
        Assert.Equal(StopReason.ToolUse, message.StopReason!.Value());
        Assert.Equal(512, message.Usage.CacheReadInputTokens);
        Assert.Equal(60, message.Usage.OutputTokens);
    }

    [Fact]
    public async Task UpstreamBreaksMidStream_TheSdkSurfacesTheErrorEvent()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteAsync(context, [Sse.Role(), Sse.Content("partial")], done: false));
        using var client = Client(s);

        var deltas = new List<string>();
        var error = await Assert.ThrowsAnyAsync<AnthropicException>(async () =>
        {
            await foreach (var e in client.Messages.CreateStreaming(Params("hi"), Ct))
            {
                if (e.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var t))
                {
                    deltas.Add(t.Text);
                }
            }
        });

        Assert.Equal(["partial"], deltas);
        Assert.IsType<AnthropicSseException>(error, exactMatch: false);
        Assert.Contains("api_error", ((AnthropicServiceException)error).Body.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_ListAndRetrieve()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        using var client = Client(s);

        var page = await client.Models.List(new Anthropic.Models.Models.ModelListParams { Limit = 100 }, Ct);
        Assert.NotEmpty(page.Items);
        Assert.Contains(page.Items, m => m.ID.StartsWith("claude", StringComparison.Ordinal));
        Assert.All(page.Items, m => Assert.False(string.IsNullOrEmpty(m.DisplayName)));
        Assert.All(page.Items, m => Assert.True(m.CreatedAt.Year >= 2024));

        var model = await client.Models.Retrieve("claude-sonnet-4-5-20250929", new Anthropic.Models.Models.ModelRetrieveParams(), Ct);
        Assert.Equal("claude-sonnet-4-5-20250929", model.ID);
        await Assert.ThrowsAsync<AnthropicNotFoundException>(() => client.Models.Retrieve("no-such-model-anywhere", new Anthropic.Models.Models.ModelRetrieveParams(), Ct));
        Assert.Empty(s.Upstream.Requests);
    }

    /// <summary>
    /// With <c>ResponseValidation = true</c> the SDK checks every required field of the current API shape. Text
    /// messages pass (see <see cref="ExtraUsageFields_AreAcceptedByTheSdk_AndReachableAsRawJson"/>); these do not yet.
    /// </summary>
    [Fact]
    public async Task StrictValidation_ToolUse()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.Role(), Sse.ToolCall(0, "call_a", "Read", "{\"file_path\": \"/tmp/a.txt\"}"), Sse.Finish("tool_calls"), Sse.Usage(90, 6));
        using var client = new AnthropicClient(new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = s.Key, MaxRetries = 0, ResponseValidation = true });

        var message = await client.Messages.Create(Params("read a"), Ct);
        message.Validate();
        var streamed = await client.Messages.CreateStreaming(Params("read a"), Ct).Aggregate();
        streamed.Validate();
        Assert.True(message.Content.Single().TryPickToolUse(out var toolUse));
        Assert.Equal("direct", toolUse.Caller.Json.GetProperty("type").GetString());
    }

    [Fact]
    public async Task StrictValidation_Models()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        using var client = new AnthropicClient(new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = s.Key, MaxRetries = 0, ResponseValidation = true });

        var page = await client.Models.List(new Anthropic.Models.Models.ModelListParams { Limit = 100 }, Ct);
        page.Validate();
        var model = await client.Models.Retrieve("claude-sonnet-4-5-20250929", new Anthropic.Models.Models.ModelRetrieveParams(), Ct);
        model.Validate();
    }

    [Fact]
    public async Task CountTokens_IsAnsweredLocally_AndGrowsWithTheRequest()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        using var client = Client(s);
        var small = await client.Messages.CountTokens(new MessageCountTokensParams { Model = Sonnet, Messages = [new UserMessageParam("hi")] }, Ct);
        var large = await client.Messages.CountTokens(new MessageCountTokensParams
        {
            Model = Sonnet,
            System = "You are a meticulous assistant. " + string.Join(' ', Enumerable.Repeat("Always answer with care and precision.", 50)),
            Messages = [new UserMessageParam("Please summarise the following text. " + string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 100)))],
            Tools = [new Tool { Name = "Read", Description = "Reads a file from disk", InputSchema = new InputSchema { Properties = new Dictionary<string, JsonElement> { ["file_path"] = JsonSerializer.SerializeToElement(new { type = "string" }) }, Required = ["file_path"] } }],
        }, Ct);

        Assert.InRange(small.InputTokens, 1, 50);
        Assert.InRange(large.InputTokens, 1000, 2000);
        Assert.Empty(s.Upstream.Requests);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task InvalidKey_ThrowsTheSdkUnauthorizedException_WithTheGatewayMessage(bool stream)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        using var client = new AnthropicClient(new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = "sk-mel-notarealkeynotarealkeynotarealkey00000xxxxx", MaxRetries = 0 });

        var error = await Assert.ThrowsAsync<AnthropicUnauthorizedException>(() => SendAsync(client, Params("hi"), stream));

        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("invalid API key", error.Message, StringComparison.Ordinal);
        Assert.Equal("authentication_error", JsonDocument.Parse(error.ResponseBody).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task InvalidRequest_ThrowsTheSdkBadRequestException()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        using var client = Client(s);
        var raw = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>("""{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[]}""")!;

        var error = await Assert.ThrowsAsync<AnthropicBadRequestException>(() =>
            client.Messages.Create(MessageCreateParams.FromRawUnchecked(new Dictionary<string, JsonElement>(), new Dictionary<string, JsonElement>(), raw), Ct));

        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.Equal("invalid_request_error", JsonDocument.Parse(error.ResponseBody).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task UpstreamOverloaded_ThrowsARetryableSdkException()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.ErrorAsync(context, 503, "the model is loading"));
        using var client = Client(s);

        var error = await Assert.ThrowsAnyAsync<Anthropic5xxException>(() => client.Messages.Create(Params("hi"), Ct));

        Assert.True((int)error.StatusCode >= 500, error.ToString());
        Assert.False(string.IsNullOrEmpty(error.Message));
    }

    /// <summary>
    /// The usage issue: the gateway adds <c>billing_cost</c> and <c>environment_impact</c> at the top level of the
    /// message (non-streaming) and of the final <c>message_delta</c> (streaming). The SDK, with response validation
    /// on, must accept them, and they must be reachable through its raw JSON.
    /// </summary>
    [Fact]
    public async Task ExtraUsageFields_AreAcceptedByTheSdk_AndReachableAsRawJson()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["priced"], prompt: 1200));
        using var client = new AnthropicClient(new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = s.Key, MaxRetries = 0, ResponseValidation = true });

        // Non-streaming: typed access works, the extra fields sit in RawData.
        var message = await client.Messages.Create(Params("price this"), Ct);
        message.Validate();
        Assert.Equal("priced", Text(message));
        AssertBillingCost(message.RawData["billing_cost"]);
        AssertEnvironmentImpact(message.RawData["environment_impact"]);

        // The raw HTTP response carries them too.
        using (var raw = await client.WithRawResponse.Messages.Create(Params("price this"), Ct))
        {
            var body = JsonDocument.Parse(await raw.ReadAsString(Ct)).RootElement;
            AssertBillingCost(body.GetProperty("billing_cost"));
            AssertEnvironmentImpact(body.GetProperty("environment_impact"));
        }

        // Streaming: the final message_delta carries them; the event parses, validates and exposes them.
        RawMessageDeltaEvent? final = null;
        var events = new List<RawMessageStreamEvent>();
        await foreach (var e in client.Messages.CreateStreaming(Params("price this"), Ct))
        {
            e.Validate();
            events.Add(e);
            if (e.TryPickDelta(out var delta))
            {
                final = delta;
            }
        }

        Assert.NotNull(final);
        final.Validate();
        Assert.Equal(StopReason.EndTurn, final.Delta.StopReason!.Value());
        Assert.Equal(1, final.Usage.OutputTokens);
        AssertBillingCost(final.RawData["billing_cost"]);
        AssertEnvironmentImpact(final.RawData["environment_impact"]);
        var json = events.Single(e => e.Json.GetProperty("type").GetString() == "message_delta").Json;
        AssertBillingCost(json.GetProperty("billing_cost"));
        AssertEnvironmentImpact(json.GetProperty("environment_impact"));

        // …and the SDK's accumulator is not disturbed by them.
        var aggregated = await client.Messages.CreateStreaming(Params("price this"), Ct).Aggregate();
        aggregated.Validate();
        Assert.Equal("priced", Text(aggregated));
    }

    private static void AssertBillingCost(JsonElement cost)
    {
        Assert.Equal(JsonValueKind.Object, cost.ValueKind);
        Assert.Equal("USD", cost.GetProperty("currency").GetString());
        Assert.True(decimal.TryParse(cost.GetProperty("amount").GetString(), System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out _), cost.ToString());
    }

    private static void AssertEnvironmentImpact(JsonElement impact)
    {
        Assert.Equal(JsonValueKind.Object, impact.ValueKind);
        Assert.False(string.IsNullOrEmpty(impact.GetProperty("region").GetString()));
        Assert.False(string.IsNullOrEmpty(impact.GetProperty("method").GetString()));
    }

    private static AnthropicClient Client(Scenario s, bool bearer = false) => new(bearer
        ? new ClientOptions { BaseUrl = s.Gateway.BaseUrl, AuthToken = s.Key, MaxRetries = 0 }
        : new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = s.Key, MaxRetries = 0 });

    private static MessageCreateParams Params(string prompt) => new() { Model = Sonnet, MaxTokens = 256, Messages = [new UserMessageParam(prompt)] };

    private static async Task<Message> SendAsync(AnthropicClient client, MessageCreateParams parameters, bool stream) =>
        stream ? await client.Messages.CreateStreaming(parameters, Ct).Aggregate() : await client.Messages.Create(parameters, Ct);

    private static string Text(Message message) => string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : ""));
}
