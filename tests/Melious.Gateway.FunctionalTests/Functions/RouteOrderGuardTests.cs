using System.Reflection;
using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The Functions host tries HTTP routes in function-name order (ordinal, case-insensitive) and takes the first match
/// (azure-functions-host #9876), so a catch-all route must belong to the HTTP function whose name sorts last. These
/// guards cover every HTTP function, present and future, from what the host reads (the built
/// <c>functions.metadata</c>) and from the attributes it is generated from.
/// </summary>
public sealed class RouteOrderGuardTests
{
    [Fact]
    public void FunctionsMetadata_TheCatchAllSortsAfterEveryOtherHttpFunction()
    {
        Assert.True(File.Exists(FunctionsApp.MetadataFile), $"{FunctionsApp.MetadataFile} missing: the project reference builds the Functions app with these tests");
        using var metadata = JsonDocument.Parse(File.ReadAllText(FunctionsApp.MetadataFile));
        var http = metadata.RootElement.EnumerateArray()
            .SelectMany(f => f.GetProperty("bindings").EnumerateArray()
                .Where(b => string.Equals(b.GetProperty("type").GetString(), "httpTrigger", StringComparison.OrdinalIgnoreCase))
                .Select(b => (Name: f.GetProperty("name").GetString()!, Route: b.TryGetProperty("route", out var r) ? r.GetString() ?? "" : "")))
            .ToList();

        AssertCatchAllLast(http);
    }

    [Fact]
    public void FunctionAttributes_TheCatchAllSortsAfterEveryOtherHttpFunction()
    {
        var http = typeof(FallbackFunction).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods())
            .Select(m => (Function: m.GetCustomAttribute<FunctionAttribute>(), Trigger: m.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).OfType<HttpTriggerAttribute>().FirstOrDefault()))
            .Where(x => x.Function is not null && x.Trigger is not null)
            .Select(x => (Name: x.Function!.Name, Route: x.Trigger!.Route ?? ""))
            .ToList();

        AssertCatchAllLast(http);
    }

    [Theory]
    [InlineData("Zebra")]
    [InlineData("Zz")]
    [InlineData("z9")]
    [InlineData("Z-Thing")]
    [InlineData("Whoami")]
    [InlineData("DashboardUsage")]
    public void TheCatchAllName_SortsAfterLikelyFutureNames(string future) =>
        Assert.True(StringComparer.OrdinalIgnoreCase.Compare(future, FallbackFunction.Name) < 0, $"'{future}' would sort after '{FallbackFunction.Name}'");

    private static void AssertCatchAllLast(List<(string Name, string Route)> http)
    {
        Assert.True(http.Count >= 7, "expected the gateway's HTTP functions, found " + string.Join(", ", http.Select(h => h.Name)));
        var catchAll = Assert.Single(http, h => h.Route.StartsWith("{*", StringComparison.Ordinal));
        Assert.Equal(FallbackFunction.Name, catchAll.Name);

        // The host's own order: FunctionMetadataManager sorts by name with StringComparer.OrdinalIgnoreCase.
        var ordered = http.Select(h => h.Name).OrderBy(n => n, StringComparer.OrdinalIgnoreCase).ToList();
        Assert.True(
            ordered[^1] == catchAll.Name,
            $"The host would try '{catchAll.Name}' ({catchAll.Route}) before {string.Join(", ", ordered.SkipWhile(n => n != catchAll.Name).Skip(1).Select(n => $"'{n}'"))}, " +
            "whose requests it would then take. Rename those functions or the catch-all (FallbackFunction.Name) so that the catch-all sorts last.");
    }
}
