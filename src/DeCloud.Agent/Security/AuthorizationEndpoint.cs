using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Security;

/// <summary>POST /authorize body: a connect token and what it is presented for.</summary>
/// <param name="Token">The connect token (PASETO v4.public).</param>
/// <param name="VmId">The VM the client wants to reach.</param>
/// <param name="Scope">What for: <c>ssh</c>, <c>http</c>, <c>terminal</c> or <c>port</c>.</param>
internal sealed record AuthorizeRequest(string? Token, string? VmId, string? Scope);

/// <summary>POST /authorize answer when the token is accepted.</summary>
internal sealed record AuthorizeResponse(bool Allowed, string Wallet, string VmId, string Scope, Guid TokenId, DateTimeOffset ExpiresAt);

/// <summary>A refusal (RFC 9457 problem details plus the token status).</summary>
internal sealed record AuthorizeProblem(string Type, string Title, int Status, string Detail, string? TokenStatus, string? Field);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuthorizeRequest))]
[JsonSerializable(typeof(AuthorizeResponse))]
[JsonSerializable(typeof(AuthorizeProblem))]
internal sealed partial class AuthorizeJson : JsonSerializerContext;

/// <summary>
/// The agent's local authorization endpoint, <c>POST /authorize</c> on <see cref="AgentAuthorizationOptions.ListenUrl"/>
/// (loopback only). It is what the node's own access gates ask before letting a client through to a VM (sshd's
/// <c>AuthorizedKeysCommand</c>, the web terminal, a reverse proxy's auth request, the relay's port gate):
/// 200 with the wallet when the token grants the scope on the VM, 403 problem details naming the token status
/// (<c>WrongAudience</c>, <c>Expired</c>, <c>BadSignature</c>, <c>NotGranted</c>...) when not, 400 for a malformed request.
/// </summary>
internal sealed partial class AuthorizationEndpoint(
    ConnectAuthorizer authorizer,
    IOptions<AgentAuthorizationOptions> options,
    ILogger<AuthorizationEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private const int MaxBodyBytes = 16 * 1024;
    private WebApplication? _app;

    /// <summary>The bound address, once started (null when turned off).</summary>
    public Uri? Address { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var url = options.Value.ListenUrl;
        if (string.IsNullOrEmpty(url))
        {
            Log.Disabled(logger);
            return;
        }

        var uri = new Uri(url);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxBodyBytes;
            k.Listen(new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port), o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.MapPost("/authorize", HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Address = new Uri(bound);
        Log.Listening(logger, Address.ToString().TrimEnd('/'), authorizer.Audience);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }
    }

    internal async Task HandleAsync(HttpContext http)
    {
        AuthorizeRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(http.Request.Body, AuthorizeJson.Default.AuthorizeRequest, http.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            await ProblemAsync(http, 400, "Invalid request", $"the body is not JSON {{token, vmId, scope}}: {ex.Message}", null, "body").ConfigureAwait(false);
            return;
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException ex)
        {
            await ProblemAsync(http, ex.StatusCode, "Invalid request", ex.Message, null, "body").ConfigureAwait(false);
            return;
        }

        if (string.IsNullOrEmpty(body?.Token))
        {
            await ProblemAsync(http, 400, "Invalid request", "token is required.", null, "token").ConfigureAwait(false);
            return;
        }

        if (!VmId.TryParse(body.VmId, null, out var vm))
        {
            await ProblemAsync(http, 400, "Invalid request", $"vmId '{Cut(body.VmId)}' is not a VM id (32 hex characters).", null, "vmId").ConfigureAwait(false);
            return;
        }

        var scope = body.Scope switch
        {
            "ssh" => TokenScopes.Ssh,
            "http" => TokenScopes.Http,
            "terminal" => TokenScopes.Terminal,
            "port" => TokenScopes.Port,
            _ => TokenScopes.None,
        };
        if (scope == TokenScopes.None)
        {
            await ProblemAsync(http, 400, "Invalid request", $"scope '{Cut(body.Scope)}' must be ssh, http, terminal or port.", null, "scope").ConfigureAwait(false);
            return;
        }

        var result = await authorizer.AuthorizeAsync(body.Token, vm, scope, http.RequestAborted).ConfigureAwait(false);
        if (!result.IsValid)
        {
            Log.Denied(logger, vm.ToString(), body.Scope!, result.Status.ToString(), result.Reason);
            await ProblemAsync(http, 403, "Token refused", result.Reason, result.Status.ToString(), null).ConfigureAwait(false);
            return;
        }

        var claims = result.Claims!;
        Log.Allowed(logger, vm.ToString(), body.Scope!, claims.Subject.ToString());
        http.Response.StatusCode = 200;
        await http.Response.WriteAsJsonAsync(new AuthorizeResponse(true, claims.Subject.ToString(), vm.ToString(), body.Scope!, claims.TokenId, claims.ExpiresAt),
            AuthorizeJson.Default.AuthorizeResponse, cancellationToken: http.RequestAborted).ConfigureAwait(false);
    }

    private static Task ProblemAsync(HttpContext http, int status, string title, string detail, string? tokenStatus, string? field)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new AuthorizeProblem($"https://decloud.dev/problems/{(status == 403 ? "token-refused" : "invalid-request")}",
            title, status, detail, tokenStatus, field), AuthorizeJson.Default.AuthorizeProblem, "application/problem+json", http.RequestAborted);
    }

    private static string Cut(string? s) => s is null ? "null" : s.Length <= 80 ? s : s[..80] + "...";

    private static partial class Log
    {
        [LoggerMessage(1411, LogLevel.Information, "Connect-token authorization endpoint listening on {Url} (audience {NodeId}).")]
        public static partial void Listening(ILogger logger, string url, string nodeId);

        [LoggerMessage(1412, LogLevel.Information, "Connect-token authorization endpoint is turned off (Agent:Authorization:ListenUrl is empty).")]
        public static partial void Disabled(ILogger logger);

        [LoggerMessage(1413, LogLevel.Information, "Connect token accepted: VM {VmId} scope {Scope} for {Wallet}.")]
        public static partial void Allowed(ILogger logger, string vmId, string scope, string wallet);

        [LoggerMessage(1414, LogLevel.Information, "Connect token refused: VM {VmId} scope {Scope}: {Status} ({Reason}).")]
        public static partial void Denied(ILogger logger, string vmId, string scope, string status, string reason);
    }
}
