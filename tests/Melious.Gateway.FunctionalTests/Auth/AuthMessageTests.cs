using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Core;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Auth;

/// <summary>
/// 401 <c>authentication_error</c> messages that say what is wrong with a key (judged by its format only), over raw
/// HTTP, the official .NET SDK and the real Claude Code; and <c>GET /v1/me</c>.
/// </summary>
public sealed class AuthMessageTests(AzuriteFixture azurite)
{
    private const string AnthropicKey = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AbCdEfGhIjKlMnOpQrStUvWxYz01234567-AAAAAAAA";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The presented key, built from the scenario's real key where the case needs it.</summary>
    public static TheoryData<string, string> Cases => new()
    {
        { "anthropic", "this is an Anthropic API key; the gateway needs a Melious key (sk-mel-…). Unset ANTHROPIC_API_KEY or set it to \"\"" },
        { "no-prefix", "the key is missing its sk-mel- prefix" },
        { "truncated", "the key looks truncated" },
        { "too-long", "the key is too long" },
        { "unknown", "invalid API key: this key does not exist" },
    };

    internal static string KeyFor(string kind, string real) => kind switch
    {
        "anthropic" => AnthropicKey,
        "no-prefix" => real["sk-mel-".Length..],
        "truncated" => real[..30],
        "too-long" => real + "XYZ",
        _ => "sk-mel-" + new string('Z', 43),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Http_EachMalformedKey_GetsItsOwnMessage_WithoutTheKey(string kind, string expected)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var key = KeyFor(kind, s.Key);
        foreach (var bearer in new[] { false, true })
        {
            using var client = s.Gateway.Client(key, bearer);
            using var response = await client.PostAsync("/v1/messages", Json(Scenario.Body()), Ct);
            var json = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.Unauthorized, "authentication_error", expected);
            Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
            AssertNoKeyIn(json.ToString(), key, s.Key);
        }

