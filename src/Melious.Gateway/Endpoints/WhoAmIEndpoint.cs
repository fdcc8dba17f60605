using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.Protocol.Anthropic;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>GET /v1/me</c>: the account, key id, key name and role of the presented key, authenticated like
/// <c>/v1/messages</c> (same 401/403/503 answers).
/// </summary>
public sealed class WhoAmIEndpoint(ApiKeyAuthenticator authenticator, TimeProvider time)
{
    public async Task HandleAsync(HttpContext http)
    {
        RequestContext.Start(http, time);
        var auth = await authenticator.AuthenticateAsync(http.Request.Headers, http.RequestAborted);
        if (auth.Status != AuthStatus.Ok)
        {
            await ErrorWriter.WriteAsync(http, MessagesEndpoint.AuthError(auth));
            return;
        }

        var key = auth.Key!;
        var body = JsonSerializer.SerializeToUtf8Bytes(new WhoAmI
        {
            Account = key.Account,
            KeyId = key.KeyId,
            KeyName = key.Name,
            Role = key.Role,
            CreatedAt = key.CreatedAt,
        }, AnthropicJsonContext.Default.WhoAmI);
        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        http.Response.Headers.CacheControl = "no-store";
        http.Response.ContentLength = body.Length;
        if (!HttpMethods.IsHead(http.Request.Method))
        {
            await http.Response.Body.WriteAsync(body, http.RequestAborted);
        }
    }
}
