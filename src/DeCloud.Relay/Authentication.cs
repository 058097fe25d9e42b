using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace DeCloud.Relay;

/// <summary>What the relay knows when a node asks to open a tunnel.</summary>
/// <param name="NodeId">The node id the tunnel claims.</param>
/// <param name="Challenge">The fresh random challenge the relay sent on this connection.</param>
/// <param name="Proof">The node's answer: an HMAC, a signed token, or whatever the host's scheme uses.</param>
/// <param name="RemoteEndPoint">Where the tunnel connection comes from.</param>
public sealed record RelayAuthenticationContext(string NodeId, ReadOnlyMemory<byte> Challenge, ReadOnlyMemory<byte> Proof, IPEndPoint? RemoteEndPoint);

/// <summary>The relay's decision on a tunnel.</summary>
public readonly record struct RelayAuthenticationResult
{
    private RelayAuthenticationResult(bool succeeded, string reason)
    {
        Succeeded = succeeded;
        Reason = reason;
    }

    /// <summary>True when the node may open the tunnel.</summary>
    public bool Succeeded { get; }

    /// <summary>Why the node was refused (sent to the node and logged).</summary>
    public string Reason { get; }

    /// <summary>Accepts the node.</summary>
    public static RelayAuthenticationResult Success() => new(true, string.Empty);

    /// <summary>Refuses the node with a reason.</summary>
    public static RelayAuthenticationResult Fail(string reason) => new(false, reason);
}

/// <summary>Decides, on the relay, whether a node may open a tunnel. Plug in tokens, certificates or an ACL.</summary>
public interface IRelayAuthenticator
{
    /// <summary>Checks the node's proof against the challenge.</summary>
    ValueTask<RelayAuthenticationResult> AuthenticateAsync(RelayAuthenticationContext context, CancellationToken cancellationToken = default);
}

/// <summary>Produces, on the node, the proof answering the relay's challenge.</summary>
public interface IRelayCredentials
{
    /// <summary>Computes the proof for <paramref name="challenge"/> on behalf of <paramref name="nodeId"/>.</summary>
    ValueTask<ReadOnlyMemory<byte>> CreateProofAsync(string nodeId, ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default);
}

/// <summary>
/// The built-in scheme: the proof is HMAC-SHA256(secret, "decloud-relay-v1" || challenge || node id), compared in
/// constant time. The secret is shared by all nodes or looked up per node.
/// </summary>
public sealed class HmacChallengeAuthenticator : IRelayAuthenticator
{
    private readonly Func<string, byte[]?> _secretFor;

    /// <summary>One secret for every node (at least 16 bytes).</summary>
    public HmacChallengeAuthenticator(byte[] sharedSecret)
    {
        HmacChallenge.ValidateSecret(sharedSecret, nameof(sharedSecret));
        var copy = sharedSecret.ToArray();
        _secretFor = _ => copy;
    }

    /// <summary>A secret per node; return null for unknown nodes.</summary>
    public HmacChallengeAuthenticator(Func<string, byte[]?> secretForNode)
    {
        ArgumentNullException.ThrowIfNull(secretForNode);
        _secretFor = secretForNode;
    }

    /// <inheritdoc />
    public ValueTask<RelayAuthenticationResult> AuthenticateAsync(RelayAuthenticationContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var secret = _secretFor(context.NodeId);
        if (secret is null || secret.Length == 0)
        {
            return ValueTask.FromResult(RelayAuthenticationResult.Fail($"unknown node '{context.NodeId}'"));
        }

        var expected = HmacChallenge.Compute(secret, context.NodeId, context.Challenge.Span);
        return ValueTask.FromResult(CryptographicOperations.FixedTimeEquals(expected, context.Proof.Span)
            ? RelayAuthenticationResult.Success()
            : RelayAuthenticationResult.Fail("wrong secret (HMAC proof does not match)"));
    }
}

/// <summary>The node side of <see cref="HmacChallengeAuthenticator"/>.</summary>
public sealed class HmacChallengeCredentials : IRelayCredentials
{
    private readonly byte[] _secret;

    /// <summary>Creates credentials from the node's secret (at least 16 bytes).</summary>
    public HmacChallengeCredentials(byte[] secret)
    {
        HmacChallenge.ValidateSecret(secret, nameof(secret));
        _secret = secret.ToArray();
    }

    /// <inheritdoc />
    public ValueTask<ReadOnlyMemory<byte>> CreateProofAsync(string nodeId, ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        return ValueTask.FromResult<ReadOnlyMemory<byte>>(HmacChallenge.Compute(_secret, nodeId, challenge.Span));
    }
}

internal static class HmacChallenge
{
    private static ReadOnlySpan<byte> Label => "decloud-relay-v1"u8;

    public static void ValidateSecret(byte[] secret, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(secret, parameterName);
        if (secret.Length < 16)
        {
            throw new ArgumentException($"The relay secret has {secret.Length} bytes; use at least 16 random bytes.", parameterName);
        }
    }

    public static byte[] Compute(byte[] secret, string nodeId, ReadOnlySpan<byte> challenge)
    {
        var node = Encoding.UTF8.GetBytes(nodeId);
        var message = new byte[Label.Length + challenge.Length + node.Length];
        Label.CopyTo(message);
        challenge.CopyTo(message.AsSpan(Label.Length));
        node.CopyTo(message.AsSpan(Label.Length + challenge.Length));
        return HMACSHA256.HashData(secret, message);
    }
}
