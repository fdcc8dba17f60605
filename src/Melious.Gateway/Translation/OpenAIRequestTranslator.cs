using System.Globalization;
using System.Text;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Tokens;

namespace Melious.Gateway.Translation;

/// <summary>The upstream request plus what the response translation needs to undo.</summary>
internal sealed record TranslatedRequest(ChatCompletionRequest Request, ToolNameMap ToolNames, long MaxTokens)
{
    /// <summary>What <c>context_management</c> the gateway applied; null when the request had none it honours.</summary>
    public ContextManagementResponse? ContextManagement { get; init; }
}

/// <summary>
/// Anthropic Messages request → OpenAI Chat Completions request (protocol.md §C.1–C.2). Pure and deterministic:
/// the same request gives byte-identical upstream JSON (upstream prefix caches depend on it), which is why the
/// per-request billing-header system block is removed.
/// </summary>
internal static class OpenAIRequestTranslator
{
    public const string BillingHeaderPrefix = "x-anthropic-billing-header:";

    public static TranslatedRequest Translate(MessagesRequest request, ModelEntry model, long estimatedInputTokens, Search.SearchResultSigner? signer = null)
    {
        var names = new ToolNameMap();
        var flavor = Flavor.Of(model.Flavor);
        var maxTokens = ClampMaxTokens(request.MaxTokens ?? model.MaxOutputTokens, model, estimatedInputTokens);

        var messages = new List<ChatMessage>(request.Messages!.Count + 1);
        var system = new StringBuilder();
        AppendSystem(system, request.System);
        foreach (var message in request.Messages!)
        {
            if (message.Role == "system")
            {
                AppendSystem(system, message.Content);
            }
            else if (message.Content?.Blocks is { } blocks)
            {
                foreach (var block in blocks)
                {
                    if (block is MidConversationSystemBlock mid)
                    {
                        AppendSystem(system, mid.Content);
                    }
                }
            }
        }

        if (system.Length > 0)
        {
            messages.Add(new ChatMessage { Role = "system", Content = new ChatContent(system.ToString()) });
        }

        // context_management clear_thinking: only the last N assistant turns with thinking replay it.
        var keepThinking = ContextManagementRequest.ThinkingTurnsToKeep(request);
        var thinkingTurns = keepThinking is null ? 0 : request.Messages!.Count(m => m.Role == "assistant" && HasThinking(m.Content));
        var clearTurns = keepThinking is { } keep ? Math.Max(0, thinkingTurns - keep) : 0;
        long clearedTokens = 0;
        var seenThinking = 0;
        foreach (var message in request.Messages!)
        {
            switch (message.Role)
            {
                case "user":
                    AddUser(messages, message.Content!, model, names);
                    break;
                case "assistant" when WebSearchTranslation.HasServerBlocks(message.Content!):
                    WebSearchTranslation.AddAssistant(messages, message.Content!, (list, segment) => AddAssistant(list, segment, names, flavor), signer);
                    break;
                case "assistant":
                    var clear = false;
                    if (clearTurns > 0 && HasThinking(message.Content))
                    {
                        clear = seenThinking++ < clearTurns;
                        if (clear)
                        {
                            clearedTokens += (message.Content!.Blocks ?? []).OfType<ThinkingBlock>().Sum(b => (long)TokenEstimator.Count(b.Thinking));
                        }
                    }

                    AddAssistant(messages, message.Content!, names, flavor, clear);
                    break;
            }
        }

        var prefill = messages.Count > 0 && messages[^1].Role == "assistant" && messages[^1].ToolCalls is null;
        // With Anthropic's server-side tool search (which no open model can run) nothing would ever load a deferred
        // tool: they are all sent. Claude Code's ToolSearch is a client tool and loads them by tool_reference.
        var tools = request.Tools is { } all && all.Any(t => t.DeferLoading == true) && !all.Any(t => t.IsToolSearch)
            ? DeferredTools(all, request.Messages!, names)
            : TranslateTools(request.Tools, names);
        var (effort, enableThinking) = Reasoning(request, model);

        var chat = new ChatCompletionRequest
        {
            Model = model.Id,
            Messages = messages,
            Stream = true,
            StreamOptions = new StreamOptions(IncludeUsage: true),
            MaxTokens = flavor.UsesMaxCompletionTokens ? null : maxTokens,
            MaxCompletionTokens = flavor.UsesMaxCompletionTokens ? maxTokens : null,
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = flavor.SupportsTopK ? request.TopK : null,
            Stop = StopSequences(request.StopSequences, flavor),
            Tools = tools,
            ToolChoice = tools is null ? null : ToolChoiceFor(request.ToolChoice, names),
            ParallelToolCalls = tools is not null && request.ToolChoice?.DisableParallelToolUse == true && flavor.SupportsParallelToolCalls ? false : null,
            ReasoningEffort = flavor.SendsReasoningEffort ? effort : null,
            ChatTemplateKwargs = flavor.SendsTemplateKwargs && enableThinking is { } enable ? new ChatTemplateKwargs(enable) : null,
            ContinueFinalMessage = prefill && flavor.SupportsContinueFinalMessage ? true : null,
            AddGenerationPrompt = prefill && flavor.SupportsContinueFinalMessage ? false : null,
            ResponseFormat = OutputFormatOf(request) is { } format ? ResponseFormatFor(format) : null,
        };

        return new TranslatedRequest(chat, names, maxTokens)
        {
            ContextManagement = keepThinking is null ? null : new ContextManagementResponse(clearTurns > 0
                ? [new AppliedContextEdit(ContextManagementRequest.ClearThinking, clearTurns, clearedTokens)]
                : []),
        };
    }

