using System.Text.Json;
using Melious.Gateway.Protocol;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Search;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// The web search loop (docs/web-search.md): Anthropic's <c>web_search</c> server tool served through an
/// OpenAI-compatible upstream. The model gets a <c>web_search(query)</c> function; each round's calls become
/// <c>server_tool_use</c> blocks, the gateway searches (or answers <c>unavailable</c> without a provider, and
/// <c>max_uses_exceeded</c> past the limit), writes <c>web_search_tool_result</c> blocks, and sends the results
/// back upstream as tool messages until the model answers without searching, calls a client tool, or the round
/// limit is reached (the last round is offered no search tool). The client sees one message.
/// </summary>
public sealed partial class OpenAIForwarder
{
    /// <summary>What the loop needs from the request: the search tool's limits and the first upstream request.</summary>
    internal sealed record SearchPlan(ToolDefinition Tool, ChatCompletionRequest Request, int MaxUses);

    /// <summary>Offers the <c>web_search</c> function when the request has the server tool; null otherwise.</summary>
    private SearchPlan? PlanSearch(MessagesRequest request, TranslatedRequest translated)
    {
        if (WebSearchTranslation.Find(request.Tools) is not { } tool || request.ToolChoice?.Type == "none")
        {
            return null;
        }

        translated.ToolNames.ToUpstream(WebSearchTranslation.ToolName);
        var tools = new List<ChatTool>(translated.Request.Tools ?? []) { WebSearchTranslation.Tool };
        var chat = translated.Request with
        {
            Tools = tools,
            ToolChoice = translated.Request.ToolChoice
                ?? (request.ToolChoice?.Type == "tool" ? ChatToolChoice.Function(WebSearchTranslation.ToolName) : null),
        };
        var maxUses = Math.Clamp(tool.MaxUses ?? search.MaxUses, 1, search.MaxUses);
        return new SearchPlan(tool, chat, maxUses);
    }

    private async Task RunSearchLoopAsync(RequestContext context, PreparedCall call, ModelEntry model, UsageRecorder recorder, HttpResponseMessage first, CancellationTokenSource upstreamCts, SearchPlan plan)
    {
        var http = context.Http;
        var cancellationToken = http.RequestAborted;
        var start = new TokenUsage(call.Estimate, 0, 0, 0, 0);
        StreamingSession? session = null;
        IdleDeadline? idle = null;
        MessageAggregator? aggregator = null;
        try
        {
            IMessageEventSink sink;
            IReadObserver observer;
            Func<bool> clientGone;
            if (call.Stream)
            {
                session = new StreamingSession(http, call.RequestedModel, upstreamCts, _streaming.IdleTimeout, _streaming.PingInterval, time);
                await session.StartAsync(cancellationToken);
                sink = session.Writer;
                observer = session;
                var current = session;
                clientGone = () => current.ClientGone;
            }
            else
            {
                aggregator = new MessageAggregator();
                idle = new IdleDeadline(upstreamCts, _streaming.IdleTimeout, time);
                sink = aggregator;
                observer = idle;
                clientGone = static () => false;
            }

            sink.MessageStart(Ids.NewMessageId(), start);
            var outcome = await LoopAsync(context, call, model, recorder, first, upstreamCts, plan, sink, observer, clientGone);
            if (outcome && aggregator is not null)
            {
                recorder.Status = 200;
                await WriteJsonAsync(http, aggregator.Build(call.RequestedModel));
            }
            else if (aggregator is not null && !recorder.Cancelled)
            {
                var (type, message) = aggregator.Failure ?? ("api_error", "the upstream response ended unexpectedly");
                recorder.Status = StatusFor(type);
                await ErrorWriter.WriteAsync(http, new GatewayError(recorder.Status, type, message));
            }
            else if (session is not null && !recorder.Cancelled)
            {
                recorder.Status = 200;
            }
        }
        finally
        {
            idle?.Dispose();
            if (session is not null)
            {
                await session.DisposeAsync();
            }
        }
    }

