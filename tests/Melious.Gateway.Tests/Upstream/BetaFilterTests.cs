using Melious.Gateway.Upstream;
using Microsoft.Extensions.Primitives;

namespace Melious.Gateway.Tests.Upstream;

public sealed class BetaFilterTests
{
    private static readonly StringValues ClaudeCode = new(["claude-code-20250219,interleaved-thinking-2025-05-14, context-management-2025-06-27", "fine-grained-tool-streaming-2025-05-14", "claude-code-20250219"]);

    [Fact]
    public void Default_passes_all_split_trimmed_and_deduplicated()
    {
        Assert.Equal(["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27", "fine-grained-tool-streaming-2025-05-14"], BetaFilter.Select(ClaudeCode, null));
        Assert.Equal(4, BetaFilter.Select(ClaudeCode, "*").Count);
        Assert.Empty(BetaFilter.Select(StringValues.Empty, null));
    }

    [Fact]
    public void An_allow_list_keeps_only_its_betas_and_none_keeps_none()
    {
        Assert.Equal(["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"], BetaFilter.Select(ClaudeCode, " fine-grained-tool-streaming-2025-05-14 ,INTERLEAVED-thinking-2025-05-14"));
        Assert.Empty(BetaFilter.Select(ClaudeCode, "none"));
    }

    [Fact]
    public void A_400_naming_a_beta_says_which_and_how_to_allow_list()
    {
        var sent = BetaFilter.Select(ClaudeCode, null);
        var error = BetaFilter.Explain(new GatewayError(400, "invalid_request_error", "Unexpected value(s) `context-management-2025-06-27` for the `anthropic-beta` header"), sent, "kimi-k2");
        Assert.Equal(400, error.Status);
        Assert.Contains("'context-management-2025-06-27'", error.Message, StringComparison.Ordinal);
        Assert.Contains("melious-admin models set kimi-k2 --betas claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14", error.Message, StringComparison.Ordinal);

        var other = new GatewayError(400, "invalid_request_error", "max_tokens too large");
        Assert.Same(other, BetaFilter.Explain(other, sent, "kimi-k2"));
        var server = new GatewayError(502, "api_error", "context-management-2025-06-27 broke");
        Assert.Same(server, BetaFilter.Explain(server, sent, "kimi-k2"));
    }
}
