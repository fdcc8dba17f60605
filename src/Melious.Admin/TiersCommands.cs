using System.CommandLine;
using Melious.Gateway.Routing;

namespace Melious.Admin;

/// <summary><c>tiers set|list</c>: which upstream model serves names containing opus, sonnet or haiku.</summary>
internal static class TiersCommands
{
    public static Command Create(CliContext cli) => new("tiers", "Map the Claude tiers (opus, sonnet, haiku) to upstream models.")
    {
        Set(cli),
        List(cli),
    };

    private static Command Set(CliContext cli)
    {
        var tier = new Argument<string>("TIER") { Description = "opus, sonnet or haiku." };
        tier.AcceptOnlyFromAmong(CatalogSnapshot.TierNames);
        var modelId = new Argument<string>("MODEL_ID") { Description = "The upstream model that serves every name containing the tier." };
        var command = new Command("set", "Route every model name containing the tier (e.g. claude-sonnet-4-5) to MODEL_ID.") { tier, modelId };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var tierName = result.GetRequiredValue(tier).ToLowerInvariant();
            var target = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            await session.Catalog.SetTierAsync(tierName, target, cancellationToken);
            cli.Out.WriteLine($"Tier {tierName} -> {target}.");
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            if (!snapshot.Models.ContainsKey(target))
            {
                cli.Warn($"{target} has no catalog entry; it is served by the default upstream with default limits and prices (add it with 'models set {target} …')");
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "Show the tier mapping.");
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            var table = new TextTable("TIER", "MODEL", "IN_CATALOG");
            foreach (var tier in CatalogSnapshot.TierNames)
            {
                var model = snapshot.Tiers.GetValueOrDefault(tier);
                table.Add(tier, model ?? "-", model is null ? "-" : snapshot.Models.ContainsKey(model) ? "yes" : "no");
            }

            table.Write(cli.Out);
            return ExitCodes.Success;
        }));
        return command;
    }
}