    private static bool HasThinking(MessageContent? content) =>
        content?.Blocks is { } blocks && blocks.Any(b => b is ThinkingBlock { Thinking.Length: > 0 } or RedactedThinkingBlock);

    /// <summary>
    /// <c>min(requested, model max output, context window − estimated input − margin)</c>, never raised above the
    /// request. A prompt clearly over the window (by more than the estimate's error) is refused without an upstream call.
    /// </summary>
    internal static long ClampMaxTokens(long requested, ModelEntry model, long estimatedInput)
    {
        if (estimatedInput > model.ContextWindow + model.ContextWindow / 10)
        {
            throw new RequestTranslationException(string.Create(CultureInfo.InvariantCulture,
                $"prompt is too long: {estimatedInput} tokens > {model.ContextWindow} maximum"));
        }

        var margin = Math.Max(64, estimatedInput / 20);
        var room = model.ContextWindow - estimatedInput - margin;
        var clamped = Math.Min(requested, model.MaxOutputTokens);
        if (room < clamped)
        {
            // Keep the margin for the estimate's error; only when even that does not fit, offer what is left
            // (the upstream then decides, and a real overflow comes back as "prompt is too long").
            clamped = room >= 1 ? room : Math.Min(clamped, model.ContextWindow - estimatedInput);
        }

        return Math.Max(1, clamped);
    }

    /// <summary>
    /// True when every estimate up to <paramref name="inputUpperBound"/> gives the same <c>max_tokens</c>: the clamp
    /// only falls as the estimate grows, and at the bound it does not bite. The exact estimate can then wait.
    /// </summary>
    internal static bool ClampIgnores(long requested, ModelEntry model, long inputUpperBound) =>
        inputUpperBound <= model.ContextWindow + model.ContextWindow / 10
        && ClampMaxTokens(requested, model, inputUpperBound) == Math.Max(1, Math.Min(requested, model.MaxOutputTokens));

    private static void AppendSystem(StringBuilder system, MessageContent? content)
    {
        if (content is null)
        {
            return;
        }

        if (content.Text is { } text)
        {
            AppendSystemText(system, text);
            return;
        }

        foreach (var block in content.Blocks ?? [])
        {
            if (block is TextBlock { Text: { } blockText })
            {
                AppendSystemText(system, blockText);
            }
        }
    }

    private static void AppendSystemText(StringBuilder system, string text)
    {
        // Claude Code's first system block changes on every request (cch=…); it would defeat prefix caching.
        if (text.StartsWith(BillingHeaderPrefix, StringComparison.Ordinal))
        {
            var newline = text.IndexOf('\n');
            text = newline < 0 ? "" : text[(newline + 1)..];
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            return;
        }

        if (system.Length > 0)
        {
            system.Append("\n\n");
        }

        system.Append(text);
    }

