using System.Buffers;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Search;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// Sits between the stream translator of one upstream round and the client's sink during a web search loop. It
/// renumbers blocks so that the rounds form one message (indices go on from the previous round), turns the model's
/// <c>web_search</c> function calls into <c>server_tool_use</c> blocks (id <c>srvtoolu_…</c>) and keeps their input,
/// keeps the round's text and reasoning (the next round replays them upstream), and holds back
/// <c>message_delta</c>/<c>message_stop</c>: the loop writes those once, after the last round.
/// </summary>
internal sealed class WebSearchRelay(IMessageEventSink inner) : IMessageEventSink
{
    private readonly Dictionary<int, PendingSearch> _byIndex = [];
    private readonly ArrayBufferWriter<byte> _text = new(256);
    private readonly ArrayBufferWriter<byte> _reasoning = new(256);
    private readonly List<WebSearchHit> _hits = [];
    private readonly List<WebSearchHit> _lastSearch = [];
    private readonly ArrayBufferWriter<byte> _block = new(256);
    private int _textIndex = -1;
    private int _base;
    private int _next;

    /// <summary>A search the model asked for in this round; <see cref="Input"/> holds its escaped JSON input.</summary>
    internal sealed class PendingSearch(string id)
    {
        public string Id { get; } = id;

        public ArrayBufferWriter<byte> Input { get; } = new(128);
    }

    public List<PendingSearch> Searches { get; } = [];

    /// <summary>True when this round also called client tools: the turn ends here with <c>tool_use</c>.</summary>
    public bool SawClientToolUse { get; private set; }

    public string? StopReason { get; private set; }

    public string? StopSequence { get; private set; }

    /// <summary>The round's text, decoded.</summary>
    public string Text => MessageAggregator.Unescape(_text.WrittenSpan);

    public string Reasoning => MessageAggregator.Unescape(_reasoning.WrittenSpan);

    /// <summary>Starts a round: its block 0 follows the blocks already sent.</summary>
    public void BeginRound()
    {
        _base = _next;
        _byIndex.Clear();
        Searches.Clear();
        _text.ResetWrittenCount();
        _reasoning.ResetWrittenCount();
        _textIndex = -1;
        SawClientToolUse = false;
        StopReason = null;
        StopSequence = null;
    }

    private int Out(int index)
    {
        var mapped = _base + index;
        _next = Math.Max(_next, mapped + 1);
        return mapped;
    }

    /// <summary>Writes the result block of a search after the round's blocks; its hits become citable.</summary>
    public void WriteResult(string toolUseId, IReadOnlyList<WebSearchResultItem>? results, string? errorCode, IReadOnlyList<WebSearchHit>? hits = null)
    {
        inner.WebSearchToolResult(_next++, toolUseId, results, errorCode);
        if (hits is { Count: > 0 })
        {
            _hits.AddRange(hits);
            _lastSearch.Clear();
            _lastSearch.AddRange(hits);
        }
    }

    /// <summary>
    /// Best-effort citations for a finished text block: a result whose URL the text contains, or which it names as
    /// <c>[n]</c> (the numbering the model saw for the latest search).
    /// </summary>
    internal static List<WebSearchHit> Cited(string text, IReadOnlyList<WebSearchHit> all, IReadOnlyList<WebSearchHit> latest)
    {
        var cited = new List<WebSearchHit>();
        foreach (var hit in all)
        {
            if (!cited.Contains(hit) && text.Contains(hit.Url, StringComparison.Ordinal))
            {
                cited.Add(hit);
            }
        }

        for (var i = 0; i < latest.Count; i++)
        {
            if (!cited.Contains(latest[i]) && text.Contains($"[{i + 1}]", StringComparison.Ordinal))
            {
                cited.Add(latest[i]);
            }
        }

        return cited;
    }

    private static WebSearchCitation CitationFor(WebSearchHit hit)
    {
        var cited = hit.Content.Length <= 150 ? hit.Content : hit.Content[..150];
        var index = System.Buffers.Text.Base64Url.EncodeToString(System.Text.Encoding.UTF8.GetBytes(hit.Url));
        return new WebSearchCitation(hit.Url, hit.Title, cited, "mwsi." + index);
    }

    public void MessageStart(string messageId, in TokenUsage usage) => inner.MessageStart(messageId, usage);

    public void TextStart(int index)
    {
        if (_hits.Count > 0)
        {
            _textIndex = index;
            _block.ResetWrittenCount();
        }

        inner.TextStart(Out(index));
    }

    public void ThinkingStart(int index) => inner.ThinkingStart(Out(index));

    public void ToolUseStart(int index, string id, string name)
    {
        if (name == WebSearchTranslation.ToolName)
        {
            var search = new PendingSearch(Ids.WithRandomSuffix("srvtoolu_"));
            _byIndex[index] = search;
            Searches.Add(search);
            inner.ServerToolUseStart(Out(index), search.Id, name);
            return;
        }

        SawClientToolUse = true;
        inner.ToolUseStart(Out(index), id, name);
    }

    public void ServerToolUseStart(int index, string id, string name) => inner.ServerToolUseStart(Out(index), id, name);

    public void WebSearchToolResult(int index, string toolUseId, IReadOnlyList<WebSearchResultItem>? results, string? errorCode) =>
        inner.WebSearchToolResult(Out(index), toolUseId, results, errorCode);

    public void ServerToolUse(int webSearchRequests) => inner.ServerToolUse(webSearchRequests);

    public void TextDelta(int index, ReadOnlySpan<byte> escaped)
    {
        _text.Write(escaped);
        if (index == _textIndex)
        {
            _block.Write(escaped);
        }

        inner.TextDelta(Out(index), escaped);
    }

    public void ThinkingDelta(int index, ReadOnlySpan<byte> escaped)
    {
        _reasoning.Write(escaped);
        inner.ThinkingDelta(Out(index), escaped);
    }

    public void InputJsonDelta(int index, ReadOnlySpan<byte> escaped)
    {
        if (_byIndex.TryGetValue(index, out var search))
        {
            search.Input.Write(escaped);
        }

        inner.InputJsonDelta(Out(index), escaped);
    }

    public void SignatureDelta(int index, string signature) => inner.SignatureDelta(Out(index), signature);

    public void BlockStop(int index)
    {
        if (index == _textIndex)
        {
            _textIndex = -1;
            foreach (var hit in Cited(MessageAggregator.Unescape(_block.WrittenSpan), _hits, _lastSearch))
            {
                inner.CitationDelta(Out(index), CitationFor(hit));
            }
        }

        inner.BlockStop(Out(index));
    }

    public void CitationDelta(int index, WebSearchCitation citation) => inner.CitationDelta(Out(index), citation);

    public void MessageDelta(string? stopReason, string? stopSequence, in TokenUsage usage, BillingCost? cost, EnvironmentImpact? impact)
    {
        StopReason = stopReason;
        StopSequence = stopSequence;
    }

    public void MessageStop()
    {
    }

    public void Error(string type, string message) => inner.Error(type, message);
}
