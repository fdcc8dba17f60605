using System.Globalization;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Dashboard;

/// <summary>
/// Known usage written through the gateway's own <see cref="UsageWriter"/> into Azurite: two customer accounts
/// (acme with two user keys, globex with one), an admin key of account <c>finance</c>, three upstream models,
/// two requested models, Claude Code sessions, two currencies, errors, cancellations and unknown energy, on the
/// last three UTC days and on a day of last month. With a <c>tag</c>, the account names (and so the session ids) end in
/// it, so seeds in one shared storage (the Functions host's, shared by the run) do not see each other's accounts.
/// </summary>
public sealed class UsageSeed
{
    private UsageSeed(IServiceProvider services, DateOnly today, string tag)
    {
        Services = services;
        Today = today;
        Acme = "acme" + tag;
        Globex = "globex" + tag;
        Finance = "finance" + tag;
    }

    public string Acme { get; }

    public string Globex { get; }

    public string Finance { get; }

    public string AcmeSession1 => $"sess-{Acme}-1";

    public string AcmeSession2 => $"sess-{Acme}-2";

    public string GlobexSession => $"sess-{Globex}-1";

    public IServiceProvider Services { get; }

    public DateOnly Today { get; }

    public DateOnly LastMonthDay => new DateOnly(Today.Year, Today.Month, 1).AddMonths(-1).AddDays(3);

    public string AcmeKey { get; private set; } = "";

    public string AcmeSecondKey { get; private set; } = "";

    public string GlobexKey { get; private set; } = "";

    public string AdminKey { get; private set; } = "";

    public List<UsageEvent> Events { get; } = [];

    public static string KeyId(string key) => ApiKeys.KeyIdFromHash(ApiKeys.Hash(key));

    /// <summary>Creates the keys and writes the events (with one redelivery, which must change nothing).</summary>
    public static async Task<UsageSeed> WriteAsync(IServiceProvider services, CancellationToken cancellationToken, string? tag = null)
    {
        var seed = new UsageSeed(services, DateOnly.FromDateTime(DateTime.UtcNow), tag ?? "");
        var keys = services.GetRequiredService<ApiKeyStore>();
        seed.AcmeKey = (await keys.CreateAsync(seed.Acme, "alice laptop", null, cancellationToken)).Key;
        seed.AcmeSecondKey = (await keys.CreateAsync(seed.Acme, "ci runner", null, cancellationToken)).Key;
        seed.GlobexKey = (await keys.CreateAsync(seed.Globex, "bob", null, cancellationToken)).Key;
        seed.AdminKey = (await keys.CreateAsync(seed.Finance, "cfo", null, cancellationToken, KeyRoles.Admin)).Key;

        var random = new Random(20261205);
        string[] upstream = ["qwen3-coder-480b", "glm-4.6", "gpt-oss-120b"];
        string[] requested = ["claude-sonnet-4-5", "claude-haiku-4-5"];
        string[] sessions = [seed.AcmeSession1, seed.AcmeSession2, seed.GlobexSession];
        var acmeKeys = new[] { KeyId(seed.AcmeKey), KeyId(seed.AcmeSecondKey) };
        for (var i = 0; i < 36; i++)
        {
            var account = i % 4 == 1 ? seed.Globex : seed.Acme;
            var day = i < 33 ? seed.Today.AddDays(-(i % 3)) : seed.LastMonthDay;
            var knownEnergy = i % 7 != 0;
            var energy = knownEnergy ? Math.Round(0.05 + random.NextDouble() * 2, 6) : (double?)null;
            var started = day.ToDateTime(new TimeOnly(0, 0), DateTimeKind.Utc).AddMinutes(5 + i * 7);
            if (day == seed.Today && started > DateTime.UtcNow)
            {
                started = DateTime.UtcNow.AddSeconds(-36 + i);
            }

            seed.Events.Add(new UsageEvent
            {
                RequestId = Ids.NewRequestId(),
                Account = account,
                KeyId = account == seed.Acme ? acmeKeys[i % 2] : KeyId(seed.GlobexKey),
                SessionId = account == seed.Globex ? sessions[2] : i % 4 == 3 ? null : sessions[(i / 4) % 2],
                RequestedModel = requested[i % 2],
                UpstreamModel = upstream[(i / 2) % 3],
                Upstream = "http://127.0.0.1:8000/v1",
                Stream = true,
                InputTokens = random.Next(10, 40_000),
                CacheReadTokens = random.Next(0, 20_000),
                CacheWriteTokens = random.Next(0, 4_000),
                OutputTokens = random.Next(1, 6_000),
                ReasoningTokens = random.Next(0, 800),
                StartedAt = new DateTimeOffset(started, TimeSpan.Zero),
                TtftMs = 100 + i,
                DurationMs = random.Next(200, 30_000),
                Status = i % 10 == 4 ? 502 : 200,
                ErrorType = i % 10 == 4 ? "api_error" : null,
                Cancelled = i % 11 == 6,
                Currency = i % 5 == 2 ? "EUR" : "USD",
                CostNanos = random.NextInt64(1, 3_000_000_000),
                PriceVersion = "test-1",
                EnergyWh = energy,
                EnergyWhMin = energy / 2,
                EnergyWhMax = energy * 2,
                Gco2e = energy * 0.3,
                Gco2eMin = energy * 0.1,
                Gco2eMax = energy * 0.6,
                WaterMl = energy * 1.5,
                Region = "westeurope",
                GridGco2ePerKwh = 250,
                Pue = 1.2,
                EnergyMethod = knownEnergy ? "melious-energy-1" : EnergyModel.UnknownMethod,
            });
        }

        var writer = services.GetRequiredService<UsageWriter>();
        await writer.WriteAsync(seed.Events.Take(20).ToList(), cancellationToken);
        await writer.WriteAsync(seed.Events.Skip(20).ToList(), cancellationToken);
        await writer.WriteAsync(seed.Events.Skip(15).Take(6).ToList(), cancellationToken);
        return seed;
    }

    public IEnumerable<UsageEvent> In(DateOnly from, DateOnly to, string? account = null) =>
        Events.Where(e => (account is null || e.Account == account) && DateOnly.FromDateTime(e.StartedAt.UtcDateTime) >= from && DateOnly.FromDateTime(e.StartedAt.UtcDateTime) <= to);

    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