    private static void AddUser(List<ChatMessage> messages, MessageContent content, ModelEntry model, ToolNameMap names)
    {
        if (content.Text is { } text)
        {
            if (!string.IsNullOrWhiteSpace(text))
            {
                AppendUser(messages, [new TextPart(text)]);
            }

            return;
        }

        // Tool results first, one tool message per tool_use_id, in the order of the calls they answer; then one
        // user message with the rest.
        var parts = new List<ChatContentPart>();
        var toolImages = new List<ChatContentPart>();
        var firstTool = messages.Count;
        foreach (var block in content.Blocks ?? [])
        {
            switch (block)
            {
                case ToolResultBlock result:
                    messages.Add(new ChatMessage
                    {
                        Role = "tool",
                        ToolCallId = result.ToolUseId,
                        Content = new ChatContent(ToolResultText(result, model, toolImages)),
                    });
                    break;
                case TextBlock { Text: { } blockText } when !string.IsNullOrWhiteSpace(blockText):
                    parts.Add(new TextPart(blockText));
                    break;
                case ImageBlock image:
                    parts.Add(ImagePart(image, model));
                    break;
                case DocumentBlock document:
                    // A document the user sends is a clear 400: they can send its text instead (protocol.md §C.2).
                    parts.Add(new TextPart(DocumentText(document) ?? throw new RequestTranslationException(
                        $"document blocks with a {document.Source!.Type} source ({document.Source.MediaType ?? "no media type"}) are not supported by this gateway; send the text instead")));
                    break;
            }
        }

        OrderLikeCalls(messages, firstTool);

        // Images returned by tools travel in the user message that follows the tool messages.
        toolImages.AddRange(parts);
        if (toolImages.Count > 0)
        {
            AppendUser(messages, toolImages);
        }
    }

    /// <summary>
    /// Claude Code returns parallel results in completion order (claude-code.md §9.16). Many chat templates pair
    /// tool outputs with calls by position, not by id, so the tool messages from <paramref name="first"/> on are
    /// put in the order of the preceding assistant's <c>tool_calls</c> (results for unknown ids keep their place
    /// after those). Stable, and a no-op when the order already matches.
    /// </summary>
    private static void OrderLikeCalls(List<ChatMessage> messages, int first)
    {
        if (messages.Count - first < 2 || first == 0 || messages[first - 1] is not { Role: "assistant", ToolCalls: { Count: > 1 } calls })
        {
            return;
        }

        int Rank(ChatMessage message)
        {
            for (var i = 0; i < calls.Count; i++)
            {
                if (calls[i].Id == message.ToolCallId)
                {
                    return i;
                }
            }

            return calls.Count;
        }

        var count = messages.Count - first;
        var sorted = messages.GetRange(first, count).ToArray();
        var keys = new int[count];
        for (var i = 0; i < count; i++)
        {
            // Unique keys (rank, then block position) make the unstable sort stable.
            keys[i] = (Rank(sorted[i]) * count) + i;
        }

        keys.AsSpan().Sort(sorted.AsSpan());
        messages.RemoveRange(first, count);
        messages.AddRange(sorted);
    }

    private static void AppendUser(List<ChatMessage> messages, List<ChatContentPart> parts)
    {
        // Consecutive user turns are merged (Anthropic merges them; some templates reject two in a row).
        if (messages.Count > 0 && messages[^1] is { Role: "user" } previous)
        {
            var merged = new List<ChatContentPart>(PartsOf(previous.Content));
            merged.AddRange(parts);
            messages[^1] = previous with { Content = ContentOf(merged) };
            return;
        }

        messages.Add(new ChatMessage { Role = "user", Content = ContentOf(parts) });
    }

    private static IEnumerable<ChatContentPart> PartsOf(ChatContent? content) =>
        content?.Parts ?? (content?.Text is { } text ? [new TextPart(text)] : []);

