using System.Net;
using System.Text.Json;
using Melious.Gateway.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// Catalog edits a test makes in the <c>models</c> table (through the storage-side <see cref="ModelCatalogStore"/>,
/// as <c>melious-admin</c> would), seen by either host. The self-host reloads its catalog at once
/// (<see cref="TestGateway.RefreshCatalogAsync"/>); the Functions host's worker reloads on its own timer
/// (<see cref="FunctionsHostFixture.Settings"/>: every second), so a test waits, bounded, until the gateway itself
/// shows the change in <c>GET /v1/models/{id}?include_meta=true</c>. On the shared Functions host a test uses model and
/// alias names of its own (<see cref="Unique"/>) and removes them when done.
/// </summary>
public static class CatalogKit
{
    public static ModelCatalogStore Catalog(this Scenario s) => s.Gateway.Services.GetRequiredService<ModelCatalogStore>();

    /// <summary>A name no other test uses: <paramref name="stem"/> plus 8 random hex digits.</summary>
    public static string Unique(string stem) => stem + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>
    /// Waits until the gateway's <c>GET /v1/models/{id}?include_meta=true</c> satisfies <paramref name="applied"/>
    /// (its body, or null for a 404), at most <paramref name="within"/> (default 30 s); fails with the last answer.
    /// </summary>
    public static async Task AwaitCatalogAsync(this Scenario s, string id, Func<JsonElement?, bool> applied, TimeSpan? within = null)
    {
        var ct = TestContext.Current.CancellationToken;
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            if (s.Gateway.Kind == HostKind.SelfHost)
            {
                await s.Gateway.RefreshCatalogAsync();
            }

            using var response = await s.Client.GetAsync($"/v1/models/{Uri.EscapeDataString(id)}?include_meta=true", ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            JsonElement? body = response.StatusCode == HttpStatusCode.OK ? JsonDocument.Parse(text).RootElement.Clone() : null;
            if (applied(body))
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"the gateway did not show the catalog change of {id} within {(within ?? TimeSpan.FromSeconds(30)).TotalSeconds:0} s; last answer {(int)response.StatusCode}: {text}");
            await Task.Delay(200, ct);
        }
    }

    /// <summary>What <c>GET /v1/models/{id}?include_meta=true</c> says the id resolves to, or null.</summary>
    public static string? ResolvesTo(JsonElement? model) =>
        model is { } m && m.TryGetProperty("_meta", out var meta) && meta.TryGetProperty("resolves_to", out var to) ? to.GetString() : null;

    public static long? ContextWindow(JsonElement? model) =>
        model is { } m && m.TryGetProperty("_meta", out var meta) && meta.TryGetProperty("context_window", out var cw) ? cw.GetInt64() : null;
}
