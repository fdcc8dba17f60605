using System.Net;
using System.Net.Http.Headers;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Keys against the real <c>apikeys</c> table in Azurite.</summary>
public abstract class AuthTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task XApiKey_And_Bearer_BothWork()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        using var bearer = s.Gateway.Client(s.Key, bearer: true);
        var viaHeader = await s.PostAsync(Scenario.Body());
        var viaBearer = await bearer.PostAsync("/v1/messages", new StringContent(Scenario.Body().ToJsonString(), System.Text.Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, viaHeader.StatusCode);
        Assert.Equal(HttpStatusCode.OK, viaBearer.StatusCode);
    }

    [Fact]
    public async Task BothHeaders_EitherValidKeyIsAccepted()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        using var client = s.Gateway.Client("sk-ant-some-real-anthropic-key");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", s.Key);
        var response = await client.PostAsync("/v1/messages", new StringContent(Scenario.Body().ToJsonString(), System.Text.Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sk-mel-doesnotexistdoesnotexistdoesnotexist1234567")]
    [InlineData("not-even-our-format")]
    public async Task MissingOrUnknownKey_Gets401(string? key)
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        using var client = s.Gateway.Client(string.IsNullOrEmpty(key) ? null : key);
        var response = await client.PostAsync("/v1/messages", new StringContent(Scenario.Body().ToJsonString(), System.Text.Encoding.UTF8, "application/json"), Ct);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.Unauthorized, "authentication_error");
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task RevokedKey_Gets403_WithinTheCacheTtl()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { ["Melious:Auth:CacheTtl"] = "00:00:01" });
        Assert.Equal(HttpStatusCode.OK, (await s.PostAsync(Scenario.Body())).StatusCode);

        var store = s.Gateway.Services.GetRequiredService<ApiKeyStore>();
        Assert.True(await store.RevokeAsync(ApiKeys.KeyIdFromHash(ApiKeys.Hash(s.Key)), Ct));
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);

        // The TTL (1 s here, 30 s by default) plus one key-store round trip.
        var (refused, _) = await s.PostUntilRefusedAsync(() => Scenario.Body(), TimeSpan.FromSeconds(10));
        using (refused)
        {
            await ErrorAssert.IsErrorAsync(refused, HttpStatusCode.Forbidden, "permission_error", "revoked");
        }
    }

    [Fact]
    public async Task Lookups_AreCached()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        // Delete the key row behind the gateway's back: a cached key keeps working until the TTL (30 s by default).
        var store = s.Gateway.Services.GetRequiredService<Melious.Gateway.Storage.StorageClients>();
        Assert.Equal(HttpStatusCode.OK, (await s.PostAsync(Scenario.Body())).StatusCode);
        await store.Table(Melious.Gateway.Storage.TableNames.ApiKeys).DeleteEntityAsync(ApiKeyStore.Partition, ApiKeys.Hash(s.Key), cancellationToken: Ct);
        Assert.Equal(HttpStatusCode.OK, (await s.PostAsync(Scenario.Body())).StatusCode);
    }

    [Fact]
    public async Task KeysAreStoredOnlyAsHashes()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var table = s.Gateway.Services.GetRequiredService<Melious.Gateway.Storage.StorageClients>().Table(Melious.Gateway.Storage.TableNames.ApiKeys);
        var entities = new List<Azure.Data.Tables.TableEntity>();
        await foreach (var e in table.QueryAsync<Azure.Data.Tables.TableEntity>(cancellationToken: Ct))
        {
            entities.Add(e);
        }

        // The key's row is keyed by its hash; no row of the table (the Functions host's is shared by its tests) holds the key or a part of it.
        Assert.Single(entities, e => e.RowKey == ApiKeys.Hash(s.Key));
        Assert.All(entities, entity =>
        {
            Assert.DoesNotContain(entity, p => p.Value?.ToString()?.Contains(s.Key, StringComparison.Ordinal) == true);
            Assert.DoesNotContain(entity, p => p.Value?.ToString()?.Contains(s.Key[7..20], StringComparison.Ordinal) == true);
        });
    }
}

/// <summary>The tests of <see cref="AuthTests"/> against the self-host.</summary>
public sealed class AuthTestsOnSelfHost(AzuriteFixture azurite) : AuthTests(azurite);

/// <summary>The tests of <see cref="AuthTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class AuthTestsOnFunctionsHost(FunctionsHostFixture host) : AuthTests(host);
