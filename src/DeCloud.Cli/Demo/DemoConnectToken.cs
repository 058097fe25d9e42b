using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DeCloud.Agent.Security;
using DeCloud.Cli.Client;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Cli.Demo;

/// <summary>
/// The demo's connect-token step: the user gets a token for a VM, the node it names (the VM's host, or the relay
/// in front of a NAT'd host) accepts it on its local <c>POST /authorize</c>, and the other node refuses it.
/// </summary>
internal static class DemoConnectToken
{
    public static async Task<string> RunAsync(OrchestratorClient client, VmInfo vm, IReadOnlyList<IHost> agents, CancellationToken ct)
    {
        var issued = await client.IssueConnectTokenAsync(vm.Id, ["port"], 5, ct).ConfigureAwait(false);
        var endpoints = agents.Select(AgentAuthorization.Endpoint).OfType<AgentAuthorizationEndpoint>().ToList();
        var right = endpoints.SingleOrDefault(e => e.NodeId == issued.Audience)
            ?? throw new InvalidOperationException($"no agent is node {issued.Audience}, the token's audience.");
        var wrong = endpoints.First(e => e.NodeId != issued.Audience);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var (accepted, _) = await AuthorizeAsync(http, right, issued.Token, vm.Id, ct).ConfigureAwait(false);
        var (refused, reason) = await AuthorizeAsync(http, wrong, issued.Token, vm.Id, ct).ConfigureAwait(false);
        if (accepted != HttpStatusCode.OK || refused != HttpStatusCode.Forbidden)
        {
            throw new InvalidOperationException($"connect token: the {issued.Via} answered {(int)accepted}, the other node {(int)refused}; expected 200 and 403.");
        }

        return $"connect token for VM {vm.Name} (audience: the {issued.Via} {Table.Short(issued.Audience)}) accepted by that node, refused by node {Table.Short(wrong.NodeId)} ({reason})";
    }

    private static async Task<(HttpStatusCode Status, string Reason)> AuthorizeAsync(HttpClient http, AgentAuthorizationEndpoint agent, string token, string vmId, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync(new Uri(agent.Address, "authorize"), new { token, vmId, scope = "port" }, ct).ConfigureAwait(false);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        var reason = body.RootElement.TryGetProperty("tokenStatus", out var s) ? s.GetString() ?? string.Empty : "allowed";
        return (response.StatusCode, reason);
    }
}
