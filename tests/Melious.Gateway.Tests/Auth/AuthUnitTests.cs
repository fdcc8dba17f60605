using Melious.Gateway.Auth;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Tests.Auth;

public sealed class AuthUnitTests
{
    [Fact]
    public void Generate_MakesPrefixedHighEntropyKeys()
    {
        var keys = Enumerable.Range(0, 1000).Select(_ => ApiKeys.Generate()).ToList();
        Assert.All(keys, k => Assert.StartsWith("sk-mel-", k, StringComparison.Ordinal));
        Assert.All(keys, k => Assert.Equal(50, k.Length));
        Assert.Equal(keys.Count, keys.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Hash_IsSha256Hex_AndKeyIdIsItsPrefix()
    {
        var hash = ApiKeys.Hash("sk-mel-abc");
        Assert.Equal(64, hash.Length);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("sk-mel-abc"u8)), hash);
        Assert.Equal(hash[..16], ApiKeys.KeyIdFromHash(hash));
        Assert.True(ApiKeys.HashesEqual(hash, ApiKeys.Hash("sk-mel-abc")));
        Assert.False(ApiKeys.HashesEqual(hash, ApiKeys.Hash("sk-mel-abd")));
    }

    [Theory]
    [InlineData("*", "anything", true)]
    [InlineData("qwen3-*", "qwen3-coder", true)]
    [InlineData("qwen3-*", "llama", false)]
    [InlineData("*sonnet*", "claude-sonnet-4-5", true)]
    [InlineData("claude-haiku-4-5", "CLAUDE-HAIKU-4-5", true)]
    [InlineData("claude-haiku-4-5", "claude-haiku-4-5-2025", false)]
    [InlineData("*-fp8", "deepseek-v3-fp8", true)]
    [InlineData("*-fp8", "deepseek-v3-fp8-x", false)]
    public void ModelPatterns_MatchWithWildcards(string pattern, string value, bool expected) =>
        Assert.Equal(expected, ModelPatterns.Matches(pattern, value));

    [Fact]
    public void ModelPatterns_AllowRequestedOrUpstreamName()
    {
        Assert.True(ModelPatterns.Allows(["gpt-oss-*"], "claude-opus-4-8", "gpt-oss-120b"));
        Assert.False(ModelPatterns.Allows(["gpt-oss-*"], "claude-opus-4-8", "qwen3"));
    }

    [Theory]
    [InlineData("acme", "acme")]
    [InlineData("Qwen/Qwen3-32B", "Qwen%2FQwen3-32B")]
    [InlineData("a|b#c?d\\e%f", "a%7Cb%23c%3Fd%5Ce%25f")]
    public void KeyEncoding_EscapesCharactersTablesForbid(string raw, string encoded) => Assert.Equal(encoded, KeyEncoding.Encode(raw));

    [Theory]
    [InlineData("""{"device_id":"d","account_uuid":"","session_id":"e5731b20-a588-48a3-b01f-ca2c7ab69080"}""", "e5731b20-a588-48a3-b01f-ca2c7ab69080")]
    [InlineData("user_abc_account_123_session_5f2c7a1e-0000-4000-8000-000000000001", "5f2c7a1e-0000-4000-8000-000000000001")]
    [InlineData("""{"session_id":"bad id with spaces"}""", null)]
    [InlineData("plain-user", null)]
    public void SessionId_ComesFromClaudeCodeMetadata(string userId, string? expected)
    {
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary();
        Assert.Equal(expected, UsageRecorder.SessionFrom(headers, userId));
    }

    [Fact]
    public void SessionId_HeaderWins()
    {
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary { ["x-claude-code-session-id"] = "from-header" };
        Assert.Equal("from-header", UsageRecorder.SessionFrom(headers, """{"session_id":"from-body"}"""));
    }
}
