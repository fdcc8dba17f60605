using System.CommandLine;
using System.Globalization;
using Melious.Gateway.Auth;

namespace Melious.Admin;

/// <summary><c>keys create|list|revoke|set-limits</c>. Keys are shown once, at creation; the table holds only their hash.</summary>
internal static class KeysCommands
{
    public static Command Create(CliContext cli) => new("keys", "Create, list and revoke API keys, and set their limits.")
    {
        CreateKey(cli),
        List(cli),
        Revoke(cli),
        SetLimits(cli),
    };

    private static Command CreateKey(CliContext cli)
    {
        var account = new Option<string>("--account") { Description = "Account (tenant) the key bills to.", Required = true };
        var name = new Option<string>("--name") { Description = "A label for the key, e.g. the person or machine using it.", Required = true };
        var role = new Option<string>("--role") { Description = "user (sees its own account's usage) or admin (sees every account's usage).", DefaultValueFactory = _ => KeyRoles.User };
        role.AcceptOnlyFromAmong(KeyRoles.User, KeyRoles.Admin);
        var limits = new KeyLimitOptions(allowClear: false);
        var command = new Command("create", "Create a key. The key is printed once, alone on the last line of stdout.") { account, name, role };
        limits.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var accountValue = CliValues.Account(result.GetValue(account));
            var nameValue = CliValues.NonEmpty(result.GetValue(name), "--name");
            var keyLimits = limits.Read(result);
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();

            // Not cancellable once started: a row written without its key printed is an enabled key nobody holds.
            var (key, record) = await session.Keys.CreateAsync(accountValue, nameValue, keyLimits, CancellationToken.None, result.GetRequiredValue(role));
            cli.Out.WriteLine($"Created {record.Role} key {record.KeyId} \"{record.Name}\" for account {record.Account}: {DescribeLimits(record)}.");
            cli.Out.WriteLine("The key is shown only this once; store it now:");
            cli.Out.WriteLine(key);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command List(CliContext cli)
    {
        var account = new Option<string?>("--account") { Description = "Only this account's keys." };
        var format = Formats.Option("table", "json");
        var command = new Command("list", "List keys (never the keys themselves: their ids, owners and limits).") { account, format };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var accountValue = CliValues.OptionalAccount(result.GetValue(account));
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var keys = (await session.Keys.ListAsync(accountValue, cancellationToken))
                .OrderBy(k => k.Account, StringComparer.Ordinal)
                .ThenBy(k => k.CreatedAt)
                .ToList();
            if (result.GetValue(format) == "json")
            {
                JsonOutput.Write(cli.Out, json =>
                {
                    json.WriteStartArray();
                    foreach (var key in keys)
                    {
                        WriteJson(json, key);
                    }

                    json.WriteEndArray();
                });
                return ExitCodes.Success;
            }

            if (keys.Count == 0)
            {
                cli.Out.WriteLine(accountValue is null ? "No keys." : $"No keys for account {accountValue}.");
                return ExitCodes.Success;
            }

            var table = new TextTable("KEY_ID", "ACCOUNT", "NAME", "ROLE", "STATUS", "CREATED", "RPM", "TPM", "CONCURRENCY", "BUDGET", "MODELS").AlignRight(6, 7, 8);
            foreach (var key in keys)
            {
                table.Add(
                    key.KeyId,
                    key.Account,
                    key.Name,
                    key.Role,
                    Status(key),
                    key.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
                    key.RequestsPerMinute == 0 ? "-" : CliValues.Format(key.RequestsPerMinute),
                    key.TokensPerMinute == 0 ? "-" : CliValues.Format(key.TokensPerMinute),
                    key.MaxConcurrentStreams == 0 ? "-" : CliValues.Format(key.MaxConcurrentStreams),
                    key.MonthlyBudget is { } budget ? $"{CliValues.Format(budget)} {key.BudgetCurrency}" : "-",
                    key.AllowedModels.Count == 0 ? "*" : string.Join(',', key.AllowedModels));
            }

            table.Write(cli.Out);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Revoke(CliContext cli)
    {
        var keyId = new Argument<string>("KEYID") { Description = "The key id shown by 'keys list' (or, for a leaked key, the key itself)." };
        var command = new Command("revoke", "Disable a key. Gateways stop accepting it within the auth cache TTL (30 s by default).") { keyId };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = ToKeyId(result.GetValue(keyId));
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var record = await session.Keys.FindByKeyIdAsync(id, cancellationToken) ?? throw NotFound(id);
            if (!record.Enabled)
            {
                // Revoking again would move RevokedAt; keep the original time.
                cli.Out.WriteLine($"Key {id} \"{record.Name}\" of account {record.Account} was already revoked.");
                return ExitCodes.Success;
            }

            if (!await session.Keys.RevokeAsync(id, cancellationToken))
            {
                throw NotFound(id);
            }

            var ttl = session.Options.Auth.CacheTtl.TotalSeconds.ToString("0", CultureInfo.InvariantCulture);
            cli.Out.WriteLine($"Revoked key {id} \"{record.Name}\" of account {record.Account}. Gateways stop accepting it within {ttl} s.");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command SetLimits(CliContext cli)
    {
        var keyId = new Argument<string>("KEYID") { Description = "The key id shown by 'keys list'." };
        var limits = new KeyLimitOptions(allowClear: true);
        var command = new Command("set-limits", "Change a key's limits; limits not given stay as they are.") { keyId };
        limits.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var id = ToKeyId(result.GetValue(keyId));
            var keyLimits = limits.Read(result)
                ?? throw new CliException("nothing to change: give at least one of --rpm, --tpm, --concurrency, --budget, --no-budget, --budget-currency, --models");
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var updated = await session.Keys.SetLimitsAsync(id, keyLimits, cancellationToken) ?? throw NotFound(id);
            cli.Out.WriteLine($"Key {updated.KeyId} \"{updated.Name}\" of account {updated.Account}: {DescribeLimits(updated)}.");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static CliException NotFound(string keyId) => new($"no key with id {keyId}");

    /// <summary>
    /// Accepts a key id (16 hex digits) or a whole key (also pasted in quotes or as <c>Bearer sk-mel-…</c>), which is
    /// hashed here and never stored or printed. A value that is neither is echoed in the error only when it cannot be
    /// a secret.
    /// </summary>
    private static string ToKeyId(string? value)
    {
        var text = Unquote(value);
        if (text.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            text = Unquote(text["Bearer ".Length..]);
        }

        if (text.StartsWith(ApiKeys.Prefix, StringComparison.Ordinal))
        {
            return ApiKeys.KeyIdFromHash(ApiKeys.Hash(text));
        }

        if (text.Length != 16 || !text.All(char.IsAsciiHexDigit))
        {
            var got = text.Contains("sk-", StringComparison.OrdinalIgnoreCase) || text.Length > 40
                ? $"a value of {text.Length} characters, not shown as it may hold a key"
                : $"'{text}'";
            throw new CliException($"KEYID must be the 16 hex digits shown by 'keys list', or the whole sk-mel- key (got {got})");
        }

        return text.ToLowerInvariant();
    }

    private static string Unquote(string? value) => (value ?? "").Trim().Trim('"', '\'').Trim();

    private static string Status(ApiKeyRecord key) => key.Enabled
        ? "enabled"
        : key.RevokedAt is { } revoked ? "revoked " + revoked.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : "disabled";

    internal static string DescribeLimits(ApiKeyRecord key) => string.Join(", ",
        key.RequestsPerMinute == 0 ? "rpm unlimited" : $"rpm {key.RequestsPerMinute}",
        key.TokensPerMinute == 0 ? "tpm unlimited" : $"tpm {key.TokensPerMinute}",
        key.MaxConcurrentStreams == 0 ? "concurrency unlimited" : $"concurrency {key.MaxConcurrentStreams}",
        key.MonthlyBudget is { } budget ? $"budget {CliValues.Format(budget)} {key.BudgetCurrency}/month" : "no budget",
        key.AllowedModels.Count == 0 ? "all models" : "models " + string.Join(',', key.AllowedModels));

    private static void WriteJson(System.Text.Json.Utf8JsonWriter json, ApiKeyRecord key)
    {
        json.WriteStartObject();
        json.WriteString("key_id", key.KeyId);
        json.WriteString("account", key.Account);
        json.WriteString("name", key.Name);
        json.WriteString("role", key.Role);
        json.WriteBoolean("enabled", key.Enabled);
        json.WriteString("created_at", key.CreatedAt.ToUniversalTime());
        if (key.RevokedAt is { } revoked)
        {
            json.WriteString("revoked_at", revoked.ToUniversalTime());
        }
        else
        {
            json.WriteNull("revoked_at");
        }

        json.WriteNumber("requests_per_minute", key.RequestsPerMinute);
        json.WriteNumber("tokens_per_minute", key.TokensPerMinute);
        json.WriteNumber("max_concurrent_streams", key.MaxConcurrentStreams);
        json.WriteStringOrNull("monthly_budget", key.MonthlyBudget is { } budget ? CliValues.Format(budget) : null);
        json.WriteString("budget_currency", key.BudgetCurrency);
        json.WriteStartArray("allowed_models");
        foreach (var pattern in key.AllowedModels)
        {
            json.WriteStringValue(pattern);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>The limit options shared by <c>create</c> and <c>set-limits</c>.</summary>
    private sealed class KeyLimitOptions(bool allowClear)
    {
        private readonly Option<string?> _rpm = new("--rpm") { Description = "Requests per minute; 0 = unlimited." };
        private readonly Option<string?> _tpm = new("--tpm") { Description = "Input plus output tokens per minute; 0 = unlimited." };
        private readonly Option<string?> _concurrency = new("--concurrency") { Description = "Concurrent requests (streams); 0 = unlimited." };
        private readonly Option<string?> _budget = new("--budget") { Description = "Monthly spend limit, a decimal such as 250.00." };
        private readonly Option<bool> _noBudget = new("--no-budget") { Description = "Remove the monthly spend limit." };
        private readonly Option<string?> _budgetCurrency = new("--budget-currency") { Description = "ISO 4217 currency of the budget (default USD)." };
        private readonly Option<string?> _models = new("--models") { Description = "Comma-separated model patterns the key may use (* wildcards); '' = all models." };

        public void AddTo(Command command)
        {
            command.Options.Add(_rpm);
            command.Options.Add(_tpm);
            command.Options.Add(_concurrency);
            command.Options.Add(_budget);
            if (allowClear)
            {
                command.Options.Add(_noBudget);
            }

            command.Options.Add(_budgetCurrency);
            command.Options.Add(_models);
        }

        /// <summary>The limits given on the command line, or null when none was.</summary>
        public KeyLimits? Read(ParseResult result)
        {
            var rpm = CliValues.Int(result.GetValue(_rpm), "--rpm", 0);
            var tpm = CliValues.Long(result.GetValue(_tpm), "--tpm", 0);
            var concurrency = CliValues.Int(result.GetValue(_concurrency), "--concurrency", 0);
            var budget = CliValues.NonNegativeDecimal(result.GetValue(_budget), "--budget");
            var clearBudget = allowClear && result.GetValue(_noBudget);
            if (clearBudget && budget is not null)
            {
                throw new CliException("--budget and --no-budget cannot be used together");
            }

            var currency = CliValues.Currency(result.GetValue(_budgetCurrency), "--budget-currency");
            var models = CliValues.Patterns(result.GetValue(_models));
            if (rpm is null && tpm is null && concurrency is null && budget is null && !clearBudget && currency is null && models is null)
            {
                return null;
            }

            return new KeyLimits(rpm, concurrency, budget, currency, models, clearBudget, tpm);
        }
    }
}
