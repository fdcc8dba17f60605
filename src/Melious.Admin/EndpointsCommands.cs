using System.CommandLine;
using Azure.Data.Tables;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;

namespace Melious.Admin;

/// <summary>
/// <c>models endpoints add|remove|list</c>: the replicas (endpoints) of a catalog model. A model with endpoints is
/// served by that pool (least outstanding requests, session affinity, per-endpoint circuit breakers); a model
/// without any keeps its single base URL. Upstream keys are given as references and never printed.
/// </summary>
internal static class EndpointsCommands
{
    private const string PropagationNote = "Gateways apply catalog changes within twice Melious:Catalog:RefreshInterval (30 s by default).";

    public static Command Create(CliContext cli) => new("endpoints", "Show and change the replicas (endpoints) a catalog model is served from.")
    {
        Add(cli),
        Remove(cli),
        List(cli),
    };

    private static Command Add(CliContext cli)
    {
        var modelId = new Argument<string>("MODEL_ID") { Description = "The catalog model (created if it has no entry yet)." };
        var baseUrl = new Argument<string>("BASE_URL") { Description = "The replica's base URL (for openai, the part before /chat/completions)." };
        var weight = new Option<string?>("--weight") { Description = "Relative share of the traffic (default 1)." };
        var apiKeyRef = new Option<string?>("--api-key-ref") { Description = "Where this replica's key is: config:<key> or env:<VARIABLE>; default: the model's key." };
        var command = new Command("add", "Add a replica to a model's pool, or change its weight or key reference.") { modelId, baseUrl, weight, apiKeyRef };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            var url = CliValues.AbsoluteHttpUrl(result.GetValue(baseUrl), "BASE_URL")!;
            var w = CliValues.PositiveDouble(result.GetValue(weight), "--weight");
            var keyRef = CliValues.KeyReference(result.GetValue(apiKeyRef), "--api-key-ref");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var existing = await ModelsCommands.ReadRowAsync(session, ModelCatalogStore.ModelPartition, ModelCatalogStore.ModelRowKey(id), cancellationToken);
            if (existing is null)
            {
                await session.Catalog.UpsertModelAsync(id, new Dictionary<string, object?>(), cancellationToken);
                cli.Out.WriteLine($"Added model {id} (every field inherited from the default upstream).");
            }

            var pool = await PoolAsync(session, id, cancellationToken);
            await session.Catalog.UpsertEndpointAsync(id, url, w, keyRef, cancellationToken);
            cli.Out.WriteLine($"Endpoint {url} of {id}: weight {CliValues.Format(w ?? 1)}{(keyRef is null ? "" : ", ApiKeyRef set")}.");
            if (pool.Count == 0 && existing is not null && existing.GetString("BaseUrl") is { Length: > 0 } own && !SameUrl(own, url))
            {
                cli.Warn($"{id} is now served by its endpoints only; its own base URL {own} is no longer used (add it too to keep it in the pool)");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Remove(CliContext cli)
    {
        var modelId = new Argument<string>("MODEL_ID") { Description = "The catalog model." };
        var baseUrl = new Argument<string>("BASE_URL") { Description = "The replica to remove." };
        var command = new Command("remove", "Remove a replica from a model's pool (the last one removed returns the model to its single base URL).") { modelId, baseUrl };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            var url = CliValues.NonEmpty(result.GetValue(baseUrl), "BASE_URL");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            if (!await session.Catalog.DeleteEndpointAsync(id, url, cancellationToken))
            {
                throw new CliException($"model {id} has no endpoint {url}");
            }

            cli.Out.WriteLine($"Removed endpoint {url.TrimEnd('/')} of {id}.");
            if ((await PoolAsync(session, id, cancellationToken)).Count == 0)
            {
                cli.Out.WriteLine($"{id} has no endpoints left: it is served from its own base URL (or the default upstream's).");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command List(CliContext cli)
    {
        var modelId = new Argument<string?>("MODEL_ID") { Description = "Only this model's endpoints.", Arity = ArgumentArity.ZeroOrOne };
        var format = Formats.Option("table", "json");
        var command = new Command("list", "Show the endpoints of every model (or of one).") { modelId, format };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var only = result.GetValue(modelId);
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var rows = (await session.Catalog.ListRawAsync(cancellationToken))
                .Where(e => e.PartitionKey == ModelCatalogStore.EndpointPartition)
                .Where(e => only is null || string.Equals(e.GetString("Model"), only, StringComparison.OrdinalIgnoreCase))
                .OrderBy(e => e.GetString("Model"), StringComparer.OrdinalIgnoreCase)
                .ThenBy(e => e.GetString("BaseUrl"), StringComparer.Ordinal)
                .ToList();
            if (result.GetValue(format) == "json")
            {
                JsonOutput.Write(cli.Out, json =>
                {
                    json.WriteStartArray();
                    foreach (var row in rows)
                    {
                        json.WriteStartObject();
                        json.WriteString("model", row.GetString("Model"));
                        json.WriteString("base_url", row.GetString("BaseUrl"));
                        json.WriteNumber("weight", Weight(row));
                        json.WriteBoolean("has_key_ref", row.GetString("ApiKeyRef") is { Length: > 0 });
                        json.WriteEndObject();
                    }

                    json.WriteEndArray();
                });
                return ExitCodes.Success;
            }

            if (rows.Count == 0)
            {
                cli.Out.WriteLine(only is null ? "No model has endpoints: every model is served from its single base URL." : $"{only} has no endpoints: it is served from its single base URL.");
                return ExitCodes.Success;
            }

            var table = new TextTable("MODEL", "BASE_URL", "WEIGHT", "KEY").AlignRight(2);
            foreach (var row in rows)
            {
                table.Add(row.GetString("Model") ?? "", row.GetString("BaseUrl") ?? "", CliValues.Format(Weight(row)), row.GetString("ApiKeyRef") is { Length: > 0 } ? "ref" : "model's");
            }

            table.Write(cli.Out);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static double Weight(TableEntity row) => EntityValues.Double(row, "Weight") is double w && w > 0 ? w : 1;

    private static bool SameUrl(string a, string b) => string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.OrdinalIgnoreCase);

    private static async Task<List<TableEntity>> PoolAsync(AdminSession session, string modelId, CancellationToken cancellationToken) =>
        (await session.Catalog.ListRawAsync(cancellationToken))
            .Where(e => e.PartitionKey == ModelCatalogStore.EndpointPartition && string.Equals(e.GetString("Model"), modelId, StringComparison.OrdinalIgnoreCase))
            .ToList();
}
