using System.Text;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// Requests as the worker hands them to a function: an ASP.NET Core <see cref="HttpContext"/>. The response body
/// is a <see cref="MemoryStream"/> (the default is Stream.Null) so the test can read what the core wrote.
/// </summary>
internal static class TestRequests
{
    public static DefaultHttpContext Create(IServiceProvider services, string method, string path, string? json = null, string? apiKey = null)
    {
        var http = new DefaultHttpContext { RequestServices = services };
        http.Request.Method = method;
        http.Request.Scheme = "https";
        http.Request.Host = new HostString("func-test.azurewebsites.net");
        http.Request.Path = path;
        http.Request.Headers["anthropic-version"] = "2023-06-01";
        if (apiKey is not null)
        {
            http.Request.Headers["x-api-key"] = apiKey;
        }

        if (json is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(json);
            http.Request.ContentType = "application/json";
            http.Request.ContentLength = bytes.Length;
            http.Request.Body = new MemoryStream(bytes);
        }

        http.Response.Body = new MemoryStream();
        return http;
    }

    public static string ResponseText(HttpContext http) => Encoding.UTF8.GetString(((MemoryStream)http.Response.Body).ToArray());
}
