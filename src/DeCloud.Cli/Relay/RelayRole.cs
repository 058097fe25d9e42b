using System.Globalization;
using System.Net;
using DeCloud.Relay;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Cli.Relay;

/// <summary>
/// Settings of the standalone relay role (configuration section <c>Relay</c>): where the control listener is, which
/// public ports it hands out, where mappings are kept, and how nodes authenticate. Validated at start; every
/// message names the setting.
/// </summary>
internal sealed class RelayRoleOptions
{
    public const string SectionName = "Relay";

    /// <summary>host:port of the control listener nodes dial (port 0 picks a free one). Default <c>0.0.0.0:7835</c>.</summary>
    public string ControlEndpoint { get; set; } = "0.0.0.0:7835";

    /// <summary>The address public ports are bound on. Default: the control listener's address.</summary>
    public string? PublicAddress { get; set; }

    /// <summary>The host reported to nodes for their public ports. Default: the public address.</summary>
    public string? PublicHost { get; set; }

    /// <summary>Public port range, <c>first-last</c>. Default <c>40000-65535</c>.</summary>
    public string PortRange { get; set; } = "40000-65535";

    /// <summary>The SQLite file of mappings (same ports after reconnects and restarts). Default <c>decloud-relay/relay.db</c>.</summary>
    public string DatabasePath { get; set; } = Path.Combine("decloud-relay", "relay.db");

    /// <summary>A file holding the secret every node shares (HMAC challenge; at least 16 bytes; hex if it is hex, else its text).</summary>
    public string? SecretFile { get; set; }

    /// <summary>The shared secret itself (prefer <see cref="SecretFile"/>; <c>DECLOUD_Relay__Secret</c> in the environment).</summary>
    public string? Secret { get; set; }

    /// <summary>A file with one <c>node-id secret</c> line per node (per-node HMAC secrets; <c>#</c> starts a comment).</summary>
    public string? NodeSecretsFile { get; set; }

    /// <summary>Most public ports one node may hold. Default 64.</summary>
    public int MaxPortsPerNode { get; set; } = 64;

    /// <summary>Turns these settings into the relay server's options and authenticator; throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public (RelayServerOptions Server, IRelayAuthenticator Authenticator) Build()
    {
        if (!TryParseEndpoint(ControlEndpoint, out var control))
        {
            throw new ArgumentException($"Relay:{nameof(ControlEndpoint)} '{ControlEndpoint}' must be address:port, e.g. 0.0.0.0:7835 (port 0 picks a free one).");
        }

        var publicAddress = control.Address;
        if (PublicAddress is not null && !IPAddress.TryParse(PublicAddress, out publicAddress))
        {
            throw new ArgumentException($"Relay:{nameof(PublicAddress)} '{PublicAddress}' must be an IP address.");
        }

        var dash = PortRange.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || !int.TryParse(PortRange.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !int.TryParse(PortRange.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            || first is < 1 or > 65535 || last < first || last > 65535)
        {
            throw new ArgumentException($"Relay:{nameof(PortRange)} '{PortRange}' must be first-last within 1-65535, e.g. 40000-65535.");
        }

        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw new ArgumentException($"Relay:{nameof(DatabasePath)} must name the SQLite file of mappings.");
        }

        var server = new RelayServerOptions
        {
            ControlEndPoint = control,
            PublicAddress = publicAddress!,
            PublicHost = PublicHost,
            PortRangeStart = first,
            PortRangeEnd = last,
            MaxPortsPerNode = MaxPortsPerNode,
            DatabasePath = Path.GetFullPath(DatabasePath),
        };
        server.Validate();
        return (server, Authenticator());
    }

    private IRelayAuthenticator Authenticator()
    {
        var sources = (SecretFile is null ? 0 : 1) + (Secret is null ? 0 : 1) + (NodeSecretsFile is null ? 0 : 1);
        if (sources != 1)
        {
            throw new ArgumentException($"Relay: set exactly one of {nameof(SecretFile)}, {nameof(Secret)} or {nameof(NodeSecretsFile)} (nodes authenticate with an HMAC challenge); {sources} are set.");
        }

        if (NodeSecretsFile is not null)
        {
            var secrets = ReadNodeSecrets(NodeSecretsFile);
            return new HmacChallengeAuthenticator(node => secrets.TryGetValue(node, out var s) ? s : null);
        }

        var text = Secret ?? ReadFile(SecretFile!, nameof(SecretFile));
        return new HmacChallengeAuthenticator(SecretBytes(text, SecretFile is null ? nameof(Secret) : nameof(SecretFile)));
    }

    /// <summary>The secret's bytes: hex text decodes, anything else is its UTF-8; at least 16 bytes.</summary>
    internal static byte[] SecretBytes(string text, string setting)
    {
        text = text.Trim();
        var bytes = text.Length % 2 == 0 && text.Length > 0 && text.All(char.IsAsciiHexDigit) ? Convert.FromHexString(text) : System.Text.Encoding.UTF8.GetBytes(text);
        if (bytes.Length < 16)
        {
            throw new ArgumentException($"Relay:{setting} is {bytes.Length} bytes; a relay secret needs at least 16.");
        }

        return bytes;
    }

    private static Dictionary<string, byte[]> ReadNodeSecrets(string path)
    {
        var map = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var n = 0;
        foreach (var raw in ReadFile(path, nameof(NodeSecretsFile)).Split('\n'))
        {
            n++;
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !map.TryAdd(parts[0], SecretBytes(parts[1], $"{nameof(NodeSecretsFile)} line {n}")))
            {
                throw new ArgumentException($"Relay:{nameof(NodeSecretsFile)} line {n} must be 'node-id secret' with each node once.");
            }
        }

        return map.Count > 0 ? map : throw new ArgumentException($"Relay:{nameof(NodeSecretsFile)} '{path}' names no node.");
    }

    private static string ReadFile(string path, string setting)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"Relay:{setting} '{path}' cannot be read: {ex.Message}", ex);
        }
    }

    private static bool TryParseEndpoint(string text, out IPEndPoint endpoint) =>
        IPEndPoint.TryParse(text, out endpoint!) && endpoint.Port is >= 0 and <= 65535 && text.Contains(':', StringComparison.Ordinal);
}

/// <summary>Builds the standalone relay host: a <see cref="RelayServer"/> from configuration, started and stopped with the host.</summary>
internal static class RelayRole
{
    public static IHost Create(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args });
        builder.Configuration.AddEnvironmentVariables("DECLOUD_");
        var role = builder.Configuration.GetSection(RelayRoleOptions.SectionName).Get<RelayRoleOptions>() ?? new RelayRoleOptions();
        var (server, authenticator) = role.Build();
        Directory.CreateDirectory(Path.GetDirectoryName(server.DatabasePath!)!);
        builder.Services.AddSingleton(authenticator);
        builder.Services.AddDeCloudRelayServer(o =>
        {
            o.ControlEndPoint = server.ControlEndPoint;
            o.PublicAddress = server.PublicAddress;
            o.PublicHost = server.PublicHost;
            o.PortRangeStart = server.PortRangeStart;
            o.PortRangeEnd = server.PortRangeEnd;
            o.MaxPortsPerNode = server.MaxPortsPerNode;
            o.DatabasePath = server.DatabasePath;
        });
        return builder.Build();
    }
}
