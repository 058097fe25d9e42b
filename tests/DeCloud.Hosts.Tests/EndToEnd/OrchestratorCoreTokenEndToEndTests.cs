using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// Connect tokens end to end with separate processes: the orchestrator issues (Core's TokenIssuer over a
/// persistent key ring), each agent fetches the public key set and checks tokens locally on its
/// <c>POST /authorize</c> endpoint (Core's TokenValidator with its own node id as audience).
/// </summary>
public sealed class OrchestratorCoreTokenEndToEndTests
{
    [Fact]
    public async Task ConnectToken_RightHostAccepts_WrongHostTamperedAndUngrantedRefused()
    {
        await using var cloud = await Cloud.StartAsync();
        var a = await StartAgentAsync(cloud, "ta");
        var b = await StartAgentAsync(cloud, "tb");
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).Count(n => n.Online) == 2 ? "ok" : null, "two agents");
        var (http, wallet) = await SignInAsync(cloud);
        using var _ = http;
        var vm = await CreateVmAsync(http, a.NodeId);

        var issued = await IssueAsync(http, vm, """{"scopes":["ssh","terminal"],"minutes":5}""");
        Assert.Equal(HttpStatusCode.OK, issued.Status);
        var token = issued.Body.GetProperty("token").GetString()!;
        Assert.Equal(a.NodeId, issued.Body.GetProperty("audience").GetString());
        Assert.Equal("host", issued.Body.GetProperty("via").GetString());
        Assert.Equal(["ssh", "terminal"], issued.Body.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()!).ToList());
        var expires = issued.Body.GetProperty("expiresAt").GetDateTimeOffset();
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(6));

        // The key set the hosts fetch names the token's key.
        using var anonymous = new HttpClient { BaseAddress = cloud.Api };
        var keySet = await anonymous.GetStringAsync(".well-known/decloud-keys.json").Within();
        Assert.Contains(issued.Body.GetProperty("keyId").GetString()!, keySet, StringComparison.Ordinal);

        // The VM's host accepts it for a granted scope...
        var allowed = await AuthorizeAsync(a.Url, new { token, vmId = vm, scope = "ssh" });
        Assert.Equal(HttpStatusCode.OK, allowed.Status);
        Assert.Equal(wallet, allowed.Body.GetProperty("wallet").GetString(), ignoreCase: true);
        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(a.Url, new { token, vmId = vm, scope = "terminal" })).Status);

        // ...the other host refuses it: it is not the audience.
        var wrongHost = await AuthorizeAsync(b.Url, new { token, vmId = vm, scope = "ssh" });
        Assert.Equal(HttpStatusCode.Forbidden, wrongHost.Status);
        Assert.Equal("WrongAudience", wrongHost.Body.GetProperty("tokenStatus").GetString());

        // Not granted: another scope, another VM.
        Assert.Equal("NotGranted", (await AuthorizeAsync(a.Url, new { token, vmId = vm, scope = "port" })).Body.GetProperty("tokenStatus").GetString());
        Assert.Equal("NotGranted", (await AuthorizeAsync(a.Url, new { token, vmId = Guid.NewGuid().ToString("N"), scope = "ssh" }))
            .Body.GetProperty("tokenStatus").GetString());

        // Tampered: one character of the signed part changed, or the token cut short.
        var middle = token.Length / 2;
        var tampered = token[..middle] + (token[middle] == 'A' ? 'B' : 'A') + token[(middle + 1)..];
        Assert.Equal(HttpStatusCode.Forbidden, (await AuthorizeAsync(a.Url, new { token = tampered, vmId = vm, scope = "ssh" })).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await AuthorizeAsync(a.Url, new { token = token[..^10], vmId = vm, scope = "ssh" })).Status);

        // Malformed requests to the agent: 400 naming the field, the agent keeps answering.
        Assert.Equal("body", (await AuthorizeRawAsync(a.Url, "{not json")).Body.GetProperty("field").GetString());
        Assert.Equal("scope", (await AuthorizeAsync(a.Url, new { token, vmId = vm, scope = "root" })).Body.GetProperty("field").GetString());
        Assert.Equal("vmId", (await AuthorizeAsync(a.Url, new { token, vmId = "nope", scope = "ssh" })).Body.GetProperty("field").GetString());
        Assert.Equal("token", (await AuthorizeAsync(a.Url, new { vmId = vm, scope = "ssh" })).Body.GetProperty("field").GetString());
        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(a.Url, new { token, vmId = vm, scope = "ssh" })).Status);
    }

    [Fact]
    public async Task ConnectToken_BadRequests_ProblemDetailsWithTheRightStatus()
    {
        await using var cloud = await Cloud.StartAsync();
        var a = await StartAgentAsync(cloud, "pa");
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent");
        var (owner, _) = await SignInAsync(cloud);
        var (stranger, _) = await SignInAsync(cloud);
        using var o = owner;
        using var s = stranger;
        var vm = await CreateVmAsync(owner, a.NodeId);
        const string ok = """{"scopes":["ssh"]}""";

        await AssertProblemAsync(await IssueAsync(owner, "not-a-vm", ok), HttpStatusCode.BadRequest, "id");
        await AssertProblemAsync(await IssueAsync(owner, Guid.NewGuid().ToString("N"), ok), HttpStatusCode.NotFound, null);
        await AssertProblemAsync(await IssueAsync(stranger, vm, ok), HttpStatusCode.NotFound, null);
        await AssertProblemAsync(await IssueAsync(owner, vm, """{"scopes":[]}"""), HttpStatusCode.BadRequest, "scopes");
        await AssertProblemAsync(await IssueAsync(owner, vm, """{"scopes":["root"]}"""), HttpStatusCode.BadRequest, "scopes");
        await AssertProblemAsync(await IssueAsync(owner, vm, """{"scopes":["ssh"],"minutes":0}"""), HttpStatusCode.BadRequest, "minutes");
        await AssertProblemAsync(await IssueAsync(owner, vm, """{"scopes":["ssh"],"minutes":61}"""), HttpStatusCode.BadRequest, "minutes");
        Assert.Equal(HttpStatusCode.BadRequest, (await IssueAsync(owner, vm, "{not json")).Status);

        using var noSession = new HttpClient { BaseAddress = cloud.Api };
        await AssertProblemAsync(await IssueAsync(noSession, vm, ok), HttpStatusCode.Unauthorized, null);
        using var badSession = new HttpClient { BaseAddress = cloud.Api };
        badSession.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "expired-or-made-up");
        await AssertProblemAsync(await IssueAsync(badSession, vm, ok), HttpStatusCode.Unauthorized, null);

        // A deleted VM has nothing to connect to.
        Assert.Equal(HttpStatusCode.Accepted, (await owner.DeleteAsync($"api/v1/vms/{vm}").Within()).StatusCode);
        await AssertProblemAsync(await IssueAsync(owner, vm, ok), HttpStatusCode.Conflict, null);
    }

    [Fact]
    public async Task ConnectToken_NatNode_AudienceIsItsRelayWhichAcceptsIt()
    {
        await using var cloud = await Cloud.StartAsync();
        var relay = await StartAgentAsync(cloud, "relay", behindNat: false, "--Agent:RelayCapable=true", "--Agent:RelayControlPort=0");
        var nat = await StartAgentAsync(cloud, "nat", behindNat: true);
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.BehindNat && n.RelayNodeId is not null), "a relay for the NAT'd node");
        var (http, _) = await SignInAsync(cloud);
        using var _ = http;
        var vm = await CreateVmAsync(http, nat.NodeId);

        var issued = await IssueAsync(http, vm, """{"scopes":["port"]}""");
        Assert.Equal(HttpStatusCode.OK, issued.Status);
        Assert.Equal("relay", issued.Body.GetProperty("via").GetString());
        Assert.Equal(relay.NodeId, issued.Body.GetProperty("audience").GetString());
        Assert.Equal(nat.NodeId, issued.Body.GetProperty("nodeId").GetString());
        var token = issued.Body.GetProperty("token").GetString()!;

        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(relay.Url, new { token, vmId = vm, scope = "port" })).Status);
        Assert.Equal("WrongAudience", (await AuthorizeAsync(nat.Url, new { token, vmId = vm, scope = "port" })).Body.GetProperty("tokenStatus").GetString());
    }

    [Fact]
    public async Task OrchestratorRestart_KeyRingPersisted_TokensIssuedBeforeStillAccepted()
    {
        await using var cloud = await Cloud.StartAsync();
        var keyFile = cloud.NewKeyFile("ra");
        var a = await StartAgentAsync(cloud, "ra", keyFile: keyFile);
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent");
        var (http, _) = await SignInAsync(cloud);
        using var _ = http;
        var vm = await CreateVmAsync(http, a.NodeId);
        var before = await IssueAsync(http, vm, """{"scopes":["ssh"]}""");
        var token = before.Body.GetProperty("token").GetString()!;

        // The agent forgets the keys it had; the orchestrator restarts (same data folder); the agent comes back.
        await a.Process.KillAsync();
        File.Delete(Path.Combine(cloud.Dir, "ra", "token-keys.json"));
        await cloud.Orchestrator.KillAsync();
        await cloud.StartOrchestratorAsync();
        var again = await StartAgentAsync(cloud, "ra", keyFile: keyFile);
        Assert.Equal(a.NodeId, again.NodeId);
        await again.Process.WaitForLineAsync("Token key set version");

        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(again.Url, new { token, vmId = vm, scope = "ssh" })).Status);
        var after = await IssueAsync(http, vm, """{"scopes":["ssh"]}""");
        Assert.Equal(before.Body.GetProperty("keyId").GetString(), after.Body.GetProperty("keyId").GetString());
        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(again.Url, new { token = after.Body.GetProperty("token").GetString(), vmId = vm, scope = "ssh" })).Status);

        // The session also survived the restart: the same bearer token still works.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("api/v1/auth/session").Within()).StatusCode);
    }

    [Fact]
    public async Task SigningKeyRotated_AgentLearnsTheNewKeyFromATokenAndKeepsAcceptingOldOnes()
    {
        await using var cloud = await Cloud.StartWithAsync("--Orchestrator:SigningKeyLifetime=00:00:02");
        var a = await StartAgentAsync(cloud, "rot", false, "--Agent:Authorization:KeySetRefreshInterval=01:00:00");
        await a.Process.WaitForLineAsync("Token key set version");
        var (http, _) = await SignInAsync(cloud);
        using var _ = http;
        var vm = await CreateVmAsync(http, a.NodeId);
        var first = await IssueAsync(http, vm, """{"scopes":["ssh"]}""");

        // A key made after the agent's only scheduled fetch: the agent has never seen it.
        using var anonymous = new HttpClient { BaseAddress = cloud.Api };
        var known = await anonymous.GetStringAsync(".well-known/decloud-keys.json").Within();
        var rotated = await cloud.EventuallyAsync(async () =>
        {
            var t = await IssueAsync(http, vm, """{"scopes":["ssh"]}""");
            return known.Contains(t.Body.GetProperty("keyId").GetString()!, StringComparison.Ordinal) ? null : t.Body.GetProperty("token").GetString();
        }, "a token signed by a rotated key", TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(a.Url, new { token = rotated, vmId = vm, scope = "ssh" })).Status);
        Assert.Equal(HttpStatusCode.OK, (await AuthorizeAsync(a.Url, new { token = first.Body.GetProperty("token").GetString(), vmId = vm, scope = "ssh" })).Status);
        Assert.Contains("Token signing key rotated", cloud.Orchestrator.Output, StringComparison.Ordinal);
    }

    private sealed record Agent(HostProcess Process, Uri Url, string NodeId);

    private static async Task<Agent> StartAgentAsync(Cloud cloud, string name, bool behindNat = false, params string[] extra) =>
        await StartAgentAsync(cloud, name, null, behindNat, extra);

    private static async Task<Agent> StartAgentAsync(Cloud cloud, string name, string? keyFile, bool behindNat = false, params string[] extra)
    {
        var p = cloud.StartAgent(name, keyFile ?? cloud.NewKeyFile(name), behindNat, extra);
        var m = await p.WaitForLineAsync(@"authorization endpoint listening on (\S+) \(audience ([0-9a-f]{64})\)");
        return new Agent(p, new Uri(m.Groups[1].Value), m.Groups[2].Value);
    }

    private static async Task<(HttpClient Http, string Wallet)> SignInAsync(Cloud cloud)
    {
        var session = await UserCommands.SignInAsync(cloud.Api, WalletKey.Generate(), CancellationToken.None).Within();
        var http = new HttpClient { BaseAddress = cloud.Api };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", session.Token);
        return (http, session.Address);
    }

    private static async Task<string> CreateVmAsync(HttpClient http, string nodeId)
    {
        var r = await http.PostAsJsonAsync("api/v1/vms", new { name = "tok", computePoints = 1, memoryMiB = 256, storageGiB = 1, nodeId }).Within();
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> IssueAsync(HttpClient http, string vm, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var r = await http.PostAsync($"api/v1/vms/{vm}/connect-token", content).Within();
        var text = await r.Content.ReadAsStringAsync();
        return (r.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static Task<(HttpStatusCode Status, JsonElement Body)> AuthorizeAsync(Uri agent, object body) =>
        AuthorizeRawAsync(agent, JsonSerializer.Serialize(body));

    private static async Task<(HttpStatusCode Status, JsonElement Body)> AuthorizeRawAsync(Uri agent, string json)
    {
        using var http = new HttpClient { BaseAddress = agent };
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var r = await http.PostAsync("authorize", content).Within();
        return (r.StatusCode, JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private static Task AssertProblemAsync((HttpStatusCode Status, JsonElement Body) r, HttpStatusCode status, string? field)
    {
        Assert.Equal(status, r.Status);
        Assert.Equal((int)status, r.Body.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(r.Body.GetProperty("detail").GetString()));
        if (field is not null)
        {
            Assert.Equal(field, r.Body.GetProperty("field").GetString());
        }

        return Task.CompletedTask;
    }
}
