using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary><c>/healthz</c> and <c>/healthz/ready</c>: unauthenticated, ok/fail only.</summary>
public sealed class HealthTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Liveness_AndReadiness_AnswerOkWithoutAKey()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var anonymous = s.Gateway.Client(null);
        foreach (var path in new[] { "/healthz", "/healthz/ready" })
        {
            using var response = await anonymous.GetAsync(path, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ok", await response.Content.ReadAsStringAsync(Ct));
            Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
            using var head = await anonymous.SendAsync(new HttpRequestMessage(HttpMethod.Head, path), Ct);
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }
    }

    [Fact]
    public async Task WithoutStorage_ReadinessFails_AndLivenessStaysOk()
    {
        await using var upstream = await ScriptedUpstream.OpenAIAsync(Sse.TextAnswer(["ok"]));
        var port = Ports.Free();
        var dead = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
                   "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
                   $"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";
        await using var gateway = await TestGateway.StartAsync(dead, upstream.OpenAIBaseUrl);
        using var anonymous = gateway.Client(null);

        using var live = await anonymous.GetAsync("/healthz", Ct);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var ready = await anonymous.GetAsync("/healthz/ready", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("fail", await ready.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task AnUnresolvedKeyVaultReference_FailsReadiness_IsLogged_AndIsNeverSentAsAKey()
    {
        // What App Service passes on when it cannot resolve a Key Vault reference: the reference text itself.
        const string reference = "@Microsoft.KeyVault(SecretUri=https://kv-test.vault.azure.net/secrets/melious-upstream-api-key)";
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteAsync(context, Sse.TextAnswer(["ok"])), new Dictionary<string, string?>
        {
            ["Melious:Upstream:ApiKey"] = reference,
            ["Melious:Dashboard:SessionSecret"] = reference,
        });
        using var anonymous = s.Gateway.Client(null);

        using var ready = await anonymous.GetAsync("/healthz/ready", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        using var live = await anonymous.GetAsync("/healthz", Ct);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Contains(s.Gateway.Logs.Lines, l => l.Contains("Melious:Upstream:ApiKey is a Key Vault reference", StringComparison.Ordinal));
        Assert.Contains(s.Gateway.Logs.Lines, l => l.Contains("Melious:Dashboard:SessionSecret is a Key Vault reference", StringComparison.Ordinal));

        using var response = await s.PostAsync(Scenario.Body());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(s.Upstream.Last.Headers, h => h.Value.Contains("KeyVault", StringComparison.OrdinalIgnoreCase));
    }
}
