using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DeCloud.Cli.Client;
using DeCloud.Orchestrator;
using DeCloud.Testing;
using Microsoft.AspNetCore.Builder;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>Sign-In with Ethereum through Core's SiweSignIn, against an in-process orchestrator on loopback.</summary>
public sealed class OrchestratorCoreSignInTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-siwe-").FullName;
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    public async ValueTask InitializeAsync() => await StartAsync();

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Verify_SignedNonceMessage_SessionThatSurvivesRestart()
    {
        var key = WalletKey.Generate();
        var (message, _) = await NonceAsync(key.Address);
        Assert.StartsWith("localhost wants you to sign in with your Ethereum account:\n", message, StringComparison.Ordinal);
        Assert.Contains("\nChain ID: 137\n", message, StringComparison.Ordinal);

        var (status, body) = await VerifyAsync(message, key.Sign(message));
        Assert.Equal(HttpStatusCode.OK, status);
        var token = body.GetProperty("token").GetString()!;
        Assert.Equal(key.Address, body.GetProperty("address").GetString(), ignoreCase: true);

        await RestartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/auth/session");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var session = await _http.SendAsync(request).Within();
        Assert.Equal(HttpStatusCode.OK, session.StatusCode);
    }

    [Fact]
    public async Task Verify_SameSignedMessageTwice_SecondRefusedNonceUsed()
    {
        var key = WalletKey.Generate();
        var (message, _) = await NonceAsync(key.Address);
        var signature = key.Sign(message);

        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync(message, signature)).Status);
        var (status, body) = await VerifyAsync(message, signature);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.StartsWith("NonceNotIssuedOrUsed", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("localhost wants", "evil.example wants", "Domain")]
    [InlineData("Chain ID: 137", "Chain ID: 1", "Chain")]
    [InlineData("URI: http://localhost", "URI: http://evil.example", "Uri")]
    public async Task Verify_MessageForAnotherSiteOrChain_RefusedNamingWhy(string from, string to, string reason)
    {
        var key = WalletKey.Generate();
        var (message, _) = await NonceAsync(key.Address);
        var altered = message.Replace(from, to, StringComparison.Ordinal);
        Assert.NotEqual(message, altered);

        var (status, body) = await VerifyAsync(altered, key.Sign(altered));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains(reason, body.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);

        // The nonce was not burnt by the refused message: the genuine one still signs in.
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync(message, key.Sign(message))).Status);
    }

    [Fact]
    public async Task Verify_SignedByAnotherWallet_Refused()
    {
        var key = WalletKey.Generate();
        var (message, _) = await NonceAsync(key.Address);

        var (status, body) = await VerifyAsync(message, WalletKey.Generate().Sign(message));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.StartsWith("AddressMismatch", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hello", "0x00")]
    [InlineData("localhost wants you to sign in with your Ethereum account:\n0x0", "0x1234")]
    public async Task Verify_Garbage_RefusedAndServerKeepsAnswering(string message, string signature)
    {
        var (status, body) = await VerifyAsync(message, signature);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal(401, body.GetProperty("status").GetInt32());
        Assert.Equal(HttpStatusCode.OK, (await _http.PostAsJsonAsync("api/v1/auth/nonce", new { address = WalletKey.Generate().Address }).Within()).StatusCode);
    }

    [Fact]
    public async Task Nonce_BadAddress_400()
    {
        using var r = await _http.PostAsJsonAsync("api/v1/auth/nonce", new { address = "0x123" }).Within();

        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
    }

    private async Task StartAsync()
    {
        _app = OrchestratorApplication.Create(
            ["--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0", "--Orchestrator:DataDirectory=" + _dir,
             "--Logging:LogLevel:Default=Warning"]);
        await _app.StartAsync().Within();
        _http = new HttpClient { BaseAddress = OrchestratorApplication.Addresses(_app).Api };
    }

    private async Task RestartAsync()
    {
        _http.Dispose();
        await _app.DisposeAsync();
        await StartAsync();
    }

    private async Task<(string Message, string Nonce)> NonceAsync(string address)
    {
        using var r = await _http.PostAsJsonAsync("api/v1/auth/nonce", new { address }).Within();
        r.EnsureSuccessStatusCode();
        var body = await r.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("message").GetString()!, body.GetProperty("nonce").GetString()!);
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> VerifyAsync(string message, string signature)
    {
        using var r = await _http.PostAsJsonAsync("api/v1/auth/verify", new { message, signature }).Within();
        return (r.StatusCode, await r.Content.ReadFromJsonAsync<JsonElement>());
    }
}
