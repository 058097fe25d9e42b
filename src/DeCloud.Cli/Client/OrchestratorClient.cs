using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace DeCloud.Cli.Client;

/// <summary>A VM as the orchestrator's API returns it.</summary>
internal sealed record VmInfo(string Id, string Name, string NodeId, string State, string PowerState, string? Error, int ComputePoints,
    long MemoryMiB, long StorageGiB, string QualityTier, string BandwidthTier, Dictionary<string, bool>? Services, DateTimeOffset CreatedAt);

/// <summary>A node as the orchestrator's API returns it.</summary>
internal sealed record NodeInfo(string Id, string Operator, string Region, string[] Tags, string Architecture, bool BehindNat, bool RelayCapable,
    string? RelayNodeId, bool Online, int ComputePoints, long MemoryMiB, long StorageGiB, int Gpus, int UsedComputePoints, long UsedMemoryMiB, DateTimeOffset LastSeen,
    int? CpuCores = null, string? CpuModel = null, double? BenchmarkScore = null, string? PublicEndpoint = null, double? Uptime = null, long? VmsHosted = null,
    long? VmsCompletedCleanly = null);

/// <summary>A public port as the orchestrator's API returns it.</summary>
internal sealed record PortInfo(string VmId, string Host, int PublicPort, int TargetPort, string Protocol, string NodeId, string? ViaRelayNodeId, string State);

internal sealed record NonceInfo(string Nonce, string Message, DateTimeOffset ExpiresAt);

internal sealed record SessionInfo(string? Token, string Address, DateTimeOffset? ExpiresAt);

/// <summary>A connect token as the orchestrator's API returns it.</summary>
internal sealed record ConnectTokenInfo(string Token, Guid TokenId, string KeyId, string Audience, string Via, string VmId, string NodeId,
    IReadOnlyList<string> Scopes, DateTimeOffset ExpiresAt);

/// <summary>The orchestrator answered with an error (problem details) or could not be reached.</summary>
internal sealed class ApiException(int status, string title, string detail) : Exception($"{title}: {detail}")
{
    public int Status { get; } = status;

    public string Title { get; } = title;

    public string Detail { get; } = detail;
}

/// <summary>A thin typed client of the orchestrator's HTTP JSON API.</summary>
internal sealed class OrchestratorClient : IDisposable
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    private readonly HttpClient _http;

    public OrchestratorClient(Uri baseAddress, string? token, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = baseAddress;
        _http.Timeout = TimeSpan.FromSeconds(30);
        if (!string.IsNullOrEmpty(token))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
    }

    public Uri BaseAddress => _http.BaseAddress!;

    public Task<NonceInfo> BeginSignInAsync(string address, CancellationToken ct) =>
        SendAsync<NonceInfo>(HttpMethod.Post, "api/v1/auth/nonce", new { address }, ct);

    public Task<SessionInfo> VerifyAsync(string message, string signature, CancellationToken ct) =>
        SendAsync<SessionInfo>(HttpMethod.Post, "api/v1/auth/verify", new { message, signature }, ct);

    public Task<VmInfo> CreateVmAsync(object request, CancellationToken ct) => SendAsync<VmInfo>(HttpMethod.Post, "api/v1/vms", request, ct);

    public Task<List<VmInfo>> ListVmsAsync(CancellationToken ct) => SendAsync<List<VmInfo>>(HttpMethod.Get, "api/v1/vms", null, ct);

    public Task<VmInfo> GetVmAsync(string id, CancellationToken ct) => SendAsync<VmInfo>(HttpMethod.Get, "api/v1/vms/" + Uri.EscapeDataString(id), null, ct);

    public Task<VmInfo> DeleteVmAsync(string id, CancellationToken ct) => SendAsync<VmInfo>(HttpMethod.Delete, "api/v1/vms/" + Uri.EscapeDataString(id), null, ct);

    public Task<VmInfo> StartVmAsync(string id, CancellationToken ct) => SendAsync<VmInfo>(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(id)}/start", null, ct);

    public Task<VmInfo> StopVmAsync(string id, CancellationToken ct) => SendAsync<VmInfo>(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(id)}/stop", null, ct);

    public Task<PortInfo> OpenPortAsync(string vmId, int targetPort, CancellationToken ct) =>
        SendAsync<PortInfo>(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(vmId)}/ports", new { targetPort, protocol = "tcp" }, ct);

    public Task<List<PortInfo>> ListPortsAsync(string vmId, CancellationToken ct) =>
        SendAsync<List<PortInfo>>(HttpMethod.Get, $"api/v1/vms/{Uri.EscapeDataString(vmId)}/ports", null, ct);

    public Task<List<NodeInfo>> SearchNodesAsync(string query, CancellationToken ct) => SendAsync<List<NodeInfo>>(HttpMethod.Get, "api/v1/nodes" + query, null, ct);

    public Task<ConnectTokenInfo> IssueConnectTokenAsync(string vmId, IReadOnlyList<string> scopes, int minutes, CancellationToken ct) =>
        SendAsync<ConnectTokenInfo>(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(vmId)}/connect-token", new { scopes, minutes }, ct);

    public void Dispose() => _http.Dispose();

    internal async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, options: Json);
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new ApiException(0, "Orchestrator unreachable", $"{_http.BaseAddress}: {ex.Message}");
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                string title = response.ReasonPhrase ?? "Error", detail = text;
                try
                {
                    using var doc = JsonDocument.Parse(text);
                    title = doc.RootElement.TryGetProperty("title", out var t) ? t.GetString() ?? title : title;
                    detail = doc.RootElement.TryGetProperty("detail", out var d) ? d.GetString() ?? string.Empty : string.Empty;
                }
                catch (JsonException)
                {
                    // Not problem details: keep the raw text.
                }

                throw new ApiException((int)response.StatusCode, title, detail);
            }

            return await response.Content.ReadFromJsonAsync<T>(Json, ct).ConfigureAwait(false)
                ?? throw new ApiException((int)HttpStatusCode.BadGateway, "Empty answer", $"{method} {path} returned no body.");
        }
    }
}
