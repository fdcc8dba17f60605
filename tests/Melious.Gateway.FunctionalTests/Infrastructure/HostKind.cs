using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>Which host serves the gateway in a functional test.</summary>
public enum HostKind
{
    /// <summary>src/Melious.SelfHost on Kestrel, in the test process (<see cref="TestGateway.StartAsync"/>).</summary>
    SelfHost,

    /// <summary>src/Melious.Functions under the real Azure Functions host, one per run (<see cref="FunctionsHostFixture"/>).</summary>
    FunctionsHost,
}

/// <summary>
/// Where a test's <see cref="Scenario"/> runs: the shared Azurite (<see cref="AzuriteFixture"/>, a new self-host per
/// scenario) or the shared Functions host (<see cref="FunctionsHostFixture"/>). A test class written against this runs
/// on both hosts through two one-line subclasses, one per host, e.g.
/// <code>
/// public abstract class AuthTests(IGatewayTarget target) { ... Scenario.StartAsync(target, ...) ... }
/// public sealed class AuthTestsOnSelfHost(AzuriteFixture azurite) : AuthTests(azurite);
/// [Collection(FunctionsHostCollection.Name)] public sealed class AuthTestsOnFunctionsHost(FunctionsHostFixture host) : AuthTests(host);
/// </code>
/// </summary>
public interface IGatewayTarget
{
    HostKind Kind => this is FunctionsHostFixture ? HostKind.FunctionsHost : HostKind.SelfHost;

    /// <summary>Skips the calling test on the Functions host, saying why it makes sense on the self-host only.</summary>
    void SelfHostOnly(string why)
    {
        if (this is FunctionsHostFixture)
        {
            Assert.Skip("Self-host only: " + why);
        }
    }

    /// <summary>The storage account the gateway uses.</summary>
    string ConnectionString { get; }

    /// <summary>
    /// The gateway of one scenario. On the Functions host, the shared upstream gets <paramref name="handler"/> as its
    /// script; per-scenario <paramref name="settings"/> and an Anthropic upstream need a gateway of their own, so a
    /// test that uses them is skipped there with that reason.
    /// </summary>
    async Task<(ScriptedUpstream Upstream, TestGateway Gateway, bool Owned)> StartAsync(Func<UpstreamRequest, HttpContext, Task> handler, IDictionary<string, string?>? settings, bool anthropicUpstream)
    {
        if (this is FunctionsHostFixture functions)
        {
            functions.EnsureRunning();
            if (settings is { Count: > 0 } || anthropicUpstream)
            {
                Assert.Skip("Self-host only: needs settings of its own (" + (anthropicUpstream ? "an Anthropic upstream" : string.Join(", ", settings!.Keys)) + "), while the Functions host is started once per run");
            }

            functions.Rescript(handler);
            return (functions.Upstream, TestGateway.OnFunctionsHost(functions), false);
        }

        var upstream = await ScriptedUpstream.StartAsync(handler);
        var all = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>());
        if (anthropicUpstream)
        {
            all.TryAdd("Melious:Upstream:Protocol", "anthropic");
        }

        var gateway = await TestGateway.StartAsync(ConnectionString, anthropicUpstream ? upstream.BaseUrl : upstream.OpenAIBaseUrl, all);
        return (upstream, gateway, true);
    }
}
