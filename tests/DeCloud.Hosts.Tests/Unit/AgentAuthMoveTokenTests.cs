using System.Net;
using System.Text;
using CsCheck;
using DeCloud.Agent.Storage;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>The destination's move-token gate and the preamble that carries the token.</summary>
public sealed class AgentAuthMoveTokenTests : IDisposable
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0x00000000000000000000000000000000000000bb");
    private static readonly IPAddress Source = IPAddress.Parse("10.0.0.1");

    private readonly string _dir = Directory.CreateTempSubdirectory("dh9a-move-auth-").FullName;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly NodeId _destination = NodeId.FromMachine("dh9a-destination", Wallet);
    private readonly NodeId _source = NodeId.FromMachine("dh9a-source", Wallet);
    private readonly VmId _vm = VmId.New();
    private readonly AgentAuthTestKit _kit;

    public AgentAuthMoveTokenTests() => _kit = new AgentAuthTestKit(_dir, _destination, _clock);

    public void Dispose()
    {
        _kit.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Check_MatchingTicket_AcceptedThenRedialsFromTheSameSourceUpToTheLimit()
    {
        var ticket = Ticket(Token());

        for (var i = 0; i < MoveTokenGate.MaxConnectionsPerToken; i++)
        {
            Assert.Null(await _kit.MoveGate.CheckAsync(ticket, Source).AsTask().Within());
        }

        Assert.Contains("already used for 8 connections", await _kit.MoveGate.CheckAsync(ticket, Source).AsTask().Within(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_SameTokenFromAnotherAddress_RefusedAsReplay()
    {
        var ticket = Ticket(Token());
        Assert.Null(await _kit.MoveGate.CheckAsync(ticket, Source).AsTask().Within());

        var refusal = await _kit.MoveGate.CheckAsync(ticket, IPAddress.Parse("10.0.0.2")).AsTask().Within();

        Assert.Contains("replay", refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_TicketForAnotherVolumeMoveOrVm_NotGranted()
    {
        var token = Token();

        Assert.Contains("NotGranted", await _kit.MoveGate.CheckAsync(Ticket(token) with { Volume = "vm-other" }, Source).AsTask().Within(), StringComparison.Ordinal);
        Assert.Contains("NotGranted", await _kit.MoveGate.CheckAsync(Ticket(token) with { MoveId = "mv-2" }, Source).AsTask().Within(), StringComparison.Ordinal);
        Assert.Contains("NotGranted", await _kit.MoveGate.CheckAsync(Ticket(token) with { VmId = VmId.New().ToString() }, Source).AsTask().Within(), StringComparison.Ordinal);
        Assert.Contains("is not a VM id", await _kit.MoveGate.CheckAsync(Ticket(token) with { VmId = "nope" }, Source).AsTask().Within(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_TokenForAnotherDestinationExpiredOrForeign_Refused()
    {
        var elsewhere = _kit.Issuer.IssueVolumeMoveToken(new VolumeMoveTokenRequest(_source, _source.Value, _vm, "vm-data", "mv-1")).Token;
        Assert.Contains("WrongAudience", await _kit.MoveGate.CheckAsync(Ticket(elsewhere), Source).AsTask().Within(), StringComparison.Ordinal);

        using var rogue = new TokenKeyRing(timeProvider: _clock);
        var foreign = new TokenIssuer(rogue, timeProvider: _clock).IssueVolumeMoveToken(new VolumeMoveTokenRequest(_source, _destination.Value, _vm, "vm-data", "mv-1")).Token;
        Assert.Contains("UnknownKey", await _kit.MoveGate.CheckAsync(Ticket(foreign), Source).AsTask().Within(), StringComparison.Ordinal);

        var relayToken = _kit.Issuer.IssueRelayToken(_source, Wallet, _destination.Value).Token;
        Assert.Contains("WrongTokenKind", await _kit.MoveGate.CheckAsync(Ticket(relayToken), Source).AsTask().Within(), StringComparison.Ordinal);

        var token = Token();
        _clock.Advance(VolumeMoveTokenRequest.DefaultLifetime + TimeSpan.FromMinutes(1));
        Assert.Contains("Expired", await _kit.MoveGate.CheckAsync(Ticket(token), Source).AsTask().Within(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Preamble_RoundTrip_ReadsTheTicket()
    {
        var ticket = Ticket(Token());

        var (read, problem) = await MovePreamble.ReadAsync(new MemoryStream(MovePreamble.Encode(ticket)), default).Within();

        Assert.Null(problem);
        Assert.Equal(ticket, read);
    }

    [Fact]
    public async Task Preamble_WrongMagicVersionOrShape_NamesTheProblem()
    {
        var good = MovePreamble.Encode(Ticket("t"));
        async Task<string?> Problem(byte[] bytes) => (await MovePreamble.ReadAsync(new MemoryStream(bytes), default).Within()).Problem;

        Assert.Contains("DCMT", await Problem([.. "BTRF"u8.ToArray(), .. good[4..]]), StringComparison.Ordinal);
        var version = good.ToArray();
        version[4] = 9;
        Assert.Contains("version 9", await Problem(version), StringComparison.Ordinal);
        var oversized = good.ToArray();
        oversized[5] = 0xff;
        Assert.Contains("exceeds", await Problem(oversized), StringComparison.Ordinal);
        Assert.Contains("must hold", await Problem([.. good[..5], 0, 3, .. "a\nb"u8.ToArray()]), StringComparison.Ordinal);
        Assert.Contains("UTF-8", await Problem([.. good[..5], 0, 2, 0xff, 0xfe]), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => MovePreamble.Encode(Ticket(new string('t', MovePreamble.MaxPayload))));
    }

    [Fact]
    public void Preamble_TruncatedOrRandomBytes_ProblemOrEndOfStreamNeverAnythingElse()
    {
        var good = MovePreamble.Encode(Ticket(Token()));
        for (var cut = 0; cut < good.Length; cut++)
        {
            Assert.ThrowsAny<EndOfStreamException>(() => MovePreamble.ReadAsync(new MemoryStream(good[..cut]), default).GetAwaiter().GetResult());
        }

        Gen.Byte.Array[0, 10_000].Sample(bytes =>
        {
            try
            {
                var (ticket, problem) = MovePreamble.ReadAsync(new MemoryStream(bytes), default).GetAwaiter().GetResult();
                return (ticket is null) != (problem is null);
            }
            catch (EndOfStreamException)
            {
                return true;
            }
        }, iter: 500);
        Gen.Byte.Array[0, 200].Sample(tail =>
        {
            try
            {
                var (ticket, problem) = MovePreamble.ReadAsync(new MemoryStream([.. "DCMT"u8.ToArray(), 1, .. tail]), default).GetAwaiter().GetResult();
                return (ticket is null) != (problem is null);
            }
            catch (EndOfStreamException)
            {
                return true;
            }
        }, iter: 500);
    }

    private string Token() => _kit.Issuer.IssueVolumeMoveToken(new VolumeMoveTokenRequest(_source, _destination.Value, _vm, "vm-data", "mv-1")).Token;

    private MoveTicket Ticket(string token) => new(token, _vm.ToString(), "vm-data", "mv-1");
}
