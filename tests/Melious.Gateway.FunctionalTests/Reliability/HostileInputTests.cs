using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Regression cases found by the fuzz test, and the configurable request limits at their boundaries (N accepted,
/// N+1 rejected, with a billing row for the rejection). Http/BadInputTests covers MaxBodyBytes, MaxJsonDepth and
/// MaxMessages above their limit; this adds the boundary, MaxTools and MaxStopSequences.
/// </summary>
public sealed class HostileInputTests(AzuriteFixture azurite)
{
    /// <summary>Invalid UTF-8 inside values the gateway keeps as raw JSON (tool schemas, tool inputs, metadata).</summary>
    public static TheoryData<string> RawJsonPlaces =>
    [
        "schema-property-name",
        "schema-string-value",
        "tool-input-property-name",
        "tool-input-string-value",
    ];

    [Theory]
    [MemberData(nameof(RawJsonPlaces))]
    public async Task InvalidUtf8_InsideRawJsonFields_IsNeverA500(string place)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var body = FuzzCorpus.Base(2);
        const string Marker = "MARKERX";
        switch (place)
        {
            case "schema-property-name":
                body["tools"]![0]!["input_schema"]!["properties"]!.AsObject()[Marker] = new JsonObject { ["type"] = "string" };
                break;
            case "schema-string-value":
                body["tools"]![0]!["input_schema"]!["properties"]!["command"]!["description"] = Marker;
                break;
            case "tool-input-property-name":
                body["messages"]![1]!["content"]![0]!["input"]!.AsObject()[Marker] = 1;
                break;
            default:
                body["messages"]![1]!["content"]![0]!["input"]!["file_path"] = Marker;
                break;
        }

        // Replace the marker's bytes with an invalid UTF-8 sequence (a 4-byte lead followed by ASCII).
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        var at = IndexOf(bytes, Encoding.ASCII.GetBytes(Marker));
        Assert.True(at >= 0);
        bytes[at + 2] = 0xF0;

        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await s.Client.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        var crash = s.Gateway.Logs.Lines.FirstOrDefault(l => l.Contains("failed inside the gateway", StringComparison.Ordinal));
        var forwarded = s.Upstream.Requests.IsEmpty ? "not forwarded" : IsValidUtf8(s.Upstream.Last.Body) ? "forwarded as valid UTF-8" : "forwarded with the invalid bytes";
        Figure($"invalid UTF-8 in {place}: {(int)response.StatusCode}, {forwarded}");

        // A client mistake: 400 (or, where the gateway passes the raw JSON on untouched, the upstream's answer). Never a 500.
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{place}: got {(int)response.StatusCode} {text}\n{Cut(crash)}");
        Assert.Null(crash);
        if (response.StatusCode == HttpStatusCode.BadRequest)
        {
            await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error");
        }

        var row = await BillingRowAsync(s.Gateway, RequestId(response));
        AssertOutcome(row, (int)response.StatusCode, response.StatusCode == HttpStatusCode.OK ? null : "invalid_request_error", cancelled: false);
    }

    private static bool IsValidUtf8(byte[] bytes) => System.Text.Unicode.Utf8.IsValid(bytes);

    public static TheoryData<string, int> Limits => new()
    {
        { "MaxBodyBytes", 4_096 },
        { "MaxJsonDepth", 16 },
        { "MaxMessages", 7 },
        { "MaxTools", 3 },
        { "MaxStopSequences", 2 },
    };

    [Theory]
    [MemberData(nameof(Limits))]
    public async Task ConfiguredLimit_AcceptsItsValue_AndRejectsOneMore(string limit, int value)
    {
        await using var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { [$"Melious:Limits:{limit}"] = value.ToString(System.Globalization.CultureInfo.InvariantCulture) });

        var atLimit = await s.PostAsync(Build(limit, value));
        Assert.True(atLimit.StatusCode == HttpStatusCode.OK, $"{limit}={value}: a request at the limit got {(int)atLimit.StatusCode} {await atLimit.Content.ReadAsStringAsync(Ct)}");

        var over = await s.PostAsync(Build(limit, value + 1));
        var (status, type) = limit == "MaxBodyBytes" ? (HttpStatusCode.RequestEntityTooLarge, "request_too_large") : (HttpStatusCode.BadRequest, "invalid_request_error");
        var json = await ErrorAssert.IsErrorAsync(over, status, type);
        Figure($"limit {limit}={value}: at the limit 200, one over {(int)status} \"{json.GetProperty("error").GetProperty("message").GetString()}\"");

        var row = await BillingRowAsync(s.Gateway, RequestId(over));
        AssertOutcome(row, (int)status, type, cancelled: false);
        Assert.Single(s.Upstream.Requests);
    }

    /// <summary>A request exactly at <paramref name="n"/> of the given limit.</summary>
    private static string Build(string limit, int n)
    {
        var body = Scenario.Body();
        switch (limit)
        {
            case "MaxBodyBytes":
                var bare = body.ToJsonString().Replace("\"hi\"", "\"\"", StringComparison.Ordinal);
                var filler = n - Encoding.UTF8.GetByteCount(bare);
                return bare.Replace("\"content\":\"\"", $"\"content\":\"{new string('a', filler)}\"", StringComparison.Ordinal);
            case "MaxJsonDepth":
                // The root object is depth 1, so metadata's value starts at depth 2; nest to a total depth of n.
                var nested = new StringBuilder();
                for (var i = 2; i <= n; i++)
                {
                    nested.Append("{\"a\":");
                }

                nested.Append('1').Append('}', n - 1);
                return body.ToJsonString().TrimEnd('}') + ",\"extra\":" + nested + "}";
            case "MaxMessages":
                var messages = new JsonArray();
                for (var i = 0; i < n; i++)
                {
                    messages.Add(new JsonObject { ["role"] = i % 2 == 0 ? "user" : "assistant", ["content"] = $"m{i}" });
                }

                body["messages"] = messages;
                return body.ToJsonString();
            case "MaxTools":
                var tools = new JsonArray();
                for (var i = 0; i < n; i++)
                {
                    tools.Add(new JsonObject { ["name"] = $"t{i}", ["input_schema"] = new JsonObject { ["type"] = "object" } });
                }

                body["tools"] = tools;
                return body.ToJsonString();
            default:
                body["stop_sequences"] = new JsonArray(Enumerable.Range(0, n).Select(i => (JsonNode?)JsonValue.Create($"stop{i}")).ToArray());
                return body.ToJsonString();
        }
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i <= haystack.Length - needle.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
            {
                return i;
            }
        }

        return -1;
    }

    private static string? Cut(string? text) => text is { Length: > 3000 } ? text[..3000] : text;
}
