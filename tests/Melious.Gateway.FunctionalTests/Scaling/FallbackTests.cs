using System.Net;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>Model fallbacks: before the first byte only, the client keeps its model name, billing names both.</summary>
public sealed class FallbackTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Overflow = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";

    /// <summary>One upstream serving every model; <paramref name="byModel"/> scripts the answer per upstream model id.</summary>
    private static async Task<Scenario> StartAsync(AzuriteFixture azurite, Func<string, HttpContext, Task> byModel, IDictionary<string, object?> mainModel, bool anthropicUpstream = false)
    {
        var s = await Scenario.StartAsync(azurite, (request, context) => byModel(request.Json.GetProperty("model").GetString()!, context), anthropicUpstream: anthropicUpstream);
        await s.Gateway.Services.GetRequiredService<ModelCatalogStore>().UpsertModelAsync("main-model", mainModel, Ct);
        await s.Gateway.Services.GetRequiredService<ModelCatalogStore>().UpsertModelAsync("backup-model", new Dictionary<string, object?>(), Ct);
        await s.Gateway.Services.GetRequiredService<ModelCatalogStore>().UpsertModelAsync("long-model", new Dictionary<string, object?> { ["ContextWindow"] = 1_000_000L }, Ct);
        await s.Gateway.RefreshCatalogAsync();
        return s;
    }

    private static async Task<TableEntityView> BillingRowAsync(Scenario s, string requestId)
    {
        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Any(e => e.RowKey == requestId), TimeSpan.FromSeconds(30));
        var row = rows.Single(e => e.RowKey == requestId);
        return new TableEntityView(row.GetString("RequestedModel"), row.GetString("UpstreamModel"), row.GetString("FallbackFrom"), row.GetInt32("Status"));
    }

    private sealed record TableEntityView(string RequestedModel, string UpstreamModel, string FallbackFrom, int? Status);

    private const string BackupMessage = """
        {"id":"msg_backup","type":"message","role":"assistant","model":"backup-model","content":[{"type":"text","text":"from backup"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":3}}
        """;

    // An answer with a 200 that is an error (a proxy in front of vLLM, an Anthropic-compatible server): the same
    // fallback as the status it stands for.
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task AnErrorBodyWith200_FallsBackAsItsStatusWould(bool stream, bool anthropicUpstream)
    {
        var overloaded = anthropicUpstream
            ? """{"type":"error","error":{"type":"overloaded_error","message":"main-model is overloaded"}}"""
            : """{"error":{"message":"main-model is overloaded","type":"server_error","code":503}}""";
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.WriteRawAsync(context, overloaded, "application/json")
            : anthropicUpstream ? Sse.WriteRawAsync(context, BackupMessage, "application/json") : Sse.WriteAsync(context, Sse.TextAnswer(["from ", "backup"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "backup-model", ["FallbackOn"] = "overloaded" },
            anthropicUpstream);

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1", stream: stream));
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("backup", text, StringComparison.Ordinal);
        Assert.DoesNotContain("overloaded", text, StringComparison.Ordinal);
        Assert.Equal(new[] { "main-model", "backup-model" }, s.Upstream.Requests.Select(r => r.Json.GetProperty("model").GetString()!).ToArray());
        var row = await BillingRowAsync(s, response.Headers.GetValues("request-id").Single());
        Assert.Equal(new TableEntityView("claude-opus-4-1", "backup-model", "main-model", 200), row);
    }

    // A 200 stream whose first event is the error (vLLM, SGLang, llama.cpp once their stream began): the same
    // fallback as the status it stands for, as nothing was sent to the client yet.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnErrorAsTheStreamsFirstEvent_FallsBackAsItsStatusWould(bool stream)
    {
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.WriteRawAsync(context, "data: {\"error\":{\"message\":\"main-model is overloaded\",\"type\":\"server_error\",\"code\":503}}\n\ndata: [DONE]\n\n")
            : Sse.WriteAsync(context, Sse.TextAnswer(["from ", "backup"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "backup-model", ["FallbackOn"] = "overloaded" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1", stream: stream));
        var text = await AnswerTextAsync(response, stream);
        Assert.Equal("from backup", text);
        Assert.Equal(new[] { "main-model", "backup-model" }, s.Upstream.Requests.Select(r => r.Json.GetProperty("model").GetString()!).ToArray());
        var row = await BillingRowAsync(s, response.Headers.GetValues("request-id").Single());
        Assert.Equal(new TableEntityView("claude-opus-4-1", "backup-model", "main-model", 200), row);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AContextLengthErrorAsTheStreamsFirstEvent_GoesToTheLongContextModel(bool stream)
    {
        const string Flat = """{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}""";
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.WriteRawAsync(context, $"data: {Flat}\n\n")
            : Sse.WriteAsync(context, Sse.TextAnswer(["long ", "context"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "long-model", ["FallbackOn"] = "context_overflow" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1", stream: stream));
        Assert.Equal("long context", await AnswerTextAsync(response, stream));
        Assert.Equal(new[] { "main-model", "long-model" }, s.Upstream.Requests.Select(r => r.Json.GetProperty("model").GetString()!).ToArray());
        var row = await BillingRowAsync(s, response.Headers.GetValues("request-id").Single());
        Assert.Equal(new TableEntityView("claude-opus-4-1", "long-model", "main-model", 200), row);
    }

    /// <summary>The text of a 200 answer: a stream of one message (its grammar checked), or a message.</summary>
    private static async Task<string> AnswerTextAsync(HttpResponseMessage response, bool stream)
    {
        if (response.StatusCode != HttpStatusCode.OK)
        {
            Assert.Fail($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
        }

        if (stream)
        {
            var events = await SseEvents.ReadAllAsync(response, Ct);
            SseEvents.AssertGrammar(events);
            return SseEvents.Text(events);
        }

        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        return json.RootElement.GetProperty("content")[0].GetProperty("text").GetString()!;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A429AfterRetries_IsServedByTheFallbackModel_UnderTheClientsName(bool stream)
    {
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.ErrorAsync(context, 429, "rate limited upstream", retryAfter: "60")
            : Sse.WriteAsync(context, Sse.TextAnswer(["from ", "backup"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "backup-model" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1", stream: stream));
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("backup", text, StringComparison.Ordinal);
        Assert.Contains("\"model\":\"claude-opus-4-1\"", text, StringComparison.Ordinal);
        Assert.DoesNotContain("backup-model", text, StringComparison.Ordinal);
        Assert.DoesNotContain("main-model", text, StringComparison.Ordinal);
        Assert.Equal(new[] { "main-model", "backup-model" }, s.Upstream.Requests.Select(r => r.Json.GetProperty("model").GetString()!).ToArray());

        var row = await BillingRowAsync(s, response.Headers.GetValues("request-id").Single());
        Assert.Equal(new TableEntityView("claude-opus-4-1", "backup-model", "main-model", 200), row);
    }

    [Fact]
    public async Task AContextOverflow_GoesToTheLongContextModel()
    {
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.ErrorAsync(context, 400, Overflow)
            : Sse.WriteAsync(context, Sse.TextAnswer(["long ", "context"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "long-model", ["FallbackOn"] = "context_overflow" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1"));
        var json = await s.JsonAsync(response);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("claude-opus-4-1", json.GetProperty("model").GetString());
        Assert.Equal("long-model", s.Upstream.Last.Json.GetProperty("model").GetString());
        var row = await BillingRowAsync(s, response.Headers.GetValues("request-id").Single());
        Assert.Equal("long-model", row.UpstreamModel);
        Assert.Equal("main-model", row.FallbackFrom);
    }

    [Fact]
    public async Task ATriggerNotConfigured_DoesNotFallBack()
    {
        await using var s = await StartAsync(azurite, (model, context) => model == "main-model"
            ? Sse.ErrorAsync(context, 429, "rate limited upstream", retryAfter: "60")
            : Sse.WriteAsync(context, Sse.TextAnswer(["backup"])),
            new Dictionary<string, object?> { ["Fallbacks"] = "long-model", ["FallbackOn"] = "context_overflow" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1"));
        Assert.Equal((HttpStatusCode)429, response.StatusCode);
        Assert.All(s.Upstream.Requests, r => Assert.Equal("main-model", r.Json.GetProperty("model").GetString()));
    }

    [Fact]
    public async Task AfterTheFirstByte_ThereIsNoFallback_ButAnErrorEvent()
    {
        await using var s = await StartAsync(azurite, async (model, context) =>
        {
            if (model != "main-model")
            {
                await Sse.WriteAsync(context, Sse.TextAnswer(["backup"]));
                return;
            }

            // The first bytes are out, then the stream just ends (no finish, no [DONE]).
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("partial ")], done: false);
        }, new Dictionary<string, object?> { ["Fallbacks"] = "backup-model" });

        using var response = await s.PostAsync(Scenario.Body(model: "claude-opus-4-1", stream: true));
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(text.Contains("partial", StringComparison.Ordinal), text);
        Assert.Contains("event: error", text, StringComparison.Ordinal);
        Assert.DoesNotContain("backup", text, StringComparison.Ordinal);
        Assert.All(s.Upstream.Requests, r => Assert.Equal("main-model", r.Json.GetProperty("model").GetString()));
    }
}
