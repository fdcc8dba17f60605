using Melious.Gateway.Auth;

namespace Melious.Gateway.Tests.Auth;

public sealed class KeyFormatTests
{
    private static readonly string Good = ApiKeys.Generate();

    [Fact]
    public void AMintedKey_HasNoProblem() => Assert.Null(KeyFormat.Problem(Good));

    [Theory]
    [InlineData("sk-ant-api03-whatever", "Anthropic API key")]
    [InlineData("sk-mel-abc", "looks truncated")]
    [InlineData("not-a-key", "not a Melious API key")]
    [InlineData("", "not a Melious API key")]
    public void Malformed_IsClassified(string key, string expected) =>
        Assert.Contains(expected, KeyFormat.Problem(key), StringComparison.Ordinal);

    [Fact]
    public void PrefixMissing_TooLong_BadCharacters_AreTold()
    {
        Assert.Equal(KeyFormat.MissingPrefixMessage, KeyFormat.Problem(Good[7..]));
        Assert.Contains("missing its sk-mel- prefix", KeyFormat.Problem(Good[3..]), StringComparison.Ordinal);
        Assert.Contains("too long", KeyFormat.Problem(Good + "x"), StringComparison.Ordinal);
        Assert.Contains("characters", KeyFormat.Problem(Good[..^1] + "-"), StringComparison.Ordinal);
    }

    [Fact]
    public void Messages_NeverContainTheKey()
    {
        foreach (var key in new[] { Good[..30], Good + "abc", Good[7..], "sk-ant-" + Good[7..], Good[..^1] + "!" })
        {
            var problem = KeyFormat.Problem(key)!;
            Assert.DoesNotContain(Good[7..15], problem, StringComparison.Ordinal);
            Assert.DoesNotContain(Good[^8..], problem, StringComparison.Ordinal);
        }
    }
}
