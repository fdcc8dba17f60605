using System.Net;
using System.Text.Json;
using Anthropic;
using Anthropic.Core;
using Anthropic.Models.Messages;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// An Anthropic-native upstream (or a proxy in front of one) that answers a <c>stream: true</c> request with one
/// <c>application/json</c> message: the client still gets a valid Anthropic stream under its own model name, billed
/// from the message's usage; an error body that comes with a 200 becomes the matching HTTP error.
/// </summary>
public sealed class AnthropicJsonAnswerTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Message = """
        {"id":"msg_json1","type":"message","role":"assistant","model":"secondary-model","content":[
          {"type":"thinking","thinking":"The user wants the file.","signature":"EqQBCkYIBxgCKkB"},
          {"type":"redacted_thinking","data":"EmwKAhgBEgy3va"},
          {"type":"text","text":"Reading it now."},
          {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"Read","input":{"file_path":"/tmp/a.txt","limit":20},"caller":{"type":"direct"}}
        ],"stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":1200,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,"output_tokens":87,"service_tier":"standard"},
        "vendor_field":{"kept":true}}
        """;

    private static Task Answer(HttpContext context, string body) => Sse.WriteRawAsync(context, body, "application/json");

    [Fact]
    public async Task StreamRequest_AnsweredWithAJsonMessage_IsStreamedAndBilledFromItsUsage()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Answer(context, Message), anthropicUpstream: true);
        var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var requestId = response.Headers.GetValues("request-id").Single();
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);
        Assert.True(s.Upstream.Last.Json.GetProperty("stream").GetBoolean(), "the upstream was asked to stream");

        var start = events[0].Data.GetProperty("message");
        Assert.Equal("claude-sonnet-4-5-20250929", start.GetProperty("model").GetString());
        Assert.Equal("msg_json1", start.GetProperty("id").GetString());
        Assert.Equal(0, start.GetProperty("content").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, start.GetProperty("stop_reason").ValueKind);
        Assert.Equal(1200, start.GetProperty("usage").GetProperty("input_tokens").GetInt64());
        Assert.True(start.GetProperty("vendor_field").GetProperty("kept").GetBoolean());

        var blocks = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block")).ToList();
        Assert.Equal(["thinking", "redacted_thinking", "text", "tool_use"], blocks.Select(b => b.GetProperty("type").GetString()));
        Assert.Equal("EmwKAhgBEgy3va", blocks[1].GetProperty("data").GetString());
        Assert.Equal("", blocks[2].GetProperty("text").GetString());
        Assert.Equal("toolu_01A09q90qw90lq917835lq9", blocks[3].GetProperty("id").GetString());
        Assert.Empty(blocks[3].GetProperty("input").EnumerateObject());

        string Deltas(string type, string field) => string.Concat(events
            .Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == type)
            .Select(e => e.Data.GetProperty("delta").GetProperty(field).GetString()));
        Assert.Equal("The user wants the file.", Deltas("thinking_delta", "thinking"));
        Assert.Equal("EqQBCkYIBxgCKkB", Deltas("signature_delta", "signature"));
        Assert.Equal("Reading it now.", SseEvents.Text(events));
        using (var input = JsonDocument.Parse(Deltas("input_json_delta", "partial_json")))
        {
            Assert.Equal("/tmp/a.txt", input.RootElement.GetProperty("file_path").GetString());
            Assert.Equal(20, input.RootElement.GetProperty("limit").GetInt32());
        }

        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(87, delta.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Assert.Equal(4000, delta.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt64());
        Assert.Equal(JsonValueKind.Object, delta.GetProperty("billing_cost").ValueKind);
        Assert.True(delta.TryGetProperty("environment_impact", out _));
        Assert.DoesNotContain("secondary-model", string.Join("", events.Select(e => e.Data.ToString())), StringComparison.Ordinal);

        // Billed from the message's usage, not from an estimate.
        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Any(e => e.RowKey == requestId), TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows, e => e.RowKey == requestId);
        Assert.Equal(1200, UsageTables.Long(row, "InputTokens"));
        Assert.Equal(4000, UsageTables.Long(row, "CacheReadTokens"));
        Assert.Equal(300, UsageTables.Long(row, "CacheWriteTokens"));
        Assert.Equal(87, UsageTables.Long(row, "OutputTokens"));
        Assert.False(row.GetBoolean("UsageEstimated"));
        Assert.True(row.GetBoolean("Stream"));
        Assert.Equal("tool_use", row.GetString("StopReason"));
        Assert.Equal(200, row.GetInt32("Status"));
    }

    [Fact]
    public async Task AnthropicSdkStream_OverAJsonAnswer_AggregatesToTheUpstreamMessage()
    {
        // The official .NET SDK validates every event and rebuilds the message from the stream.
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Answer(context, Message), anthropicUpstream: true);
        using var client = new AnthropicClient(new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = s.Key, MaxRetries = 0, ResponseValidation = true });
        var parameters = new MessageCreateParams { Model = "claude-sonnet-4-5-20250929", MaxTokens = 256, Messages = [new UserMessageParam("read a")] };

        var message = await client.Messages.CreateStreaming(parameters, Ct).Aggregate();
        message.Validate();

        Assert.Equal("claude-sonnet-4-5-20250929", message.Model.Raw());
        Assert.Equal(4, message.Content.Count);
        Assert.True(message.Content[0].TryPickThinking(out var thinking));
        Assert.Equal("The user wants the file.", thinking.Thinking);
        Assert.Equal("EqQBCkYIBxgCKkB", thinking.Signature);
        Assert.True(message.Content[1].TryPickRedactedThinking(out var redacted));
        Assert.Equal("EmwKAhgBEgy3va", redacted.Data);
        Assert.True(message.Content[2].TryPickText(out var text));
        Assert.Equal("Reading it now.", text.Text);
        Assert.True(message.Content[3].TryPickToolUse(out var toolUse));
        Assert.Equal("toolu_01A09q90qw90lq917835lq9", toolUse.ID);
        Assert.Equal("/tmp/a.txt", toolUse.Input["file_path"].GetString());
        Assert.Equal(20, toolUse.Input["limit"].GetInt32());
        Assert.Equal(StopReason.ToolUse, message.StopReason!.Value());
        Assert.Equal(87, message.Usage.OutputTokens);
        Assert.Equal(4000, message.Usage.CacheReadInputTokens);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ErrorBodyWith200_BecomesTheMatchingError(bool stream)
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) =>
            Answer(context, """{"type":"error","error":{"type":"overloaded_error","message":"secondary-model is overloaded"}}"""), anthropicUpstream: true);
        var response = await s.PostAsync(Scenario.Body(stream: stream));
        await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error", "claude-sonnet-4-5-20250929 is overloaded");

        // Nothing was generated: recorded as the error, with no tokens billed (not the prompt's estimate).
        var requestId = response.Headers.GetValues("request-id").Single();
        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Any(e => e.RowKey == requestId), TimeSpan.FromSeconds(30));
        var row = rows.Single(e => e.RowKey == requestId);
        Assert.Equal(529, row.GetInt32("Status"));
        Assert.Equal(0, UsageTables.Long(row, "InputTokens"));
        Assert.Equal(0, UsageTables.Long(row, "CostNanos"));
    }

    [Fact]
    public async Task OpenAIStyleErrorBodyWith200_MapsByItsCode()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) =>
            Answer(context, """{"error":{"message":"Rate limit reached for requests","type":"requests","code":429}}"""), anthropicUpstream: true);
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), HttpStatusCode.TooManyRequests, "rate_limit_error", "Rate limit reached");
    }

    [Fact]
    public async Task JsonThatIsNotAMessage_IsA502_NotAFakeEndTurn()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Answer(context, """{"status":"ok"}"""), anthropicUpstream: true);
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), HttpStatusCode.BadGateway, "api_error", "not a message");
    }
}
