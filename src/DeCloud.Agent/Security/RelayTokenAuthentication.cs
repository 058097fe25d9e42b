using System.Text;
using DeCloud.Agent.Control;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using DeCloud.Relay;
using Microsoft.Extensions.Logging;

namespace DeCloud.Agent.Security;

/// <summary>
/// The proof a NAT'd node answers its relay's challenge with: <c>relay-token LF signature</c> (UTF-8), where the relay
/// token is the orchestrator-signed node token addressed to the relay (subject the node, audience the relay's node id)
/// and the signature is the operator wallet's EIP-191 <c>personal_sign</c> of <see cref="TextToSign"/>, so a token seen
/// on the wire cannot be replayed on another connection (each carries a fresh challenge).
/// </summary>
internal static class RelayTokenProof
{
    /// <summary>The largest proof accepted (a token of at most 4096 characters plus a signature).</summary>
    public const int MaxBytes = 4096;

    public static string TextToSign(string relayId, string nodeId, ReadOnlySpan<byte> challenge) =>
        $"decloud-relay-token-v1\nrelay:{relayId}\nnode:{nodeId}\nchallenge:{Convert.ToHexStringLower(challenge)}";

    public static byte[] Encode(string token, string signature) => Encoding.UTF8.GetBytes(token + "\n" + signature);

    public static bool TryDecode(ReadOnlySpan<byte> proof, out string token, out string signature)
    {
        token = signature = string.Empty;
        var lf = proof.IndexOf((byte)'\n');
        if (proof.Length > MaxBytes || lf <= 0 || proof[(lf + 1)..].IndexOf((byte)'\n') >= 0 || !proof.StartsWith("v4.public."u8))
        {
            return false;
        }

        token = Encoding.ASCII.GetString(proof[..lf]);
        signature = Encoding.ASCII.GetString(proof[(lf + 1)..]);
        return IsSignature(signature);
    }

    // 0x + 65 bytes (r || s || v) in lower-case hex; PersonalSign checks the rest (v 27 or 28, range, low S).
    private static bool IsSignature(string text)
    {
        if (text.Length != 132 || !text.StartsWith("0x", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in text.AsSpan(2))
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return text[^2..] is "00" or "01" or "1b" or "1c";
    }
}

/// <summary>
/// The agent's relay role's tunnel check: the node must present a relay token the orchestrator issued to exactly that
/// node for exactly this relay (valid signature from the orchestrator's key set, audience this node, unexpired), and
/// sign this connection's challenge with the operator wallet the token names. The tunnel's node id must be the token's
/// subject, so a node can only open its own tunnel and hold its own mappings. Every refusal is logged with its reason.
/// </summary>
internal sealed partial class RelayTokenAuthenticator(ConnectAuthorizer authorizer, ILogger<RelayTokenAuthenticator> logger) : IRelayAuthenticator
{
    public async ValueTask<RelayAuthenticationResult> AuthenticateAsync(RelayAuthenticationContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!RelayTokenProof.TryDecode(context.Proof.Span, out var token, out var signature))
        {
            return Refuse(context, "the proof is not a relay token with a wallet signature; this relay accepts only tunnels with the orchestrator's relay token");
        }

        var result = await authorizer.ValidateRelayTokenAsync(token, cancellationToken).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return Refuse(context, $"relay token refused ({result.Status}): {result.Reason}");
        }

        var claims = result.Claims!;
        if (!string.Equals(claims.Node.Value, context.NodeId, StringComparison.Ordinal))
        {
            return Refuse(context, $"the relay token is for node {claims.Node.Value}, not for the node the tunnel claims");
        }

        if (claims.Role != NodeRole.Agent)
        {
            return Refuse(context, $"the relay token is for a {claims.Role} node; only agents tunnel through a relay");
        }

        if (!PersonalSign.TryRecoverSigner(RelayTokenProof.TextToSign(authorizer.Audience, context.NodeId, context.Challenge.Span), signature, out var signer, out var signatureError))
        {
            return Refuse(context, "the challenge signature is unusable: " + signatureError);
        }

        if (signer != claims.OperatorWallet)
        {
            return Refuse(context, "the challenge was not signed by the operator wallet the relay token names");
        }

        Log.Accepted(logger, context.NodeId, claims.TokenId, claims.ExpiresAt);
        return RelayAuthenticationResult.Success();
    }

    private RelayAuthenticationResult Refuse(RelayAuthenticationContext context, string reason)
    {
        Log.Refused(logger, context.NodeId, context.RemoteEndPoint?.ToString() ?? "?", reason);
        return RelayAuthenticationResult.Fail(reason);
    }

    private static partial class Log
    {
        [LoggerMessage(1410, LogLevel.Information, "Relay tunnel of node {NodeId} authenticated with relay token {TokenId} (expires {ExpiresAt:O}).")]
        public static partial void Accepted(ILogger logger, string nodeId, Guid tokenId, DateTimeOffset expiresAt);

        [LoggerMessage(1411, LogLevel.Warning, "Relay tunnel claiming node {NodeId} from {Remote} refused: {Reason}")]
        public static partial void Refused(ILogger logger, string nodeId, string remote, string reason);
    }
}

/// <summary>
/// The NAT'd node's side: answers the relay's challenge with the newest relay token the orchestrator sent (in its
/// <c>RelayAssignment</c>, renewed by <c>RelayTokenRenewal</c>) and the operator wallet's signature of the challenge.
/// </summary>
internal sealed class RelayTokenCredentials(AgentIdentity identity) : IRelayCredentials
{
    private volatile RelayTokenGrant? _current;

    /// <summary>The relay the current token is for, or null before the first assignment.</summary>
    public string? RelayNodeId => _current?.RelayNodeId;

    /// <summary>Uses <paramref name="token"/> (addressed to <paramref name="relayNodeId"/>) from now on; tunnels reconnect with it.</summary>
    public void Update(string relayNodeId, string token)
    {
        ArgumentException.ThrowIfNullOrEmpty(relayNodeId);
        ArgumentException.ThrowIfNullOrEmpty(token);
        _current = new RelayTokenGrant(relayNodeId, token);
    }

    public ValueTask<ReadOnlyMemory<byte>> CreateProofAsync(string nodeId, ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default)
    {
        var grant = _current ?? throw new IOException("no relay token from the orchestrator yet; the relay would refuse the tunnel.");
        var signature = identity.SignText(RelayTokenProof.TextToSign(grant.RelayNodeId, nodeId, challenge.Span));
        return ValueTask.FromResult<ReadOnlyMemory<byte>>(RelayTokenProof.Encode(grant.Token, signature));
    }

    private sealed record RelayTokenGrant(string RelayNodeId, string Token);
}
