using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using DeCloud.Agent.Security;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;

namespace DeCloud.Agent.Storage;

/// <summary>What a source node presents before it streams a volume: the move token and the move it claims to be.</summary>
/// <param name="Token">The move token (PASETO v4.public, kind <c>move</c>, audience the destination node).</param>
/// <param name="VmId">The VM the volume belongs to.</param>
/// <param name="Volume">The volume.</param>
/// <param name="MoveId">The orchestrator's move id.</param>
internal sealed record MoveTicket(string Token, string VmId, string Volume, string MoveId);

/// <summary>
/// The preamble in front of DeCloud.Storage's move wire on a connection to an agent's volume receiver.
/// Request: <c>"DCMT"</c>, version byte 1, a big-endian u16 length, then UTF-8 <c>token LF vm LF volume LF move</c>.
/// Answer: a status byte (0 accepted, 1 refused), a big-endian u16 length, a UTF-8 reason. Only after "accepted" does
/// the storage wire start; a refused connection is closed by the destination.
/// </summary>
internal static class MovePreamble
{
    public const int MaxPayload = 8192;
    private const int MaxReason = 1024;
    private static ReadOnlySpan<byte> Magic => "DCMT"u8;

    /// <summary>Sends the ticket and reads the answer; throws <see cref="MoveRefusedException"/> with the destination's reason when refused.</summary>
    public static async Task PresentAsync(Stream connection, MoveTicket ticket, CancellationToken cancellationToken)
    {
        await connection.WriteAsync(Encode(ticket), cancellationToken).ConfigureAwait(false);
        await connection.FlushAsync(cancellationToken).ConfigureAwait(false);

        var head = new byte[3];
        await connection.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(1));
        if (head[0] > 1 || length > MaxReason)
        {
            throw new IOException("the destination answered the move preamble with garbage; is target_endpoint a DeCloud agent's volume receiver?");
        }

        var reason = new byte[length];
        await connection.ReadExactlyAsync(reason, cancellationToken).ConfigureAwait(false);
        if (head[0] != 0)
        {
            throw new MoveRefusedException($"the destination refused the move: {Encoding.UTF8.GetString(reason)}");
        }
    }

    /// <summary>The request bytes of <paramref name="ticket"/>; throws <see cref="ArgumentException"/> when it does not fit.</summary>
    public static byte[] Encode(MoveTicket ticket)
    {
        var payload = Encoding.UTF8.GetBytes(string.Join('\n', ticket.Token, ticket.VmId, ticket.Volume, ticket.MoveId));
        if (payload.Length > MaxPayload)
        {
            throw new ArgumentException($"the move ticket is {payload.Length} bytes; at most {MaxPayload} fit the preamble.");
        }

        var frame = new byte[7 + payload.Length];
        Magic.CopyTo(frame);
        frame[4] = 1;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(5), (ushort)payload.Length);
        payload.CopyTo(frame.AsSpan(7));
        return frame;
    }

    /// <summary>Reads a ticket; returns null and the problem when the bytes are not a well-formed preamble.</summary>
    public static async Task<(MoveTicket? Ticket, string? Problem)> ReadAsync(Stream connection, CancellationToken cancellationToken)
    {
        var head = new byte[7];
        await connection.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        if (!head.AsSpan(0, 4).SequenceEqual(Magic))
        {
            return (null, "no move-token preamble (the connection did not start with DCMT); a sender must present the orchestrator's move token first");
        }

        if (head[4] != 1)
        {
            return (null, $"move preamble version {head[4]} is not supported (expected 1)");
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(5));
        if (length > MaxPayload)
        {
            return (null, $"move preamble of {length} bytes exceeds the limit of {MaxPayload}");
        }

        var payload = new byte[length];
        await connection.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(payload);
        }
        catch (DecoderFallbackException)
        {
            return (null, "move preamble is not UTF-8");
        }

        var parts = text.Split('\n');
        return parts.Length != 4 || Array.Exists(parts, p => p.Length == 0)
            ? (null, "move preamble must hold a token, a VM id, a volume and a move id")
            : (new MoveTicket(parts[0], parts[1], parts[2], parts[3]), null);
    }

    public static async Task AnswerAsync(Stream connection, string? refusal, CancellationToken cancellationToken)
    {
        var reason = Encoding.UTF8.GetBytes(refusal ?? string.Empty);
        if (reason.Length > MaxReason)
        {
            reason = reason[..MaxReason];
        }

        var frame = new byte[3 + reason.Length];
        frame[0] = refusal is null ? (byte)0 : (byte)1;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(1), (ushort)reason.Length);
        reason.CopyTo(frame.AsSpan(3));
        await connection.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        await connection.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>The destination refused a move's token (not transient: the same token will be refused again).</summary>