    /// <summary>Plain string when all parts are text (widest server support), parts otherwise.</summary>
    private static ChatContent ContentOf(List<ChatContentPart> parts)
    {
        if (parts.TrueForAll(p => p is TextPart))
        {
            return parts.Count == 1 ? new ChatContent(((TextPart)parts[0]).Text) : new ChatContent(string.Join("\n\n", parts.Select(p => ((TextPart)p).Text)));
        }

        return new ChatContent(parts);
    }

    private static string ToolResultText(ToolResultBlock result, ModelEntry model, List<ChatContentPart> images)
    {
        var text = new StringBuilder();
        if (result.IsError == true)
        {
            text.Append("[tool error] ");
        }

        if (result.Content?.Text is { } plain)
        {
            text.Append(plain);
        }
        else
        {
            var first = true;
            foreach (var block in result.Content?.Blocks ?? [])
            {
                string? piece = block switch
                {
                    TextBlock { Text: { } t } => t,
                    // A tool's document (Claude Code's Read of a .pdf) is resent every turn, so a 400 would end the session.
                    DocumentBlock d => DocumentText(d) ?? DocumentOmitted(d),
                    ToolReferenceBlock { ToolName: { } tool } => $"(tool loaded: {tool})",
                    _ => null,
                };
                if (block is ImageBlock image)
                {
                    images.Add(new TextPart($"(image returned by tool call {result.ToolUseId})"));
                    images.Add(ImagePart(image, model));
                    piece = "(image attached below)";
                }

                if (piece is null)
                {
                    continue;
                }

                if (!first)
                {
                    text.Append('\n');
                }

                text.Append(piece);
                first = false;
            }
        }

        return text.ToString();
    }

    private static ChatContentPart ImagePart(ImageBlock image, ModelEntry model)
    {
        if (!model.Vision)
        {
            // Never a silent drop: the model is told an image was there.
            return new TextPart($"[image omitted: model {model.Id} does not accept images]");
        }

        var source = image.Source!;
        return source.Type == "url"
            ? new ImageUrlPart(new ImageUrl(source.Url))
            : new ImageUrlPart(new ImageUrl(null, source.MediaType, source.Data));
    }

    /// <summary>The text of a <c>text</c> or <c>content</c> document; null for a source the gateway cannot read (base64 PDF, url).</summary>
    private static string? DocumentText(DocumentBlock document)
    {
        var source = document.Source!;
        var title = string.IsNullOrWhiteSpace(document.Title) ? "" : document.Title + "\n\n";
        var context = string.IsNullOrWhiteSpace(document.Context) ? "" : document.Context + "\n\n";
        return source.Type switch
        {
            "text" => title + context + source.Data,
            "content" => title + context + string.Join("\n\n", (source.Content?.Blocks ?? []).OfType<TextBlock>().Select(b => b.Text)) + source.Content?.Text,
            _ => null,
        };
    }

    /// <summary>Never a silent drop: the model is told a document was there (as for an image toward a model without vision).</summary>
    private static string DocumentOmitted(DocumentBlock document) =>
        $"[document omitted: this gateway does not accept {document.Source!.MediaType ?? document.Source.Type} documents]";