        // The same answer on every authenticated path.
        using var models = await s.Gateway.Client(key).GetAsync("/v1/models", Ct);
        await ErrorAssert.IsErrorAsync(models, HttpStatusCode.Unauthorized, "authentication_error", expected);
        using var me = await s.Gateway.Client(key).GetAsync("/v1/me", Ct);
        await ErrorAssert.IsErrorAsync(me, HttpStatusCode.Unauthorized, "authentication_error", expected);
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task Http_BothHeadersWithDifferentBadKeys_SaysWhichWasUsedAndWhichIgnored()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var client = s.Gateway.Client(AnthropicKey);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", s.Key[..25]);
        using var response = await client.PostAsync("/v1/messages", Json(Scenario.Body()), Ct);
        var json = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.Unauthorized, "authentication_error");
        var message = json.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("accepts either", message, StringComparison.Ordinal);
        Assert.Contains("Used the api-key header: this is an Anthropic API key", message, StringComparison.Ordinal);
        Assert.Contains("ignored Authorization: Bearer: the key looks truncated", message, StringComparison.Ordinal);

        // Claude Code replaces any error mentioning "x-api-key" with its own generic text: the header is named otherwise.
        Assert.DoesNotContain("x-api-key", message, StringComparison.OrdinalIgnoreCase);
        AssertNoKeyIn(json.ToString(), AnthropicKey, s.Key);

        // A revoked key in one header and junk in the other: the revocation (403) is the answer, naming its header.
        var store = s.Gateway.Services.GetRequiredService<ApiKeyStore>();
        Assert.True(await store.RevokeAsync(ApiKeys.KeyIdFromHash(ApiKeys.Hash(s.Key)), Ct));
        s.Gateway.Services.GetRequiredService<ApiKeyAuthenticator>().Clear();
        using var revoked = s.Gateway.Client("not-a-key");
        revoked.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", s.Key);
        using var refused = await revoked.PostAsync("/v1/messages", Json(Scenario.Body()), Ct);
        var forbidden = await ErrorAssert.IsErrorAsync(refused, HttpStatusCode.Forbidden, "permission_error");
        var text = forbidden.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("Used Authorization: Bearer: this API key has been revoked", text, StringComparison.Ordinal);
        Assert.Contains("ignored the api-key header: this is not a Melious API key", text, StringComparison.Ordinal);
        Assert.DoesNotContain("x-api-key", text, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task Http_BothHeaders_OneValid_IsStillAccepted()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var client = s.Gateway.Client(AnthropicKey);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", s.Key);
        using var response = await client.PostAsync("/v1/messages", Json(Scenario.Body()), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Sdk_EachMalformedKey_TheSdkExceptionCarriesTheMessage(string kind, string expected)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var key = KeyFor(kind, s.Key);
        foreach (var bearer in new[] { false, true })
        {
            using var client = new AnthropicClient(bearer
                ? new ClientOptions { BaseUrl = s.Gateway.BaseUrl, AuthToken = key, MaxRetries = 0 }
                : new ClientOptions { BaseUrl = s.Gateway.BaseUrl, ApiKey = key, MaxRetries = 0 });
            var error = await Assert.ThrowsAsync<AnthropicUnauthorizedException>(() => client.Messages.Create(
                new MessageCreateParams { Model = "claude-sonnet-4-5-20250929", MaxTokens = 64, Messages = [new UserMessageParam("hi")] }, Ct));
            Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
            var message = JsonDocument.Parse(error.ResponseBody).RootElement.GetProperty("error").GetProperty("message").GetString();
            Assert.Contains(expected, message, StringComparison.Ordinal);
            Assert.Contains("authentication_error", error.Message, StringComparison.Ordinal);
            AssertNoKeyIn(error.Message + error.ResponseBody, key, s.Key);
        }

        Assert.Empty(s.Upstream.Requests);
    }

    /// <summary>
    /// Claude Code (pinned and newest) with each bad key in ANTHROPIC_API_KEY (and, for "both", a second one in
    /// ANTHROPIC_AUTH_TOKEN): its output carries the gateway's message.
    /// </summary>
    [Theory]
    [InlineData("anthropic", "Unset ANTHROPIC_API_KEY")]
    [InlineData("no-prefix", "missing its sk-mel- prefix")]
    [InlineData("truncated", "the key looks truncated")]
    [InlineData("too-long", "the key is too long")]
    [InlineData("unknown", "invalid API key: this key does not exist")]
    [InlineData("both", "Used the api-key header: this is an Anthropic API key; the gateway needs a Melious key (sk-mel-…). Unset ANTHROPIC_API_KEY or set it to \"\"; ignored Authorization: Bearer: the key looks truncated")]
    public async Task ClaudeCode_ShowsTheHint(string kind, string expected)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));

        // "both": a real Anthropic key left in ANTHROPIC_API_KEY next to a cut Melious key in ANTHROPIC_AUTH_TOKEN.
        var key = KeyFor(kind == "both" ? "anthropic" : kind, s.Key);
        var token = kind == "both" ? KeyFor("truncated", s.Key) : null;

        // The Claude Code tools/ pins, and the newest one.
        foreach (var claude in new[] { RepoPaths.Tool("claude", "MELIOUS_CLAUDE"), Cli.CliSandbox.ClaudePath("latest") })
        {
            using var home = new TempDir();
            await RunClaudeAsync(claude, home.Path, s, key, token, expected);
        }

        Assert.Empty(s.Upstream.Requests);
    }

    private static async Task RunClaudeAsync(string claude, string home, Scenario s, string key, string? token, string expected)
    {
        var info = new ProcessStartInfo(claude) { WorkingDirectory = home };
        foreach (var arg in new[] { "-p", "say hi" })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Clear();
        info.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin";
        info.Environment["HOME"] = home;
        info.Environment["TERM"] = "dumb";
        info.Environment["ANTHROPIC_BASE_URL"] = s.Gateway.BaseUrl;
        info.Environment["ANTHROPIC_API_KEY"] = key;
        if (token is not null)
        {
            info.Environment["ANTHROPIC_AUTH_TOKEN"] = token;
        }

        info.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        info.Environment["DISABLE_AUTOUPDATER"] = "1";
        info.Environment["CLAUDE_CODE_MAX_RETRIES"] = "0";
        var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(120), Ct);

        Assert.False(run.TimedOut, run.Describe());
        Assert.True(run.ExitCode != 0, $"{claude}: {run.Describe()}");
        Assert.True((run.Stdout + run.Stderr).Contains(expected, StringComparison.Ordinal), $"{claude} does not show \"{expected}\": {run.Describe()}");
        AssertNoKeyIn(run.Stdout + run.Stderr, key, s.Key);
        if (token is not null)
        {
            AssertNoKeyIn(run.Stdout + run.Stderr, token, s.Key);
        }
    }

    [Fact]
    public async Task WhoAmI_ReturnsAccountKeyIdNameAndRole()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var hash = ApiKeys.Hash(s.Key);
        foreach (var bearer in new[] { false, true })
        {
            using var client = s.Gateway.Client(s.Key, bearer);
            using var response = await client.GetAsync("/v1/me", Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal("api_key", json.GetProperty("type").GetString());
            Assert.Equal("acme", json.GetProperty("account").GetString());
            Assert.Equal("test", json.GetProperty("key_name").GetString());
            Assert.Equal(ApiKeys.KeyIdFromHash(hash), json.GetProperty("key_id").GetString());
            Assert.Equal("user", json.GetProperty("role").GetString());
            Assert.DoesNotContain(s.Key[^20..], json.ToString(), StringComparison.Ordinal);
        }

        // A Role column written by an admin tool is read back.
        var table = s.Gateway.Services.GetRequiredService<StorageClients>().Table(TableNames.ApiKeys);
        await table.UpdateEntityAsync(new TableEntity(ApiKeyStore.Partition, hash) { ["Role"] = "admin" }, Azure.ETag.All, TableUpdateMode.Merge, Ct);
        s.Gateway.Services.GetRequiredService<ApiKeyAuthenticator>().Clear();
        using var admin = await s.Client.GetAsync("/v1/me", Ct);
        Assert.Equal("admin", JsonDocument.Parse(await admin.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("role").GetString());

        using var anonymous = await s.Gateway.Client(null).GetAsync("/v1/me", Ct);
        await ErrorAssert.IsErrorAsync(anonymous, HttpStatusCode.Unauthorized, "authentication_error", "missing API key");
        using var post = await s.Client.PostAsync("/v1/me", Json(Scenario.Body()), Ct);
        await ErrorAssert.IsErrorAsync(post, HttpStatusCode.MethodNotAllowed, "invalid_request_error");
        Assert.Equal("GET", string.Join(",", post.Content.Headers.Allow));
    }

    internal static void AssertNoKeyIn(string text, string presented, string real)
    {
        // No 12-character run of either key (past its public prefix) appears anywhere.
        foreach (var key in new[] { presented, real })
        {
            var body = key.StartsWith("sk-", StringComparison.Ordinal) ? key[7..] : key;
            for (var i = 0; i + 12 <= body.Length; i += 6)
            {
                Assert.DoesNotContain(body.Substring(i, 12), text, StringComparison.Ordinal);
            }
        }
    }

    private static StringContent Json(System.Text.Json.Nodes.JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    internal sealed class TempDir : IDisposable
    {
        public TempDir() => Path = Directory.CreateTempSubdirectory("melious-auth-").FullName;

        public string Path { get; }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