internal sealed class MoveRefusedException(string message) : InvalidOperationException(message);

/// <summary>
/// The destination's check of a move ticket, before a byte reaches DeCloud.Storage's <c>VolumeReceiver</c>: the token must
/// be a move token from the orchestrator's key set, addressed to this node, unexpired, naming the VM, volume and move the
/// ticket names, and not used before. Its token id is claimed by the first connection that presents it; DeCloud.Storage
/// redials a broken move, so later connections with the same token are accepted only from the same source address, at
/// most <see cref="MaxConnectionsPerToken"/> in all, until the token expires. Anyone else presenting it is refused as a replay.
/// </summary>
internal sealed partial class MoveTokenGate(ConnectAuthorizer authorizer, TimeProvider time, ILogger<MoveTokenGate> logger)
{
    /// <summary>Connections one move token may open (the first and DeCloud.Storage's redials of the same move).</summary>
    public const int MaxConnectionsPerToken = 8;

    private readonly ConcurrentDictionary<Guid, Use> _used = new();
    private readonly Lock _gate = new();

    /// <summary>Null when the connection may stream the volume; otherwise why not (logged here).</summary>
    public async ValueTask<string?> CheckAsync(MoveTicket ticket, IPAddress? source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (!VmId.TryParse(ticket.VmId, null, out var vm))
        {
            return Refuse(ticket, source, $"'{ticket.VmId}' is not a VM id");
        }

        var result = await authorizer.AuthorizeVolumeMoveAsync(ticket.Token, vm, ticket.Volume, ticket.MoveId, cancellationToken).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return Refuse(ticket, source, $"move token refused ({result.Status}): {result.Reason}");
        }

        var claims = result.Claims!;
        var now = time.GetUtcNow();
        lock (_gate)
        {
            foreach (var (id, use) in _used)
            {
                if (use.ExpiresAt < now - TimeSpan.FromMinutes(5))
                {
                    _used.TryRemove(id, out _);
                }
            }

            if (_used.TryGetValue(claims.TokenId, out var previous))
            {
                if (!Equals(previous.Source, source))
                {
                    return Refuse(ticket, source, $"move token {claims.TokenId:N} was already used from another address (replay)");
                }

                if (previous.Connections >= MaxConnectionsPerToken)
                {
                    return Refuse(ticket, source, $"move token {claims.TokenId:N} was already used for {previous.Connections} connections");
                }

                _used[claims.TokenId] = previous with { Connections = previous.Connections + 1 };
            }
            else
            {
                _used[claims.TokenId] = new Use(source, claims.ExpiresAt, 1);
            }
        }

        Log.Accepted(logger, ticket.MoveId, ticket.Volume, claims.Source.Value, source?.ToString() ?? "?");
        return null;
    }

    private string Refuse(MoveTicket ticket, IPAddress? source, string reason)
    {
        Log.Refused(logger, ticket.MoveId, ticket.Volume, source?.ToString() ?? "?", reason);
        return reason;
    }

    private sealed record Use(IPAddress? Source, DateTimeOffset ExpiresAt, int Connections);

    private static partial class Log
    {
        [LoggerMessage(1430, LogLevel.Information, "Volume move {MoveId} of {Volume} from node {Source} ({Remote}) authenticated by its move token.")]
        public static partial void Accepted(ILogger logger, string moveId, string volume, string source, string remote);

        [LoggerMessage(1431, LogLevel.Warning, "Volume move {MoveId} of {Volume} from {Remote} refused: {Reason}")]
        public static partial void Refused(ILogger logger, string moveId, string volume, string remote, string reason);
    }
}