    private static void AddAssistant(List<ChatMessage> messages, MessageContent content, ToolNameMap names, Flavor flavor, bool clearThinking = false)
    {
        string? text;
        List<ChatToolCall>? calls = null;
        string? reasoning = null;
        if (content.Text is { } plain)
        {
            text = string.IsNullOrWhiteSpace(plain) ? null : plain;
        }
        else
        {
            var builder = new StringBuilder();
            foreach (var block in content.Blocks ?? [])
            {
                switch (block)
                {
                    case TextBlock { Text: { } t } when !string.IsNullOrWhiteSpace(t):
                        if (builder.Length > 0)
                        {
                            builder.Append("\n\n");
                        }

                        builder.Append(t);
                        break;
                    case ToolUseBlock toolUse:
                        (calls ??= []).Add(new ChatToolCall(toolUse.Id!, new ChatFunctionCall(names.ToUpstream(toolUse.Name!), toolUse.Input ?? default)));
                        break;
                    case ThinkingBlock { Thinking: { } thinking } when !clearThinking:
                        reasoning = reasoning is null ? thinking : reasoning + "\n" + thinking;
                        break;
                }
            }

            text = builder.Length > 0 ? builder.ToString() : null;
        }

        if (text is null && calls is null)
        {
            return;
        }

        // DeepSeek (thinking mode) rejects a tool-call turn without its reasoning_content, even an empty one.
        if (calls is not null && reasoning is null && flavor.RequiresReasoningOnToolCalls)
        {
            reasoning = "";
        }

        if (messages.Count > 0 && messages[^1] is { Role: "assistant" } previous)
        {
            // Consecutive assistant turns are merged.
            var mergedText = (previous.Content?.Text, text) switch
            {
                (null, var t) => t,
                (var p, null) => p,
                var (p, t) => p + "\n\n" + t,
            };
            var mergedCalls = previous.ToolCalls is null ? calls : calls is null ? previous.ToolCalls : [.. previous.ToolCalls, .. calls];
            messages[^1] = previous with
            {
                Content = mergedText is null ? null : new ChatContent(mergedText),
                ToolCalls = mergedCalls,
                ReasoningContent = previous.ReasoningContent ?? reasoning,
            };
            return;
        }

        messages.Add(new ChatMessage
        {
            Role = "assistant",
            Content = text is null ? null : new ChatContent(text),
            ToolCalls = calls,
            // Thinking is replayed as reasoning_content (DeepSeek requires it on tool-call turns); signatures are dropped.
            ReasoningContent = reasoning,
        });
    }

    private static List<ChatTool>? TranslateTools(List<ToolDefinition>? tools, ToolNameMap names)
    {
        if (tools is not { Count: > 0 })
        {
            return null;
        }

        if (tools is SharedToolList shared)
        {
            // The same tools as an earlier request: the same upstream tools, already written once. Only this
            // request's name map needs them.
            var translated = shared.Translation(static list => (SharedChatTools)BuildTools(list, new ToolNameMap(), new SharedChatTools(list.Count)));
            foreach (var tool in shared)
            {
                if (IsForwarded(tool))
                {
                    names.ToUpstream(tool.Name!);
                }
            }

            return translated.Count > 0 ? translated : null;
        }

        var result = BuildTools(tools, names, new List<ChatTool>(tools.Count));
        return result.Count > 0 ? result : null;
    }

    /// <summary>
    /// Tool search (<c>defer_loading</c>) by a client tool: a deferred tool is offered to an open model only once a
    /// <c>tool_reference</c> to it (in a tool result or user turn) appears in the conversation; the others are sent as
    /// usual. Not cached: the set depends on the conversation.
    /// </summary>
    private static List<ChatTool>? DeferredTools(List<ToolDefinition> tools, List<InputMessage> messages, ToolNameMap names)
    {
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var message in messages)
        {
            Collect(message.Content?.Blocks, referenced);
        }

        var loaded = tools.Where(t => t.DeferLoading != true || (t.Name is { } name && referenced.Contains(name))).ToList();
        var result = BuildTools(loaded, names, new List<ChatTool>(loaded.Count));
        return result.Count > 0 ? result : null;

