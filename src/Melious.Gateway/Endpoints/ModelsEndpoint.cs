using System.Globalization;
using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>GET /v1/models</c> and <c>GET /v1/models/{id}</c> in Anthropic's list shape. The list holds, in order: one
/// <c>claude-{tier}</c> id per configured tier, the explicit aliases, the catalog models, then one discovery alias
/// (<c>claude-melious-&lt;model&gt;</c>) per catalog model, named by its display name. Ids containing <c>claude</c> (or
/// <c>anthropic</c>) are what Claude Code's gateway model discovery keeps. <c>?include_meta=true</c> adds <c>_meta</c>
/// (capabilities, context window, max output). Pagination: <c>limit</c> (default 20, max 1000), <c>after_id</c>, <c>before_id</c>;
/// <c>has_more</c> says whether entries remain in the direction of the request (before the page with <c>before_id</c>).
/// </summary>
public sealed class ModelsEndpoint(ApiKeyAuthenticator authenticator, ModelCatalog catalog, TimeProvider time)
{
    private static readonly string CreatedAt = "2025-01-01T00:00:00Z";

    public async Task ListAsync(HttpContext http)
    {
        RequestContext.Start(http, time);
        if (await AuthenticateAsync(http) is false)
        {
            return;
        }

        var query = http.Request.Query;
        var includeMeta = IsTrue(query["include_meta"]);
        var all = Entries(catalog.Current, includeMeta);
        var limit = int.TryParse(query["limit"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? Math.Clamp(l, 1, 1000) : 20;
        // The window [floor, end) the cursors leave; the page is its first `limit` entries, or with before_id its last.
        var floor = 0;
        var end = all.Count;
        if (query["after_id"].ToString() is { Length: > 0 } after)
        {
            floor = all.FindIndex(m => string.Equals(m.Id, after, StringComparison.OrdinalIgnoreCase)) + 1;
        }

        var start = floor;
        var backward = false;
        if (query["before_id"].ToString() is { Length: > 0 } before)
        {
            var index = all.FindIndex(m => string.Equals(m.Id, before, StringComparison.OrdinalIgnoreCase));
            end = index < 0 ? end : index;
            start = Math.Max(floor, end - limit);
            backward = true;
        }

        var page = all.Skip(start).Take(Math.Min(limit, Math.Max(0, end - start))).ToList();
        var list = new ModelList
        {
            Data = page,

            // In the direction of the request (Anthropic's list APIs): the SDKs page backward with
            // before_id=first_id while has_more holds, forward with after_id=last_id.
            HasMore = backward ? start > floor : start + page.Count < end,
            FirstId = page.FirstOrDefault()?.Id,
            LastId = page.LastOrDefault()?.Id,
        };
        await WriteAsync(http, JsonSerializer.SerializeToUtf8Bytes(list, AnthropicJsonContext.Default.ModelList));
    }

    public async Task GetAsync(HttpContext http, string id)
    {
        RequestContext.Start(http, time);
        if (await AuthenticateAsync(http) is false)
        {
            return;
        }

        var snapshot = catalog.Current;
        var includeMeta = IsTrue(http.Request.Query["include_meta"]);
        var listed = Entries(snapshot, includeMeta).Find(m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase));
        if (listed is null)
        {
            // Any name the router would send to a tier resolves, too (claude-sonnet-4-5-20250929 and the like).
            var route = ModelRouter.Resolve(snapshot, id);
            if (route.Kind == RouteKind.PassThrough)
            {
                await ErrorWriter.WriteAsync(http, 404, "not_found_error", $"model: {id}");
                return;
            }

            listed = Info(id, $"{id} → {route.Model.Id}", route.Model, includeMeta);
        }

        await WriteAsync(http, JsonSerializer.SerializeToUtf8Bytes(listed, AnthropicJsonContext.Default.ModelInfo));
    }

    internal static List<ModelInfo> Entries(CatalogSnapshot snapshot, bool includeMeta)
    {
        var entries = new List<ModelInfo>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var tier in CatalogSnapshot.TierNames)
        {
            if (snapshot.Tiers.TryGetValue(tier, out var target))
            {
                var id = $"claude-{tier}";
                var model = snapshot.EntryOrPassThrough(target);
                if (seen.Add(id))
                {
                    entries.Add(Info(id, $"{char.ToUpperInvariant(tier[0])}{tier[1..]} → {model.DisplayName ?? model.Id}", model, includeMeta));
                }
            }
        }

        foreach (var (alias, target) in snapshot.Aliases.OrderBy(a => a.Key, StringComparer.OrdinalIgnoreCase))
        {
            var model = snapshot.EntryOrPassThrough(target);
            if (seen.Add(alias))
            {
                entries.Add(Info(alias, $"{alias} → {model.DisplayName ?? model.Id}", model, includeMeta));
            }
        }

        foreach (var model in snapshot.Models.Values.OrderBy(m => m.Id, StringComparer.OrdinalIgnoreCase))
        {
            if (seen.Add(model.Id))
            {
                entries.Add(Info(model.Id, model.DisplayName ?? model.Id, model, includeMeta));
            }
        }

        // Claude Code's gateway discovery lists only ids containing "claude": one such alias per catalog model.
        foreach (var (alias, target) in snapshot.DiscoveryAliases.OrderBy(a => a.Key, StringComparer.OrdinalIgnoreCase))
        {
            var model = snapshot.EntryOrPassThrough(target);
            if (seen.Add(alias))
            {
                entries.Add(Info(alias, model.DisplayName ?? model.Id, model, includeMeta));
            }
        }

        return entries;
    }

    private static ModelInfo Info(string id, string displayName, ModelEntry model, bool includeMeta) => new()
    {
        Id = id,
        DisplayName = displayName,
        CreatedAt = CreatedAt,
        MaxInputTokens = model.ContextWindow,
        MaxTokens = model.MaxOutputTokens,
        Meta = includeMeta
            ? new ModelMeta
            {
                Capabilities = new ModelCapabilities(model.ToolUse, model.Vision, model.Thinking),
                ContextWindow = model.ContextWindow,
                MaxOutputTokens = model.MaxOutputTokens,
                ResolvesTo = model.Id,
            }
            : null,
    };

    private async Task<bool> AuthenticateAsync(HttpContext http)
    {
        var auth = await authenticator.AuthenticateAsync(http.Request.Headers, http.RequestAborted);
        if (auth.Status == AuthStatus.Ok)
        {
            return true;
        }

        await ErrorWriter.WriteAsync(http, MessagesEndpoint.AuthError(auth));
        return false;
    }

    private static bool IsTrue(Microsoft.Extensions.Primitives.StringValues value) =>
        value.ToString() is "true" or "1" or "True";

    private static async Task WriteAsync(HttpContext http, byte[] body)
    {
        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        http.Response.ContentLength = body.Length;
        await http.Response.Body.WriteAsync(body, http.RequestAborted);
    }
}
