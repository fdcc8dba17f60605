using System.CommandLine;
using System.Globalization;
using Azure.Data.Tables;
using Melious.Gateway.Usage;

namespace Melious.Admin;

/// <summary>
/// <c>usage report|reconcile|replay-poison</c>: totals from the rollups, a check of the rollups against the billing
/// rows, and the poison queue's messages sent back for another try.
/// </summary>
internal static class UsageCommands
{
    /// <summary>
    /// What reconcile compares: every counter the rollups keep that the billing row also carries (the energy figures are
    /// in the energy rows). The cost parts are compared as the writer counted them (CostSplit.FromEvent).
    /// </summary>
    private static readonly string[] Columns =
    [
        "requests", "error_requests", "cancelled_requests", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "cost_nanos", "input_cost_nanos", "output_cost_nanos", "cache_read_cost_nanos", "cache_write_cost_nanos",
        "web_search_cost_nanos", "unsplit_cost_nanos", "web_search_requests",
    ];

    public static Command Create(CliContext cli) => new("usage", "Usage reports and reconciliation.")
    {
        Report(cli),
        Reconcile(cli),
        ReplayPoison(cli),
    };

    /// <summary>Messages taken from the poison queue per receive (the queue service's maximum).</summary>
    private const int ReceiveBatch = 32;

    private static Command ReplayPoison(CliContext cli)
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Only count the messages in the poison queue." };
        var command = new Command(
            "replay-poison",
            "Send the usage messages in the poison queue back to the usage queue (after fixing what failed them). Each is sent before it is removed, so a message is never lost; writing one twice counts it once.")
        {
            dryRun,
        };
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var usage = session.Options.Usage;
            var poison = session.Storage.Queue(usage.PoisonQueueName);
            if (!(await poison.ExistsAsync(cancellationToken)).Value)
            {
                cli.Out.WriteLine($"No poison queue ({usage.PoisonQueueName}): nothing to replay.");
                return ExitCodes.Success;
            }

