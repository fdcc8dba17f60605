using System.CommandLine;

namespace Melious.Admin;

/// <summary>The <c>--format</c> option; the first format is the default.</summary>
internal static class Formats
{
    public static Option<string> Option(params string[] formats)
    {
        var option = new Option<string>("--format")
        {
            Description = "Output format: " + string.Join(", ", formats) + ".",
            DefaultValueFactory = _ => formats[0],
        };
        option.AcceptOnlyFromAmong(formats);
        return option;
    }
}