    private async Task<bool> LoopAsync(
        RequestContext context,
        PreparedCall call,
        ModelEntry model,
        UsageRecorder recorder,
        HttpResponseMessage first,
        CancellationTokenSource upstreamCts,
        SearchPlan plan,
        IMessageEventSink sink,
        IReadObserver observer,
        Func<bool> clientGone)
    {
        var cancellationToken = context.Http.RequestAborted;
        var relay = new WebSearchRelay(sink);
        var messages = new List<ChatMessage>(plan.Request.Messages);
        var maxRounds = plan.MaxUses + 2;
        var total = default(TokenUsage);
        var searches = 0;
        var uses = 0;
        var response = first;
        for (var round = 1; ; round++)
        {
            relay.BeginRound();
            var translator = new OpenAIStreamTranslator(relay, call.ToolNames, call.StopSequences, call.Upstream, ReasoningModes.ModeOf(model));
            bool completed;
            using (response)
            {
                completed = await PumpAsync(response, observer, translator, relay, recorder, model, call.Estimate, upstreamCts, cancellationToken, clientGone);
            }

            total = Add(total, recorder.Tokens);
            recorder.Tokens = total;
            recorder.WebSearchRequests = searches;
            recorder.RoundEnded();
            if (!completed)
            {
                return false;
            }

            // The round's searches: run them with the gate released (pings keep the client's connection alive).
            await observer.BeforeWaitAsync();
            var calls = new List<ChatToolCall>(relay.Searches.Count);
            var results = new List<(string Id, string Text, IReadOnlyList<WebSearchResultItem>? Items, string? Error, IReadOnlyList<WebSearchHit>? Hits)>(relay.Searches.Count);
            foreach (var pending in relay.Searches)
            {
                var input = ParseInput(pending.Input.WrittenSpan);
                var query = WebSearchTranslation.QueryOf(input);
                calls.Add(new ChatToolCall(pending.Id, new ChatFunctionCall(WebSearchTranslation.ToolName, input)));
                WebSearchOutcome outcome;
                if (uses >= plan.MaxUses)
                {
                    outcome = WebSearchOutcome.Error(WebSearchErrors.MaxUsesExceeded);
                }
                else
                {
                    uses++;
                    outcome = await search.SearchAsync(QueryFor(plan.Tool, query), cancellationToken);
                    if (!outcome.IsError)
                    {
                        searches++;
                    }
                }

                if (outcome.IsError)
                {
                    results.Add((pending.Id, WebSearchTranslation.ErrorText(query, outcome.ErrorCode!), null, outcome.ErrorCode, null));
                }
                else
                {
                    var items = outcome.Hits!.Select(h => new WebSearchResultItem(h.Url, h.Title, h.PageAge, search.Signer.Seal(h))).ToList();
                    results.Add((pending.Id, WebSearchTranslation.ResultText(query, outcome.Hits!), items, null, outcome.Hits));
                }
            }

            await observer.AfterWaitAsync();
            foreach (var (id, _, items, errorCode, hits) in results)
            {
                relay.WriteResult(id, items, errorCode, hits);
            }

            recorder.WebSearchRequests = searches;
            var final = relay.Searches.Count == 0 || relay.SawClientToolUse || round >= maxRounds || clientGone();
            if (final)
            {
                if (clientGone())
                {
                    recorder.Cancelled = true;
                    recorder.Status = 499;
                    return false;
                }

                // A last round that still searched (against instructions) ends the turn; a client tool call keeps tool_use.
                var stop = relay.Searches.Count > 0 && !relay.SawClientToolUse ? "end_turn" : relay.StopReason ?? "end_turn";
                var price = model.Prices.WebSearchPerRequest ?? search.PricePerSearch;
                var (cost, energy) = calculator.Compute(model, total, recorder.UpstreamSeconds);
                cost = cost with { WebSearch = searches * price };
                recorder.Cost = cost;
                recorder.Energy = energy;
                recorder.StopReason = stop;
                sink.ServerToolUse(searches);
                sink.MessageDelta(stop, relay.StopSequence, total, cost.ToWire(), energy.ToWire());
                sink.MessageStop();
                return true;
            }

            // Next round: the model's turn (text, reasoning, search calls) and the results, as OpenAI messages.
            var text = relay.Text;
            var reasoning = relay.Reasoning;
            messages.Add(new ChatMessage
            {
                Role = "assistant",
                Content = string.IsNullOrEmpty(text) ? null : new ChatContent(text),
                ToolCalls = calls,
                ReasoningContent = string.IsNullOrEmpty(reasoning) ? null : reasoning,
            });
            foreach (var (id, resultText, _, _, _) in results)
            {
                messages.Add(new ChatMessage { Role = "tool", ToolCallId = id, Content = new ChatContent(resultText) });
            }

            var last = round + 1 >= maxRounds;
            var request = plan.Request with
            {
                Messages = [.. messages],
                Tools = last ? WithoutSearch(plan.Request.Tools) : plan.Request.Tools,
                ToolChoice = last ? null : plan.Request.ToolChoice is { Mode: "function" } ? null : plan.Request.ToolChoice,
            };
            if (request.Tools is null)
            {
                request = request with { ToolChoice = null, ParallelToolCalls = null };
            }

            await observer.BeforeWaitAsync();
            var next = await SendNextAsync(request, call, model, recorder.Endpoint, upstreamCts, observer);
            await observer.AfterWaitAsync();
            if (cancellationToken.IsCancellationRequested || clientGone())
            {
                // The next round answered just as the client left: end its attempt too (in-flight count, span).
                next.Response?.Dispose();
                next.Lease?.Dispose();
                recorder.Cancelled = true;
                recorder.Status = 499;
                return false;
            }

            if (next.Error is { } error)
            {
                sink.Error(error.Type, error.Message);
                recorder.ErrorType = error.Type;
                if (!call.Stream)
                {
                    recorder.Status = error.Status;
                }

                return false;
            }

            // The round's attempt becomes the request's upstream span and outstanding-request count.
            recorder.Lease?.Dispose();
            recorder.Lease = next.Lease;
            recorder.Endpoint = next.Endpoint ?? recorder.Endpoint;
            response = next.Response!;
        }
    }

