using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>protocol.md §D.4 case 16: OpenAI function names are <c>^[a-zA-Z0-9_-]{1,64}$</c>; the rewrite is reversible.</summary>
public sealed class ToolNameMapTests
{
    private const string Long80 = "mcp__plugin_playwright_playwright__browser_take_screenshot_of_full_page_viewport";

    [Theory]
    [InlineData("Bash")]
    [InlineData("mcp__github__create_issue")]
    [InlineData("a-b_c-1")]
    public void Valid_names_pass_unchanged(string name)
    {
        var map = new ToolNameMap();
        Assert.Equal(name, map.ToUpstream(name));
        Assert.Equal(name, map.ToOriginal(name));
    }

    [Theory]
    [InlineData(Long80, "mcp__plugin_playwright_playwright__browser_take_screens_2948b739")]
    [InlineData("mcp__my.server__do thing", "mcp__my_server__do_thing_bf4d12b6")]
    public void Other_names_get_a_short_valid_hashed_name_that_maps_back(string name, string expected)
    {
        Assert.Equal(80, Long80.Length);
        var map = new ToolNameMap();
        var upstream = map.ToUpstream(name);
        Assert.Equal(expected, upstream);
        Assert.Matches("^[a-zA-Z0-9_-]{1,64}$", upstream);
        Assert.Equal(name, map.ToOriginal(upstream));

        // Deterministic across requests (prefix caching), and idempotent within one.
        Assert.Equal(upstream, new ToolNameMap().ToUpstream(name));
        Assert.Equal(upstream, map.ToUpstream(name));
    }

    [Fact]
    public void Names_that_share_a_prefix_stay_distinct()
    {
        var map = new ToolNameMap();
        var a = map.ToUpstream(Long80 + "_a");
        var b = map.ToUpstream(Long80 + "_b");
        Assert.NotEqual(a, b);
        Assert.Equal(Long80 + "_a", map.ToOriginal(a));
        Assert.Equal(Long80 + "_b", map.ToOriginal(b));
    }

    [Fact]
    public void An_unknown_upstream_name_is_returned_as_is()
    {
        Assert.Equal("Hallucinated", new ToolNameMap().ToOriginal("Hallucinated"));
    }
}
