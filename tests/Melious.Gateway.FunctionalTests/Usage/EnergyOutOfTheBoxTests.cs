using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// Energy figures without catalog parameters: a pass-through name the built-in table knows gets numbers (and says
/// they come from the table), one whose size is in its name gets parsed figures, an unknown one stays unknown; the
/// energy row records the same source.
/// </summary>
public sealed class EnergyOutOfTheBoxTests(AzuriteFixture azurite)
{
    [Theory]
    [InlineData("qwen3-coder:30b", "known-model")]
    [InlineData("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", "known-model")]
    [InlineData("acme-coder-70b-instruct", "parsed-name")]
    [InlineData("house-model-v2", "unknown")]
    public async Task PassThroughModel_GetsEnergyFromTheTable_OrStaysUnknown(string model, string source)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["Hello", " there"]));
        var response = await s.PostAsync(Scenario.Body(model));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("request-id").Single();
        var json = await s.JsonAsync(response);
        Assert.Equal(model, s.Upstream.Requests.Single().Json.GetProperty("model").GetString());

        var impact = json.GetProperty("environment_impact");
        Assert.Equal(source, impact.GetProperty("source").GetString());
        if (source == "unknown")
        {
            Assert.Equal("unknown", impact.GetProperty("method").GetString());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, impact.GetProperty("energy_wh").ValueKind);
        }
        else
        {
            Assert.Equal("melious-energy-1", impact.GetProperty("method").GetString());
            var wh = impact.GetProperty("energy_wh").GetDouble();
            Assert.True(wh > 0);
            Assert.True(impact.GetProperty("energy_wh_min").GetDouble() < wh && wh < impact.GetProperty("energy_wh_max").GetDouble());
        }

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Energy, r => r.Any(e => e.RowKey == requestId), TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows, e => e.RowKey == requestId);
        Assert.Equal(source, row.GetString("EnergySource"));
        Assert.Equal(source != "unknown", row.GetBoolean("EnergyKnown"));
    }
}
