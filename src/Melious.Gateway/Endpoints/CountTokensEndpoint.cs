using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Tokens;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>POST /v1/messages/count_tokens</c>: answered locally from <see cref="TokenEstimator"/> (system, messages and
/// tool schemas, plus chat-template overhead), never by a billed upstream generation. Cheap enough for the bursts
/// of calls clients make.
/// </summary>
public sealed class CountTokensEndpoint(ApiKeyAuthenticator authenticator, RequestParser parser, TimeProvider time)
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

        var (body, readError, clientGone) = await RequestBodyReader.ReadAsync(http, parser.Limits.MaxBodyBytes, http.RequestAborted);
        using (body)
        {
            if (clientGone)
            {
                return;
            }

            if (readError is not null)
            {
                await ErrorWriter.WriteAsync(http, readError);
                return;
            }

            var (request, parseError) = parser.Parse(body!.WrittenMemory, requireMaxTokens: false);
            if (parseError is not null)
            {
                await ErrorWriter.WriteAsync(http, parseError);
                return;
            }

            var count = TokenEstimator.EstimateRequest(request!);
            http.Response.StatusCode = 200;
            http.Response.ContentType = "application/json";
            var bytes = JsonSerializer.SerializeToUtf8Bytes(new CountTokensResponse(count), AnthropicJsonContext.Default.CountTokensResponse);
            http.Response.ContentLength = bytes.Length;
            await http.Response.Body.WriteAsync(bytes, http.RequestAborted);
        }
    }
}
