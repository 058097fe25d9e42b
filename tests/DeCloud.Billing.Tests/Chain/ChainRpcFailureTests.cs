using System.Net;
using System.Net.Sockets;
using System.Text;
using DeCloud.Billing.Chain;
using DeCloud.Testing;

namespace DeCloud.Billing.Tests.Chain;

/// <summary>RPCs that time out or lie, on loopback without a chain: clear errors, ledger unchanged.</summary>
public sealed class ChainRpcFailureTests : IDisposable
{
    private readonly TestDb _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public async Task ClaimAsync_RpcNeverAnswers_ThrowsTransientWithinTimeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    accepted.Add(await listener.AcceptSocketAsync());
                }
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        });
        using var deposits = new UsdcDeposits(Options(((IPEndPoint)listener.LocalEndpoint).Port, TimeSpan.FromMilliseconds(500)), _db.Ledger);

        var ex = await Assert.ThrowsAsync<ChainException>(() => deposits.ClaimAsync("0x" + new string('1', 64))).Within();

        Assert.True(ex.IsTransient);
        Assert.Contains("did not answer", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, _db.Ledger.PostingCount());
        listener.Stop();
        await accepting.Within();
        accepted.ForEach(s => s.Dispose());
    }

    [Fact]
    public async Task ClaimAsync_RpcAnswersGarbage_ThrowsChainException()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var serving = Task.Run(async () =>
        {
            using var s = await listener.AcceptSocketAsync();
            var buffer = new byte[4096];
            await s.ReceiveAsync(buffer);
            const string body = "{\"jsonrpc\":\"2.0\",\"id\":";
            await s.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        });
        using var deposits = new UsdcDeposits(Options(((IPEndPoint)listener.LocalEndpoint).Port, TimeSpan.FromSeconds(10)), _db.Ledger);

        await Assert.ThrowsAsync<ChainException>(() => deposits.ClaimAsync("0x" + new string('2', 64))).Within();

        await serving.Within();
        Assert.Equal(0, _db.Ledger.PostingCount());
    }

    [Theory]
    [InlineData("0x1234")]
    [InlineData("1111111111111111111111111111111111111111111111111111111111111111")]
    [InlineData("0xzz11111111111111111111111111111111111111111111111111111111111111")]
    [InlineData("")]
    public async Task ClaimAsync_NonHexHash_ThrowsValidationBeforeAnyCall(string hash)
    {
        using var deposits = new UsdcDeposits(Options(1, TimeSpan.FromSeconds(1)), _db.Ledger);

        var ex = await Assert.ThrowsAsync<BillingValidationException>(() => deposits.ClaimAsync(hash)).Within();

        Assert.Equal("txHash", ex.Field);
    }

    private static ChainOptions Options(int port, TimeSpan timeout) => new()
    {
        RpcUrl = new Uri($"http://127.0.0.1:{port}/"),
        ChainId = 31337,
        UsdcContract = "0x0000000000000000000000000000000000000001",
        DepositAddress = "0x0000000000000000000000000000000000000002",
        Confirmations = 1,
        ReorgDepth = 10,
        RpcTimeout = timeout,
    };
}