            if (result.GetValue(dryRun))
            {
                var count = (await poison.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
                cli.Out.WriteLine($"{count} messages in {usage.PoisonQueueName} (approximate); nothing was moved.");
                return ExitCodes.Success;
            }

            var queue = session.Storage.Queue(usage.QueueName);
            await queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            var moved = 0;
            while (true)
            {
                // Invisible to other readers while this run moves them; a message this run could not move reappears.
                var batch = (await poison.ReceiveMessagesAsync(ReceiveBatch, TimeSpan.FromMinutes(2), cancellationToken)).Value;
                if (batch.Length == 0)
                {
                    break;
                }

                foreach (var message in batch)
                {
                    await queue.SendMessageAsync(message.Body, cancellationToken: CancellationToken.None);
                    await poison.DeleteMessageAsync(message.MessageId, message.PopReceipt, CancellationToken.None);
                    moved++;
                }
            }

            cli.Out.WriteLine($"Moved {moved} messages from {usage.PoisonQueueName} to {usage.QueueName}.");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Report(CliContext cli)
    {
        var range = new RangeOptions();
        var by = new Option<string>("--by") { Description = "Group by day, model (upstream model) or session (Claude Code session id).", DefaultValueFactory = _ => "day" };
        by.AcceptOnlyFromAmong("day", "model", "session");
        var format = Formats.Option("table", "csv", "json");
        var command = new Command("report", "Totals per day, model or session and per currency, with a TOTAL line per currency.") { by, format };
        range.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var (from, to, account) = range.Read(result);
            var groupBy = result.GetRequiredValue(by);
            await using var session = await cli.ConnectAsync(result, cancellationToken);
            var items = new List<(string Key, string Currency, UsageCounters Totals)>();
            if (groupBy == "session")
            {
                await foreach (var row in session.Usage.ReadSessionsAsync(from, to, account, cancellationToken: cancellationToken))
                {
                    items.Add((row.SessionId, row.Currency, row.Totals));
                }
            }
            else
            {
                await foreach (var row in session.Usage.ReadDailyAsync(from, to, account, cancellationToken))
                {
                    items.Add((groupBy == "day" ? row.Day : row.Model, row.Currency, row.Totals));
                }
            }

            var report = UsageReport.Build(from, to, groupBy, account, items);
            switch (result.GetRequiredValue(format))
            {
                case "json":
                    JsonOutput.Write(cli.Out, report.WriteJson);
                    break;
                case "csv":
                    report.WriteCsv(cli.Out);
                    break;
                default:
                    report.WriteTable(cli.Out);
                    break;
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Reconcile(CliContext cli)
    {
        var range = new RangeOptions();
        var command = new Command(
            "reconcile",
            "Compare the usagedaily rollups with the sums of the billing rows per day, account, model and currency. Exit code 0 when equal, 2 when not.");
        range.AddTo(command);
        command.SetAction(cli.Action(async (result, cancellationToken) =>
        {
            var (from, to, account) = range.Read(result);
            await using var session = await cli.ConnectAsync(result, cancellationToken);

            var daily = new Dictionary<GroupKey, long[]>();
            await foreach (var row in session.Usage.ReadDailyAsync(from, to, account, cancellationToken))
            {
                Add(daily, new GroupKey(row.Day, row.Account, row.Model, row.Currency.ToUpperInvariant()), FromCounters(row.Totals));
            }

            var billing = new Dictionary<GroupKey, long[]>();
            await foreach (var row in session.Usage.ReadBillingAsync(from, to, account, cancellationToken))
            {
                // Counted as the rollup counted its event: through the writer's own UsageCounters.From.
                var e = UsageRows.BillingEvent(row);
                Add(billing, BillingKey(row, e), FromCounters(UsageCounters.From(e)));
            }

            var keys = daily.Keys.Union(billing.Keys).Order().ToList();
            var differences = new TextTable("DAY", "ACCOUNT", "MODEL", "CURRENCY", "COLUMN", "USAGEDAILY", "BILLING", "DIFFERENCE").AlignRight(5, 6, 7);
            var differing = 0;
            foreach (var key in keys)
            {
                var rollup = daily.GetValueOrDefault(key) ?? new long[Columns.Length];
                var rows = billing.GetValueOrDefault(key) ?? new long[Columns.Length];
                var differs = false;
                for (var i = 0; i < Columns.Length; i++)
                {
                    if (rollup[i] != rows[i])
                    {
                        differs = true;
                        differences.Add(
                            key.Day, key.Account, key.Model, key.Currency, Columns[i],
                            daily.ContainsKey(key) ? CliValues.Format(rollup[i]) : "(no row)",
                            billing.ContainsKey(key) ? CliValues.Format(rows[i]) : "(no rows)",
                            (rollup[i] - rows[i]).ToString("+#;-#;0", CultureInfo.InvariantCulture));
                    }
                }

                differing += differs ? 1 : 0;
            }

            var requests = billing.Values.Sum(v => v[0]);
            var scope = $"{CliValues.Format(from)} to {CliValues.Format(to)}{(account is null ? "" : ", account " + account)}";
            if (differing == 0)
            {
                cli.Out.WriteLine($"OK: usagedaily equals the billing rows for {scope}: {keys.Count} day/account/model group(s), {requests} request(s).");
                return ExitCodes.Success;
            }

            differences.Write(cli.Out);
            cli.Out.WriteLine($"MISMATCH: {differing} of {keys.Count} day/account/model group(s) differ for {scope}.");
            return ExitCodes.Differences;
        }));
        return command;
    }

    private static void Add(Dictionary<GroupKey, long[]> sums, GroupKey key, long[] values)
    {
        if (!sums.TryGetValue(key, out var sum))
        {
            sums[key] = values;
            return;
        }

        for (var i = 0; i < sum.Length; i++)
        {
            sum[i] += values[i];
        }
    }

    private static long[] FromCounters(UsageCounters t) =>
    [
        t.Requests, t.ErrorRequests, t.CancelledRequests, t.InputTokens, t.CacheReadTokens, t.CacheWriteTokens, t.OutputTokens,
        t.ReasoningTokens, t.CostNanos, t.InputCostNanos, t.OutputCostNanos, t.CacheReadCostNanos, t.CacheWriteCostNanos,
        t.WebSearchCostNanos, t.UnsplitCostNanos, t.WebSearchRequests,
    ];

    /// <summary>The day is the partition's date (<c>{account}|{yyyy-MM-dd}</c>): the same day the rollup used.</summary>
    private static GroupKey BillingKey(TableEntity row, UsageEvent e)
    {
        var separator = row.PartitionKey.LastIndexOf('|');
        var day = separator >= 0 ? row.PartitionKey[(separator + 1)..] : "";
        return new GroupKey(day, e.Account, e.UpstreamModel, e.Currency.ToUpperInvariant());
    }

    private readonly record struct GroupKey(string Day, string Account, string Model, string Currency) : IComparable<GroupKey>
    {
        public int CompareTo(GroupKey other)
        {
            var c = string.CompareOrdinal(Day, other.Day);
            c = c != 0 ? c : string.CompareOrdinal(Account, other.Account);
            c = c != 0 ? c : string.CompareOrdinal(Model, other.Model);
            return c != 0 ? c : string.CompareOrdinal(Currency, other.Currency);
        }
    }

    /// <summary><c>--from</c>, <c>--to</c> (inclusive UTC days) and <c>--account</c>.</summary>
    private sealed class RangeOptions
    {
        private readonly Option<string> _from = new("--from") { Description = "First day, YYYY-MM-DD (UTC).", Required = true };
        private readonly Option<string> _to = new("--to") { Description = "Last day, YYYY-MM-DD (UTC, inclusive).", Required = true };
        private readonly Option<string?> _account = new("--account") { Description = "Only this account." };

        public void AddTo(Command command)
        {
            command.Options.Add(_from);
            command.Options.Add(_to);
            command.Options.Add(_account);
        }

        public (DateOnly From, DateOnly To, string? Account) Read(ParseResult result)
        {
            var (from, to) = CliValues.DateRange(result.GetValue(_from), result.GetValue(_to));
            return (from, to, CliValues.OptionalAccount(result.GetValue(_account)));
        }
    }
}
