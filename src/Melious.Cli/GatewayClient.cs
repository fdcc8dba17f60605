using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Melious.Gateway.Reporting;

namespace Melious.Cli;

/// <summary>A refusal or failure from the gateway, with its own message.</summary>
public sealed class GatewayException(HttpStatusCode? status, string message) : Exception(message)
{
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>The gateway's HTTP API with the user's key (sent as <c>Authorization: Bearer</c>, like Claude Code).</summary>
public sealed class GatewayClient : IDisposable
{
    private readonly HttpClient _http;

    public GatewayClient(string baseUrl, string? apiKey)
    {
        BaseUrl = baseUrl;
        _http = new HttpClient { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("melious-cli/0.1");
        if (apiKey is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
    }

    public string BaseUrl { get; }

    /// <summary>All models (tiers, aliases, catalog) with their metadata.</summary>
    public async Task<List<GatewayModel>> ModelsAsync(CancellationToken cancellationToken)
    {
        var list = await GetAsync("v1/models?include_meta=true&limit=1000", CliJson.Default.GatewayModelList, cancellationToken);
        return list.Data;
    }

    public Task<GatewayModel> ModelAsync(string id, CancellationToken cancellationToken) =>
        GetAsync($"v1/models/{Uri.EscapeDataString(id)}?include_meta=true", CliJson.Default.GatewayModel, cancellationToken);

    public Task<WhoAmI> WhoAmIAsync(CancellationToken cancellationToken) => GetAsync("v1/me", CliJson.Default.WhoAmI, cancellationToken);

    /// <summary>One page of <c>GET /v1/organizations/usage_report/messages</c>; <paramref name="query"/> without the leading <c>?</c>.</summary>
    public Task<UsageReportPage> UsageReportAsync(string query, CancellationToken cancellationToken) =>
        GetAsync("v1/organizations/usage_report/messages?" + query, UsageApiJsonContext.Default.UsageReportPage, cancellationToken);

    /// <summary><c>GET /v1/usage/sessions</c>.</summary>
    public Task<SessionList> UsageSessionsAsync(string query, CancellationToken cancellationToken) =>
        GetAsync("v1/usage/sessions?" + query, UsageApiJsonContext.Default.SessionList, cancellationToken);

    /// <summary>True when the gateway answers <c>GET /</c> at all (any status).</summary>
    public async Task<(bool Reachable, string Detail)> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _http.GetAsync("", cancellationToken);
            return (true, $"HTTP {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return (false, Describe(ex));
        }
    }

    private async Task<T> GetAsync<T>(string path, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.GetAsync(path, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new GatewayException(null, $"cannot reach the gateway at {BaseUrl}: {Describe(ex)}");
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw new GatewayException(response.StatusCode, ErrorMessage(response.StatusCode, body));
            }

            try
            {
                return JsonSerializer.Deserialize(body, type) ?? throw new JsonException("null");
            }
            catch (JsonException)
            {
                throw new GatewayException(response.StatusCode, $"{BaseUrl} answered {path} with something that is not the gateway's JSON; is this the gateway's root URL?");
            }
        }
    }

    private static string ErrorMessage(HttpStatusCode status, string body)
    {
        string? message = null;
        try
        {
            message = JsonSerializer.Deserialize(body, CliJson.Default.GatewayErrorBody)?.Error?.Message;
        }
        catch (JsonException)
        {
        }

        var code = (int)status;
        return code switch
        {
            401 => $"the gateway refused the key (401): {message ?? "invalid API key"}",
            403 => $"the gateway refused the key (403): {message ?? "forbidden"}",
            404 => $"not found (404): {message ?? "is the base URL the gateway's root?"}",
            _ => $"the gateway answered {code}: {message ?? Truncate(body)}",
        };
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";

    private static string Describe(Exception ex) => ex switch
    {
        TaskCanceledException => "timed out",
        HttpRequestException { InnerException: { } inner } => inner.Message,
        _ => ex.Message,
    };

    public void Dispose() => _http.Dispose();
}
