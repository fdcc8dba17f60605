using Melious.Cli;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// Where <c>melious login</c> stores the URL and key: every platform's branch of <see cref="ConfigPaths"/> (the CLI's
/// own source file, linked in), and, for real, <c>XDG_CONFIG_HOME</c> honoured by the executable.
/// </summary>
public sealed class ConfigPathTests(AzuriteFixture azurite)
{
    [Fact]
    public void Windows_UsesAppData_IgnoringXdgAndHome()
    {
        const string AppData = @"C:\Users\ana\AppData\Roaming";
        Assert.Equal(Path.Combine(AppData, "melious", "config.json"), ConfigPaths.ConfigFile(windows: true, AppData, "/xdg", @"C:\Users\ana"));

        // No ApplicationData folder: the profile's default roaming folder.
        Assert.Equal(Path.Combine(@"C:\Users\ana", "AppData", "Roaming", "melious", "config.json"), ConfigPaths.ConfigFile(windows: true, "", null, @"C:\Users\ana"));
    }

    [Fact]
    public void Unix_UsesXdgConfigHome_ElseDotConfig()
    {
        Assert.Equal(Path.Combine("/xdg", "melious", "config.json"), ConfigPaths.ConfigFile(windows: false, null, "/xdg", "/home/ana"));
        Assert.Equal(Path.Combine("/home/ana", ".config", "melious", "config.json"), ConfigPaths.ConfigFile(windows: false, null, "", "/home/ana"));
        Assert.Equal(Path.Combine("/home/ana", ".config", "melious", "config.json"), ConfigPaths.ConfigFile(windows: false, "/ignored", null, "/home/ana"));
    }

    [Fact]
    public async Task Login_HonoursXdgConfigHome()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        var xdg = Path.Combine(box.Home, "xdg-config");
        box.Environment["XDG_CONFIG_HOME"] = xdg;
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        var file = Path.Combine(xdg, "melious", "config.json");
        Assert.True(File.Exists(file), "no config file under XDG_CONFIG_HOME");
        Assert.False(File.Exists(box.ConfigFile), "the file went to ~/.config despite XDG_CONFIG_HOME");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        var status = await box.RunAsync("status");
        Assert.True(status.ExitCode == 0, status.Describe());
    }
}
