namespace DeCloud.Agent.Security;

/// <summary>
/// Settings of the agent's connect-token check (configuration section <c>Agent:Authorization</c>).
/// Validated at start; every message names the property.
/// </summary>
public sealed class AgentAuthorizationOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Agent:Authorization";

    /// <summary>
    /// Where the local <c>POST /authorize</c> endpoint listens (HTTP/1.1, loopback only: it is for the host's own
    /// gates such as sshd's <c>AuthorizedKeysCommand</c>, the web terminal or a reverse proxy's auth request).
    /// Port 0 picks a free port (logged at start); empty turns the endpoint off. Default <c>http://127.0.0.1:0</c>.
    /// </summary>
    public string ListenUrl { get; set; } = "http://127.0.0.1:0";

    /// <summary>How often the orchestrator's public key set is fetched again. Default 10 min.</summary>
    public TimeSpan KeySetRefreshInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The shortest time between two fetches caused by a token signed with a key the agent does not know
    /// (a rotation it has not seen yet), so junk tokens cannot make it hammer the orchestrator. Default 5 s.
    /// </summary>
    public TimeSpan UnknownKeyRefetchInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Checks every setting; returns the problems found, each naming its property.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!string.IsNullOrEmpty(ListenUrl)
            && (!Uri.TryCreate(ListenUrl, UriKind.Absolute, out var u) || u.Scheme != "http" || !System.Net.IPAddress.TryParse(u.Host.Trim('[', ']'), out var ip)
                || !System.Net.IPAddress.IsLoopback(ip)))
        {
            errors.Add($"{nameof(ListenUrl)} '{ListenUrl}' must be an http URL on a loopback address, e.g. http://127.0.0.1:7836 (or empty to turn the endpoint off).");
        }

        if (KeySetRefreshInterval < TimeSpan.FromSeconds(1) || KeySetRefreshInterval > TimeSpan.FromDays(1))
        {
            errors.Add($"{nameof(KeySetRefreshInterval)} is {KeySetRefreshInterval}; it must be between 1 s and 1 day.");
        }

        if (UnknownKeyRefetchInterval < TimeSpan.Zero || UnknownKeyRefetchInterval > TimeSpan.FromHours(1))
        {
            errors.Add($"{nameof(UnknownKeyRefetchInterval)} is {UnknownKeyRefetchInterval}; it must be between 0 and 1 hour.");
        }

        return errors;
    }
}