    private async Task<UpstreamResult> SendNextAsync(ChatCompletionRequest request, PreparedCall call, ModelEntry model, UpstreamEndpoint? served, CancellationTokenSource upstreamCts, IReadObserver observer)
    {
        using var payload = new PooledBuffer(32 * 1024);
        using (var writer = new Utf8JsonWriter(payload, WireJson.WriterOptions))
        {
            JsonSerializer.Serialize(writer, request, OpenAIJsonContext.Default.ChatCompletionRequest);
        }

        // The idle deadline also covers the wait for the next round's headers.
        observer.ReadStarting();
        // Later rounds go to the endpoint that served the first while it is in the pool (its prefix cache holds the
        // conversation so far); the pool picks (and fails over) as usual otherwise.
        var endpoints = served is not null && model.Pool.Contains(served) ? [served] : model.Pool;
        try
        {
            return await upstream.SendAsync(e => CreateRequest(new Uri(e.BaseUrl + "/chat/completions"), payload, e.ApiKey), endpoints, affinityKey: null, call.Upstream, upstreamCts.Token);
        }
        catch (OperationCanceledException)
        {
            return new UpstreamResult(null, new GatewayError(504, "timeout_error", "the upstream sent no response in time"), 1);
        }
    }

    private static List<ChatTool>? WithoutSearch(List<ChatTool>? tools)
    {
        var kept = tools?.Where(t => t.Function.Name != WebSearchTranslation.ToolName).ToList();
        return kept is { Count: > 0 } ? kept : null;
    }

    private WebSearchQuery QueryFor(ToolDefinition tool, string? query) =>
        new(query ?? "", tool.AllowedDomains, tool.BlockedDomains, tool.UserLocation?.Country, search.MaxResults);

    private static JsonElement ParseInput(ReadOnlySpan<byte> escaped)
    {
        var text = MessageAggregator.Unescape(escaped);
        try
        {
            using var document = JsonDocument.Parse(string.IsNullOrWhiteSpace(text) ? "{}" : text);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                return document.RootElement.Clone();
            }
        }
        catch (JsonException)
        {
        }

        using var empty = JsonDocument.Parse("{}");
        return empty.RootElement.Clone();
    }

    private static TokenUsage Add(TokenUsage a, TokenUsage b) =>
        new(a.Input + b.Input, a.CacheRead + b.CacheRead, a.CacheWrite + b.CacheWrite, a.Output + b.Output, a.Reasoning + b.Reasoning);
}
