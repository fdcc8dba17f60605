using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure.Data.Tables;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;

namespace Melious.Admin;

/// <summary>
/// <c>models list|set|delete|alias|unalias|set-default</c>: the <c>models</c> table that gateways re-read every
/// <c>Melious:Catalog:RefreshInterval</c>. Upstream keys are never printed: only whether an entry has one.
/// </summary>
internal static class ModelsCommands
{
    private const string PropagationNote = "Gateways apply catalog changes within twice Melious:Catalog:RefreshInterval (30 s by default).";

    public static Command Create(CliContext cli) => new("models", "Show and change the model catalog: entries, aliases and the default upstream.")
    {
        List(cli),
        Set(cli),
        Delete(cli),
        Alias(cli),
        Unalias(cli),
        SetDefault(cli),
        EndpointsCommands.Create(cli),
    };

    private static Command List(CliContext cli)
    {
        var format = Formats.Option("table", "json");
        var command = new Command("list", "Show the default upstream, tiers, aliases and catalog entries as gateways resolve them.") { format };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var view = await CatalogView.LoadAsync(session, cancellationToken);
            if (result.GetValue(format) == "json")
            {
                JsonOutput.Write(cli.Out, view.WriteJson);
            }
            else
            {
                view.WriteTable(cli.Out);
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Set(CliContext cli)
    {
        var modelId = new Argument<string>("MODEL_ID") { Description = "The model id as the upstream knows it (sent upstream as-is)." };
        var properties = new ModelPropertyOptions(includeDisplayName: true);
        var command = new Command("set", "Add a catalog entry or change some of its fields; fields not given stay as they are.") { modelId };
        properties.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            var changes = properties.Read(result);
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var existing = await ReadRowAsync(session, ModelCatalogStore.ModelPartition, ModelCatalogStore.ModelRowKey(id), cancellationToken);
            DropLiteralKey(cli, existing, changes);
            await session.Catalog.UpsertModelAsync(id, changes, cancellationToken);

            cli.Out.WriteLine($"{(existing is null ? "Added" : "Updated")} model {id}: {ModelPropertyOptions.Describe(changes)}.");
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            if (snapshot.Models.TryGetValue(id, out var entry) && entry.Energy is null)
            {
                var hint = KnownModels.Guess(id) is { } known
                    ? $" (for this model, e.g. --active-params {CliValues.Format(known.ActiveParamsB)} --total-params {CliValues.Format(known.TotalParamsB)} --quant-bits {known.QuantBits})"
                    : "";
                cli.Out.WriteLine($"Note: no energy parameters, so its energy and emissions are reported as unknown; set --active-params{hint}.");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command SetDefault(CliContext cli)
    {
        var properties = new ModelPropertyOptions(includeDisplayName: false);
        var command = new Command(
            "set-default",
            "Change the default upstream: where names without a catalog entry go, and the defaults entries inherit.");
        properties.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var changes = properties.Read(result);
            if (changes.Count == 0)
            {
                throw new CliException("nothing to change: give at least one option (see --help)");
            }

            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var existing = await ReadRowAsync(session, ModelCatalogStore.UpstreamPartition, ModelCatalogStore.DefaultRow, cancellationToken);
            DropLiteralKey(cli, existing, changes);
            await session.Catalog.UpsertDefaultUpstreamAsync(changes, cancellationToken);
            cli.Out.WriteLine($"{(existing is null ? "Set" : "Updated")} the default upstream: {ModelPropertyOptions.Describe(changes)}.");
            if (existing is null && !changes.ContainsKey("BaseUrl"))
            {
                cli.Warn($"the default upstream has no BaseUrl in the table; gateways use their Melious:Upstream:BaseUrl (or {ModelCatalogStore.DefaultBaseUrl})");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Delete(CliContext cli)
    {
        var modelId = new Argument<string>("MODEL_ID") { Description = "The catalog entry to remove." };
        var command = new Command("delete", "Remove a catalog entry and its endpoints (requests for it then pass through to the default upstream).") { modelId };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var (entryDeleted, endpointsDeleted) = await session.Catalog.DeleteModelAsync(id, cancellationToken);
            var endpoints = endpointsDeleted == 1 ? "1 endpoint" : $"{endpointsDeleted} endpoints";
            if (!entryDeleted && endpointsDeleted == 0)
            {
                throw new CliException($"no catalog entry for model {id}");
            }

            cli.Out.WriteLine(
                !entryDeleted ? $"Model {id} had no catalog entry; deleted its {endpoints} left behind."
                : endpointsDeleted == 0 ? $"Deleted model {id}."
                : $"Deleted model {id} and its {endpoints}.");
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            foreach (var (tier, target) in snapshot.Tiers.Where(t => string.Equals(t.Value, id, StringComparison.OrdinalIgnoreCase)))
            {
                cli.Warn($"tier {tier} still maps to {target}; it now passes through to the default upstream (change it with 'tiers set {tier} MODEL_ID')");
            }

            foreach (var (alias, target) in snapshot.Aliases.Where(a => string.Equals(a.Value, id, StringComparison.OrdinalIgnoreCase)))
            {
                cli.Warn($"alias {alias} still points to {target}; it now passes through to the default upstream");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Alias(CliContext cli)
    {
        var alias = new Argument<string>("ALIAS") { Description = "The name clients may send." };
        var modelId = new Argument<string>("MODEL_ID") { Description = "The catalog model it stands for." };
        var command = new Command("alias", "Make a client model name resolve to a catalog model.") { alias, modelId };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var name = CliValues.NonEmpty(result.GetValue(alias), "ALIAS");
            var target = CliValues.NonEmpty(result.GetValue(modelId), "MODEL_ID");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            await session.Catalog.SetAliasAsync(name, target, cancellationToken);
            cli.Out.WriteLine($"Alias {name} -> {target}.");
            if (!snapshot.Models.ContainsKey(target))
            {
                cli.Warn($"{target} has no catalog entry; requests for {name} pass through to the default upstream as {target}");
            }

            if (snapshot.Models.ContainsKey(name))
            {
                cli.Warn($"{name} is also a catalog model id, which takes precedence over the alias");
            }

            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Unalias(CliContext cli)
    {
        var alias = new Argument<string>("ALIAS") { Description = "The alias to remove." };
        var command = new Command("unalias", "Remove an alias.") { alias };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var name = CliValues.NonEmpty(result.GetValue(alias), "ALIAS");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            if (!await session.Catalog.DeleteAliasAsync(name, cancellationToken))
            {
                throw new CliException($"no alias {name}");
            }

            cli.Out.WriteLine($"Removed alias {name}.");
            cli.Out.WriteLine(PropagationNote);
            return ExitCodes.Success;
        }));
        return command;
    }

    internal static async Task<TableEntity?> ReadRowAsync(AdminSession session, string partition, string row, CancellationToken cancellationToken)
    {
        var response = await session.Storage.Table(TableNames.Models).GetEntityIfExistsAsync<TableEntity>(partition, row, cancellationToken: cancellationToken);
        return response.HasValue ? response.Value : null;
    }

    /// <summary>
    /// A literal <c>ApiKey</c> on the row would win over the new reference, so setting a reference blanks it
    /// (the catalog ignores an empty literal).
    /// </summary>
    private static void DropLiteralKey(CliContext cli, TableEntity? existing, Dictionary<string, object?> changes)
    {
        if (changes.ContainsKey("ApiKeyRef") && existing is not null && KeyKind.Of(existing) == KeyKind.Literal)
        {
            changes["ApiKey"] = "";
            cli.Warn("removed the literal ApiKey stored on this row; the new --api-key-ref is used instead");
        }
    }

    /// <summary>Where an entry's upstream key comes from. Only this is ever shown, never the key or the reference.</summary>
    internal static class KeyKind
    {
        public const string Literal = "literal";
        public const string Reference = "ref";
        public const string Inherited = "inherited";
        public const string None = "none";

        public static string Of(TableEntity? entity) =>
            entity is null ? None
            : HasText(entity, "ApiKey") ? Literal
            : HasText(entity, "ApiKeyRef") ? Reference
            : None;

        private static bool HasText(TableEntity entity, string name) =>
            entity.TryGetValue(name, out var value) && value is string text && !string.IsNullOrWhiteSpace(text);
    }

    /// <summary>The catalog as gateways resolve it, plus which rows hold a key.</summary>
    private sealed class CatalogView
    {
        private readonly CatalogSnapshot _snapshot;
        private readonly TableEntity? _upstreamRow;
        private readonly Dictionary<string, TableEntity> _modelRows;

        private CatalogView(CatalogSnapshot snapshot, IReadOnlyList<TableEntity> rows)
        {
            _snapshot = snapshot;
            _upstreamRow = rows.FirstOrDefault(e => e.PartitionKey == ModelCatalogStore.UpstreamPartition && e.RowKey == ModelCatalogStore.DefaultRow);
            _modelRows = rows
                .Where(e => e.PartitionKey == ModelCatalogStore.ModelPartition)
                .GroupBy(e => e.GetString("Id") ?? e.RowKey, StringComparer.OrdinalIgnoreCase)
                .ToDictionary(g => g.Key, g => g.First(), StringComparer.OrdinalIgnoreCase);
        }

        public static async Task<CatalogView> LoadAsync(AdminSession session, CancellationToken cancellationToken)
        {
            var rows = await session.Catalog.ListRawAsync(cancellationToken);
            var snapshot = await session.Catalog.LoadAsync(cancellationToken);
            return new CatalogView(snapshot, rows);
        }

        private string DefaultKey => KeyKind.Of(_upstreamRow);

        private IEnumerable<ModelEntry> Models => _snapshot.Models.Values.OrderBy(m => m.Id, StringComparer.OrdinalIgnoreCase);

        private string EntryKey(ModelEntry model)
        {
            var own = KeyKind.Of(_modelRows.GetValueOrDefault(model.Id));
            return own != KeyKind.None ? own : DefaultKey != KeyKind.None ? KeyKind.Inherited : KeyKind.None;
        }

        public void WriteTable(TextWriter output)
        {
            output.WriteLine("Default upstream");
            if (_upstreamRow is null)
            {
                output.WriteLine("  (no row in the models table: gateways use their Melious:Upstream settings)");
            }
            else
            {
                var d = _snapshot.DefaultUpstream;
                output.WriteLine($"  base_url  {d.BaseUrl}");
                output.WriteLine($"  protocol  {d.Protocol} ({d.Flavor})");
                output.WriteLine($"  api_key   {DefaultKey}");
                output.WriteLine($"  limits    context {CliValues.Format(d.ContextWindow)}, max output {CliValues.Format(d.MaxOutputTokens)}");
                output.WriteLine($"  prices    {Prices(d.Prices)} per million tokens (input/output/cache read/cache write){Version(d.Prices)}");
                output.WriteLine($"  energy    {Energy(d.Energy)}");
            }

            output.WriteLine();
            output.WriteLine("Tiers");
            foreach (var tier in CatalogSnapshot.TierNames)
            {
                output.WriteLine(_snapshot.Tiers.TryGetValue(tier, out var model)
                    ? $"  {tier,-7} -> {model}{(_snapshot.Models.ContainsKey(model) ? "" : "  (no catalog entry: passes through)")}"
                    : $"  {tier,-7} (not set: passes through unchanged)");
            }

            output.WriteLine();
            output.WriteLine("Aliases");
            if (_snapshot.Aliases.Count == 0)
            {
                output.WriteLine("  (none)");
            }

            foreach (var (alias, model) in _snapshot.Aliases.OrderBy(a => a.Key, StringComparer.OrdinalIgnoreCase))
            {
                output.WriteLine($"  {alias} -> {model}");
            }

            output.WriteLine();
            output.WriteLine("Models");
            if (_snapshot.Models.Count == 0)
            {
                output.WriteLine("  (none: every name goes to the default upstream)");
                return;
            }

            var table = new TextTable("ID", "BASE_URL", "PROTOCOL", "KEY", "CONTEXT", "MAX_OUT", "CAPABILITIES", "PRICES", "ENERGY", "DISPLAY_NAME")
                .AlignRight(4, 5);
            foreach (var m in Models)
            {
                table.Add(
                    m.Id,
                    m.BaseUrl,
                    $"{m.Protocol}/{m.Flavor}",
                    EntryKey(m),
                    CliValues.Format(m.ContextWindow),
                    CliValues.Format(m.MaxOutputTokens),
                    Capabilities(m),
                    Prices(m.Prices),
                    Energy(m.Energy),
                    m.DisplayName ?? "");
            }

            table.Write(output);
        }

        public void WriteJson(Utf8JsonWriter json)
        {
            json.WriteStartObject();
            json.WritePropertyName("default_upstream");
            if (_upstreamRow is null)
            {
                json.WriteNullValue();
            }
            else
            {
                WriteEntry(json, _snapshot.DefaultUpstream, DefaultKey, includeId: false);
            }

            json.WriteStartObject("tiers");
            foreach (var tier in CatalogSnapshot.TierNames)
            {
                json.WriteStringOrNull(tier, _snapshot.Tiers.GetValueOrDefault(tier));
            }

            json.WriteEndObject();
            json.WriteStartObject("aliases");
            foreach (var (alias, model) in _snapshot.Aliases.OrderBy(a => a.Key, StringComparer.OrdinalIgnoreCase))
            {
                json.WriteString(alias, model);
            }

            json.WriteEndObject();
            json.WriteStartArray("models");
            foreach (var m in Models)
            {
                WriteEntry(json, m, EntryKey(m), includeId: true);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        private static void WriteEntry(Utf8JsonWriter json, ModelEntry m, string key, bool includeId)
        {
            json.WriteStartObject();
            if (includeId)
            {
                json.WriteString("id", m.Id);
                json.WriteStringOrNull("display_name", m.DisplayName);
            }

            json.WriteString("base_url", m.BaseUrl);
            json.WriteString("protocol", m.Protocol);
            json.WriteString("flavor", m.Flavor);
            json.WriteString("api_key", key);
            json.WriteNumber("context_window", m.ContextWindow);
            json.WriteNumber("max_output_tokens", m.MaxOutputTokens);
            json.WriteBoolean("tool_use", m.ToolUse);
            json.WriteBoolean("vision", m.Vision);
            json.WriteBoolean("thinking", m.Thinking);
            json.WriteStartObject("prices");
            json.WriteString("input", CliValues.Format(m.Prices.InputPerMTok));
            json.WriteString("output", CliValues.Format(m.Prices.OutputPerMTok));
            json.WriteString("cache_read", CliValues.Format(m.Prices.CacheReadPerMTok));
            json.WriteString("cache_write", CliValues.Format(m.Prices.CacheWritePerMTok));
            json.WriteString("currency", m.Prices.Currency);
            json.WriteStringOrNull("version", m.Prices.Version);
            json.WriteEndObject();
            json.WritePropertyName("energy");
            if (m.Energy is { } e)
            {
                json.WriteStartObject();
                json.WriteNumber("active_params_b", e.ActiveParamsB);
                json.WriteNumber("total_params_b", e.TotalParamsB);
                json.WriteNumber("quant_bits", e.QuantBits);
                json.WriteString("source", e.Source);
                if (e.JoulesPerOutputToken is { } joules)
                {
                    json.WriteNumber("joules_per_output_token", joules);
                }

                if (e.GpuCount is { } gpus)
                {
                    json.WriteNumber("gpu_count", gpus);
                }

                json.WriteEndObject();
            }
            else
            {
                json.WriteNullValue();
            }

            json.WriteEndObject();
        }

        private static string Capabilities(ModelEntry m)
        {
            var list = new List<string>(3);
            if (m.ToolUse)
            {
                list.Add("tools");
            }

            if (m.Vision)
            {
                list.Add("vision");
            }

            if (m.Thinking)
            {
                list.Add("thinking");
            }

            return list.Count == 0 ? "-" : string.Join(',', list);
        }

        private static string Prices(PriceCard p) =>
            $"{CliValues.Format(p.InputPerMTok)}/{CliValues.Format(p.OutputPerMTok)}/{CliValues.Format(p.CacheReadPerMTok)}/{CliValues.Format(p.CacheWritePerMTok)} {p.Currency}";

        private static string Version(PriceCard p) => p.Version is null ? "" : $", version {p.Version}";

        private static string Energy(EnergyProfile? e)
        {
            if (e is null)
            {
                return "unknown";
            }

            var text = string.Create(CultureInfo.InvariantCulture, $"{e.ActiveParamsB}B/{e.TotalParamsB}B q{e.QuantBits}");
            return e.JoulesPerOutputToken is { } joules
                ? text + string.Create(CultureInfo.InvariantCulture, $" {joules} J/tok") + (e.GpuCount is { } gpus ? string.Create(CultureInfo.InvariantCulture, $" x{gpus} GPU") : "")
                : text;
        }
    }
}
