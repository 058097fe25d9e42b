namespace DeCloud.Orchestrator;

/// <summary>
/// Settings of the reference orchestrator (configuration section <c>Orchestrator</c>).
/// Validated at start; every message names the property.
/// </summary>
public sealed class OrchestratorOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Orchestrator";

    /// <summary>Where the HTTP JSON API listens (HTTP/1.1). Port 0 picks a free port. Default <c>http://127.0.0.1:5080</c>.</summary>
    public string ApiUrl { get; set; } = "http://127.0.0.1:5080";

    /// <summary>Where agents' gRPC streams connect (cleartext HTTP/2). Port 0 picks a free port. Default <c>http://127.0.0.1:5081</c>.</summary>
    public string AgentUrl { get; set; } = "http://127.0.0.1:5081";

    /// <summary>Folder for the SQLite database (<c>orchestrator.db</c>). Created if missing.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>How often agents send heartbeats (told to each agent at registration). Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A node with no heartbeat for this long is marked offline. Default 20 s.</summary>
    public TimeSpan OfflineAfter { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>How far a registration's issue time may be from the orchestrator's clock. Default 5 min.</summary>
    public TimeSpan RegistrationClockSkew { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Lifetime of a sign-in session. Default 12 h.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Lifetime of a sign-in nonce. Default 10 min.</summary>
    public TimeSpan NonceLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The lowest public port handed out for VM services. Default 40000.</summary>
    public int PublicPortMin { get; set; } = 40000;

    /// <summary>The highest public port handed out for VM services. Default 65535.</summary>
    public int PublicPortMax { get; set; } = 65535;

    /// <summary>The domain shown in sign-in messages. Default <c>localhost</c>.</summary>
    public string SignInDomain { get; set; } = "localhost";

    /// <summary>
    /// The URI sign-in messages name (its origin must match what wallets sign); default <c>http://</c> + <see cref="SignInDomain"/>.
    /// </summary>
    public string? SignInUri { get; set; }

    /// <summary>The chain id sign-in messages must name. Default 137 (Polygon).</summary>
    public long SignInChainId { get; set; } = 137;

    /// <summary>
    /// How old the token signing key may get before it is rotated (the previous key keeps verifying for an hour).
    /// Default 30 days; at least 1 s.
    /// </summary>
    public TimeSpan SigningKeyLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Checks every setting; returns the problems found, each naming its property.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        foreach (var (name, value) in new[] { (nameof(ApiUrl), ApiUrl), (nameof(AgentUrl), AgentUrl) })
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var u) || u.Scheme != "http" || u.Port < 0)
            {
                errors.Add($"{name} '{value}' must be an http URL with a port, e.g. http://127.0.0.1:5080.");
            }
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            errors.Add($"{nameof(DataDirectory)} must name a folder for the SQLite database.");
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(50) || HeartbeatInterval > TimeSpan.FromMinutes(5))
        {
            errors.Add($"{nameof(HeartbeatInterval)} is {HeartbeatInterval}; it must be between 50 ms and 5 min.");
        }

        if (OfflineAfter <= HeartbeatInterval)
        {
            errors.Add($"{nameof(OfflineAfter)} is {OfflineAfter}; it must be longer than {nameof(HeartbeatInterval)} ({HeartbeatInterval}).");
        }

        if (RegistrationClockSkew <= TimeSpan.Zero)
        {
            errors.Add($"{nameof(RegistrationClockSkew)} is {RegistrationClockSkew}; it must be positive.");
        }

        if (SessionLifetime <= TimeSpan.Zero || NonceLifetime <= TimeSpan.Zero)
        {
            errors.Add($"{nameof(SessionLifetime)} and {nameof(NonceLifetime)} must be positive.");
        }

        if (PublicPortMin < 1024 || PublicPortMax > 65535 || PublicPortMin > PublicPortMax)
        {
            errors.Add($"{nameof(PublicPortMin)}..{nameof(PublicPortMax)} is {PublicPortMin}..{PublicPortMax}; it must be a range within 1024..65535.");
        }

        if (string.IsNullOrWhiteSpace(SignInDomain))
        {
            errors.Add($"{nameof(SignInDomain)} must not be empty.");
        }

        if (SignInUri is not null && !Uri.TryCreate(SignInUri, UriKind.Absolute, out _))
        {
            errors.Add($"{nameof(SignInUri)} '{SignInUri}' must be an absolute URI such as https://app.decloud.example.");
        }

        if (SigningKeyLifetime < TimeSpan.FromSeconds(1) || SigningKeyLifetime > TimeSpan.FromDays(365))
        {
            errors.Add($"{nameof(SigningKeyLifetime)} is {SigningKeyLifetime}; it must be between 1 s and 365 days.");
        }

        if (SignInChainId <= 0)
        {
            errors.Add($"{nameof(SignInChainId)} {SignInChainId} must be a positive chain id (137 is Polygon).");
        }

        return errors;
    }
}
