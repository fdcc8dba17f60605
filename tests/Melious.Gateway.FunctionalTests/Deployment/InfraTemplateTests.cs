using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Deployment;

/// <summary>
/// What `azd up` deploys (infra/) agrees with what the code needs: every table and queue exists (the app runs with
/// CreateIfMissing=false there), every gateway setting binds to an option, and no output that azd writes back into
/// the environment pins a parameter's computed default. scripts/check-infra.sh compiles and lints the same files.
/// </summary>
public sealed partial class InfraTemplateTests
{
    private static readonly string Infra = Path.Combine(RepoPaths.Root, "infra");

    private static string MainBicep => File.ReadAllText(Path.Combine(Infra, "main.bicep"));

    [Fact]
    public void Tables_AreEveryTableTheGatewayUses()
    {
        var block = TableNamesBlock().Match(MainBicep);
        Assert.True(block.Success, "infra/main.bicep has no `var tableNames = [...]`");
        var deployed = Quoted().Matches(block.Groups["items"].Value).Select(m => m.Groups["v"].Value).Order(StringComparer.Ordinal);
        Assert.Equal(TableNames.All.Order(StringComparer.Ordinal), deployed);
    }

    [Fact]
    public void Queues_AreTheUsageQueues()
    {
        var defaults = new UsageOptions();
        var queue = Assert.Single(UsageQueueName().Matches(MainBicep)).Groups["v"].Value;
        Assert.Equal(defaults.QueueName, queue);
        Assert.Contains("var usagePoisonQueueName = '${usageQueueName}-poison'", MainBicep, StringComparison.Ordinal);
        Assert.Equal(defaults.QueueName + "-poison", defaults.PoisonQueueName);
    }

    [Fact]
    public void GatewaySettings_BindToGatewayOptions()
    {
        var settings = Directory.EnumerateFiles(Infra, "*.bicep", SearchOption.AllDirectories)
            .SelectMany(f => GatewaySetting().Matches(File.ReadAllText(f)).Select(m => m.Groups["name"].Value))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        Assert.NotEmpty(settings);
        var unbound = settings.Where(s => !Binds(typeof(GatewayOptions), s.Split("__").Skip(1))).ToList();
        Assert.True(unbound.Count == 0, "settings no GatewayOptions property reads: " + string.Join(", ", unbound));
    }

    [Fact]
    public void OutputsThatAzdFeedsBackAsParameters_AreThoseParameters()
    {
        // azd writes every output into .azure/<env>/.env, and main.parameters.json reads ${VAR} from there on the next
        // run: an output computed from a parameter's default would pin that default for good.
        using var parameters = JsonDocument.Parse(File.ReadAllText(Path.Combine(Infra, "main.parameters.json")));
        var outputs = Output().Matches(MainBicep).ToDictionary(m => m.Groups["name"].Value, m => m.Groups["value"].Value.Trim(), StringComparer.Ordinal);
        var checkedAny = false;
        foreach (var parameter in parameters.RootElement.GetProperty("parameters").EnumerateObject())
        {
            var value = parameter.Value.GetProperty("value").GetString() ?? "";
            if (EnvReference().Match(value) is not { Success: true } reference || !outputs.TryGetValue(reference.Groups["var"].Value, out var output))
            {
                continue;
            }

            checkedAny = true;
            Assert.True(output == parameter.Name, $"output {reference.Groups["var"].Value} is `{output}`, not the parameter `{parameter.Name}` it feeds back into");
        }

        Assert.True(checkedAny, "no output feeds a parameter: the check is not looking at the right files");
    }

    private static bool Binds(Type type, IEnumerable<string> path)
    {
        var current = type;
        foreach (var segment in path)
        {
            var property = current.GetProperty(segment, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || !property.CanWrite)
            {
                return false;
            }

            current = property.PropertyType;
        }

        return current != type;
    }

    [GeneratedRegex(@"var tableNames = \[(?<items>[^\]]*)\]")]
    private static partial Regex TableNamesBlock();

    [GeneratedRegex(@"'(?<v>[^']*)'")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"var usageQueueName = '(?<v>[^']*)'")]
    private static partial Regex UsageQueueName();

    [GeneratedRegex(@"\b(?<name>Melious__[A-Za-z0-9_]+)\s*:")]
    private static partial Regex GatewaySetting();

    [GeneratedRegex(@"^output (?<name>\w+) \w+ = (?<value>.+)$", RegexOptions.Multiline)]
    private static partial Regex Output();

    [GeneratedRegex(@"^\$\{(?<var>[A-Z0-9_]+)(=[^}]*)?\}$")]
    private static partial Regex EnvReference();
}