        static void Collect(List<ContentBlock>? blocks, HashSet<string> referenced)
        {
            foreach (var block in blocks ?? [])
            {
                switch (block)
                {
                    case ToolReferenceBlock { ToolName: { } name }:
                        referenced.Add(name);
                        break;
                    case ToolResultBlock { Content.Blocks: { } inner }:
                        Collect(inner, referenced);
                        break;
                }
            }
        }
    }

    private static List<ChatTool> BuildTools(List<ToolDefinition> tools, ToolNameMap names, List<ChatTool> result)
    {
        foreach (var tool in tools)
        {
            if (IsForwarded(tool))
            {
                result.Add(new ChatTool(new ChatFunction
                {
                    Name = names.ToUpstream(tool.Name!),
                    Description = tool.Description,
                    Parameters = tool.InputSchema!.Value,
                }));
            }
        }

        return result;
    }

    /// <summary>Server tools (web_search_…, bash_…) run on Anthropic's side; an open model cannot call them.</summary>
    private static bool IsForwarded(ToolDefinition tool) =>
        !tool.IsServerTool && tool.InputSchema is { ValueKind: JsonValueKind.Object };

    private static ChatToolChoice? ToolChoiceFor(ToolChoice? choice, ToolNameMap names) => choice?.Type switch
    {
        null => null,
        "auto" => ChatToolChoice.Auto,
        "any" => ChatToolChoice.Required,
        "none" => ChatToolChoice.None,
        "tool" => ChatToolChoice.Function(names.ToUpstream(choice.Name!)),
        _ => null,
    };

    private static List<string>? StopSequences(List<string>? stops, Flavor flavor)
    {
        if (stops is not { Count: > 0 })
        {
            return null;
        }

        return flavor.MaxStopSequences is { } max && stops.Count > max ? stops.GetRange(0, max) : stops;
    }

    /// <summary>
    /// Maps thinking and effort (protocol.md pitfall 20): explicit effort wins; budgets map to buckets; adaptive without
    /// effort is medium (protocol.md §C.1). Effort never turns thinking on: without <c>thinking</c> neither is sent.
    /// </summary>
    private static (string? Effort, bool? EnableThinking) Reasoning(MessagesRequest request, ModelEntry model)
    {
        if (!model.Thinking)
        {
            return (null, null);
        }

        var thinking = request.Thinking?.Type;
        var effort = request.OutputConfig?.Effort switch
        {
            "low" => "low",
            "medium" => "medium",
            "high" or "xhigh" or "max" => "high",
            _ => null,
        };

        switch (thinking)
        {
            case "disabled":
                return (null, false);
            case "enabled":
                effort ??= request.Thinking!.BudgetTokens switch
                {
                    >= 4096 => "high",
                    >= 2048 => "medium",
                    _ => "low",
                };
                return (effort, true);
            case "adaptive":
                return (effort ?? "medium", true);
            default:
                // No thinking (Claude Code with CLAUDE_CODE_DISABLE_THINKING=1 still sends output_config.effort): as if
                // effort were absent too. It only tunes thinking that is on; reasoning_effort alone turns it on (Ollama).
                return (null, null);
        }
    }

    /// <summary><c>output_config.format</c>, or else the top-level <c>output_format</c> of the structured-outputs beta.</summary>
    private static JsonElement? OutputFormatOf(MessagesRequest request) =>
        request.OutputConfig?.Format is { ValueKind: JsonValueKind.Object } format ? format
        : request.OutputFormat is { ValueKind: JsonValueKind.Object } alias ? alias
        : null;

    private static ResponseFormat ResponseFormatFor(JsonElement format)
    {
        var schema = format.TryGetProperty("schema", out var s) ? s : format;
        var name = format.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "output";
        return new ResponseFormat("json_schema", new JsonSchemaFormat(name, schema));
    }
}

/// <summary>What each OpenAI-compatible server family accepts beyond the standard.</summary>
internal sealed record Flavor(
    bool UsesMaxCompletionTokens,
    bool SupportsTopK,
    bool SupportsParallelToolCalls,
    bool SendsReasoningEffort,
    bool SendsTemplateKwargs,
    bool SupportsContinueFinalMessage,
    int? MaxStopSequences,
    bool RequiresReasoningOnToolCalls = false)
{
    private static readonly Flavor Vllm = new(false, true, true, true, true, true, null);
    private static readonly Flavor Sglang = new(false, true, true, true, true, true, null);
    private static readonly Flavor LlamaCpp = new(false, true, true, true, true, false, null);
    private static readonly Flavor Ollama = new(false, false, false, true, false, false, null);
    private static readonly Flavor OpenAIStrict = new(true, false, true, true, false, false, 4);
    private static readonly Flavor DeepSeek = new(false, false, false, true, false, false, 16, RequiresReasoningOnToolCalls: true);

    public static Flavor Of(string? name) => name?.ToLowerInvariant() switch
    {
        "sglang" => Sglang,
        "llamacpp" or "llama.cpp" or "llama-cpp" => LlamaCpp,
        "ollama" => Ollama,
        "openai" => OpenAIStrict,
        "deepseek" => DeepSeek,
        _ => Vllm,
    };
}
