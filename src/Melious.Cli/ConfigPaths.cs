namespace Melious.Cli;

/// <summary>
/// Where the per-user config file lives: <c>%APPDATA%\melious\config.json</c> on Windows, else
/// <c>$XDG_CONFIG_HOME/melious/config.json</c> or <c>~/.config/melious/config.json</c>. A pure function of its inputs
/// (linked into the functional tests, which check every branch on any OS).
/// </summary>
public static class ConfigPaths
{
    public static string ConfigFile(bool windows, string? appData, string? xdgConfigHome, string home)
    {
        if (windows)
        {
            // An empty ApplicationData folder (a stripped service profile): the default roaming folder.
            var root = string.IsNullOrEmpty(appData) ? Path.Combine(home, "AppData", "Roaming") : appData;
            return Path.Combine(root, "melious", "config.json");
        }

        return Path.Combine(string.IsNullOrEmpty(xdgConfigHome) ? Path.Combine(home, ".config") : xdgConfigHome, "melious", "config.json");
    }
}
