using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Orchestrator.Agents;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Security;

/// <summary>Settings of relay tokens (configuration section <c>Orchestrator:RelayTokens</c>); every message names the property.</summary>
internal sealed class RelayTokenOptions
{
    public const string SectionName = "Orchestrator:RelayTokens";

    /// <summary>How long a relay token is valid (10 s to 60 min, the key ring's node-token limit). Default 30 min; renewed when a third is left.</summary>
    public TimeSpan Lifetime { get; set; } = TimeSpan.FromMinutes(30);

    public IReadOnlyList<string> Validate() =>
        Lifetime < TimeSpan.FromSeconds(10) || Lifetime > TimeSpan.FromMinutes(60)
            ? [$"{SectionName}:{nameof(Lifetime)} is {Lifetime}; it must be between 10 s and 60 min."]
            : [];
}

/// <summary>Turns <see cref="RelayTokenOptions.Validate"/> into start-up failures.</summary>
internal sealed class RelayTokenOptionsValidator : IValidateOptions<RelayTokenOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayTokenOptions options)
    {
        var errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Relay tokens for NAT'd nodes: when the relay assigner gives a node a relay, <see cref="Issue"/> signs a token with the
/// key ring (Core's <see cref="TokenIssuer.IssueRelayToken"/>: subject the node, audience the relay's node id, the node's
/// operator wallet) that travels in the node's <c>RelayAssignment</c>. The relay checks it locally against the published
/// key set, so a node can only open its own tunnel. While the node stays connected, a fresh token goes out in a
/// <c>RelayTokenRenewal</c> once a third of the lifetime is left, so its tunnel can always reconnect; a node that was
/// away gets a new assignment and token when it registers again.
/// </summary>
internal sealed partial class RelayTokens(
    TokenIssuer issuer,
    AgentSessions sessions,
    IOptions<RelayTokenOptions> options,
    IMeterFactory meterFactory,
    TimeProvider time,
    ILogger<RelayTokens> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<NodeId, Held> _held = new();
    private readonly Counter<long> _issued = meterFactory.Create(OrchestratorMetrics.MeterName)
        .CreateCounter<long>("decloud.orchestrator.relay_tokens.issued", "{token}", "Relay tokens issued to NAT'd nodes, by reason (assign or renew).");

    /// <summary>A relay token for <paramref name="node"/> (run by <paramref name="operatorWallet"/>) to open its tunnel into <paramref name="relayNodeId"/>.</summary>
    public string Issue(NodeId node, WalletAddress operatorWallet, string relayNodeId) => IssueCore(node, operatorWallet, relayNodeId, "assign").Token;

    /// <summary>Sends a fresh token to every connected node whose token has a third of its lifetime left or less; returns how many.</summary>
    internal int RenewDue()
    {
        var lifetime = options.Value.Lifetime;
        var now = time.GetUtcNow();
        var renewed = 0;
        foreach (var (node, held) in _held)
        {
            if (held.ExpiresAt - now > lifetime / 3)
            {
                continue;
            }

            if (!sessions.IsConnected(node))
            {
                if (held.ExpiresAt <= now)
                {
                    _held.TryRemove(new KeyValuePair<NodeId, Held>(node, held));
                }

                continue;
            }

            var token = IssueCore(node, held.Wallet, held.RelayNodeId, "renew");
            var sent = sessions.TrySend(node, new OrchestratorMessage
            {
                RelayTokenRenewal = new RelayTokenRenewal
                {
                    RelayNodeId = held.RelayNodeId,
                    Token = token.Token,
                    ExpiresAtUnixMs = token.ExpiresAt.ToUnixTimeMilliseconds(),
                },
            });
            renewed += sent ? 1 : 0;
        }

        return renewed;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var check = TimeSpan.FromTicks(Math.Clamp(options.Value.Lifetime.Ticks / 6, TimeSpan.FromSeconds(1).Ticks, TimeSpan.FromMinutes(5).Ticks));
        using var timer = new PeriodicTimer(check, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                RenewDue();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private IssuedToken IssueCore(NodeId node, WalletAddress wallet, string relayNodeId, string reason)
    {
        var token = issuer.IssueRelayToken(node, wallet, relayNodeId, options.Value.Lifetime);
        _held[node] = new Held(wallet, relayNodeId, token.ExpiresAt);
        _issued.Add(1, new KeyValuePair<string, object?>("reason", reason));
        Log.Issued(logger, reason, node.Value, relayNodeId, token.TokenId, token.ExpiresAt);
        return token;
    }

    private sealed record Held(WalletAddress Wallet, string RelayNodeId, DateTimeOffset ExpiresAt);

    private static partial class Log
    {
        [LoggerMessage(910, LogLevel.Information, "Relay token ({Reason}) for node {NodeId} to relay {RelayNodeId}: {TokenId}, expires {ExpiresAt:O}.")]
        public static partial void Issued(ILogger logger, string reason, string nodeId, string relayNodeId, Guid tokenId, DateTimeOffset expiresAt);
    }
}
