using System.Text.Json;

namespace Melious.Cli;

/// <summary>Where a setting came from.</summary>
public enum Source
{
    None,
    Environment,
    File,
}

/// <summary>
/// The gateway URL and key: <c>MELIOUS_BASE_URL</c> / <c>MELIOUS_API_KEY</c> first, then the per-user file
/// (<c>$XDG_CONFIG_HOME/melious/config.json</c> or <c>~/.config/melious/config.json</c>, mode 0600; on Windows
/// <c>%APPDATA%\melious\config.json</c>).
/// </summary>
public sealed class UserConfig
{
    public const string BaseUrlVariable = "MELIOUS_BASE_URL";
    public const string ApiKeyVariable = "MELIOUS_API_KEY";

    public string? BaseUrl { get; private init; }

    public Source BaseUrlSource { get; private init; }

    public string? ApiKey { get; private init; }

    public Source ApiKeySource { get; private init; }

    public static string FilePath => ConfigPaths.ConfigFile(
        OperatingSystem.IsWindows(),
        OperatingSystem.IsWindows() ? Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData) : null,
        Environment.GetEnvironmentVariable("XDG_CONFIG_HOME"),
        Home);

    /// <summary>The user's home directory (<c>HOME</c>, else the platform's profile folder).</summary>
    public static string Home => Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home
        ? home
        : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    public static ConfigFile? ReadFile()
    {
        var path = FilePath;
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), CliJson.Default.ConfigFile);
        }
        catch (JsonException ex)
        {
            throw new CliException($"{path} is not valid JSON ({ex.Message}); run `melious login` again");
        }
    }

    public static UserConfig Load()
    {
        var file = ReadFile();
        var envUrl = Environment.GetEnvironmentVariable(BaseUrlVariable);
        var envKey = Environment.GetEnvironmentVariable(ApiKeyVariable);
        return new UserConfig
        {
            BaseUrl = !string.IsNullOrWhiteSpace(envUrl) ? NormalizeBaseUrl(envUrl) : file?.BaseUrl,
            BaseUrlSource = !string.IsNullOrWhiteSpace(envUrl) ? Source.Environment : file?.BaseUrl is null ? Source.None : Source.File,
            ApiKey = !string.IsNullOrWhiteSpace(envKey) ? envKey.Trim() : file?.ApiKey,
            ApiKeySource = !string.IsNullOrWhiteSpace(envKey) ? Source.Environment : file?.ApiKey is null ? Source.None : Source.File,
        };
    }

    /// <summary>The URL and key, or a message telling the user to log in.</summary>
    public (string BaseUrl, string ApiKey) Require()
    {
        if (BaseUrl is null || ApiKey is null)
        {
            throw new CliException($"not logged in: run `melious login` (or set {BaseUrlVariable} and {ApiKeyVariable})");
        }

        return (BaseUrl, ApiKey);
    }

    /// <summary>Writes the file, readable by its owner only (0600 in a 0700 directory on Unix).</summary>
    public static void Save(ConfigFile config)
    {
        var path = FilePath;
        var directory = Path.GetDirectoryName(path)!;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var json = JsonSerializer.Serialize(config, CliJson.Default.ConfigFile);
        var temporary = path + ".tmp";
        File.Delete(temporary);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(json);
        }

        File.Move(temporary, path, overwrite: true);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    public static bool Delete()
    {
        var path = FilePath;
        if (!File.Exists(path))
        {
            return false;
        }

        File.Delete(path);
        return true;
    }

    /// <summary>The gateway root: no trailing slash and never <c>/v1</c> (Claude Code and the SDKs append it).</summary>
    public static string NormalizeBaseUrl(string url)
    {
        var value = url.Trim().TrimEnd('/');
        if (value.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            value = value[..^3].TrimEnd('/');
        }

        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException($"not an http(s) URL: {url}");
        }

        return value;
    }
}

/// <summary>A failure to report as one line on stderr.</summary>
public sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
