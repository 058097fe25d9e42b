using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Orchestrator.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DeCloud.Orchestrator.Api;

/// <summary>POST /api/v1/vms/{id}/connect-token body.</summary>
/// <param name="Scopes">What the token grants: any of <c>ssh</c>, <c>http</c>, <c>terminal</c>, <c>port</c> (at least one).</param>
/// <param name="Minutes">Its lifetime in minutes, 1-60. Default 5.</param>
internal sealed record ConnectTokenBody(IReadOnlyList<string>? Scopes, int? Minutes = null);

/// <summary>Connect tokens for a VM and the public key set hosts validate them with.</summary>
internal static class SecurityEndpoints
{
    /// <summary>Where the public key set is served, on both the API and the agents' port (hosts fetch it from the latter).</summary>
    public const string KeySetPath = "/.well-known/decloud-keys.json";

    public static void Map(IEndpointRouteBuilder app, RouteGroupBuilder vms)
    {
        app.MapGet(KeySetPath, (TokenKeyRing ring, HttpContext http) =>
        {
            http.Response.Headers.CacheControl = "public, max-age=60";
            return Results.Text(ring.GetPublicKeySet().ToJson(), "application/json");
        }).WithTags("Security").WithSummary("The public key set (Ed25519, JWK-like) hosts and relays validate connect tokens with.");

        vms.MapPost("/{id}/connect-token", (string id, ConnectTokenBody? body, HttpContext http, ConnectTokenService tokens) =>
        {
            if (!VmId.TryParse(id, null, out var vmId))
            {
                return ApiEndpoints.Problem(400, "Invalid VM id", $"'{ApiEndpoints.Cut(id)}' is not a VM id (32 hex characters).", "id");
            }

            if (body?.Scopes is not { Count: > 0 and <= 8 } names)
            {
                return ApiEndpoints.Problem(400, "Invalid connect-token request", "scopes: name at least one of ssh, http, terminal, port.", "scopes");
            }

            var scopes = TokenScopes.None;
            foreach (var name in names)
            {
                if (name is null || !ConnectTokenService.ScopeNames.TryGetValue(name, out var scope))
                {
                    return ApiEndpoints.Problem(400, "Invalid connect-token request",
                        $"scopes: '{ApiEndpoints.Cut(name ?? "null")}' is not a scope; use ssh, http, terminal or port.", "scopes");
                }

                scopes |= scope;
            }

            var minutes = body.Minutes ?? 5;
            if (minutes is < 1 or > 60)
            {
                return ApiEndpoints.Problem(400, "Invalid connect-token request", $"minutes: {minutes} must be 1-60.", "minutes");
            }

            var (outcome, token, detail) = tokens.Issue(ApiEndpoints.Wallet(http), vmId, scopes, TimeSpan.FromMinutes(minutes));
            return outcome switch
            {
                ConnectTokenOutcome.Ok => Results.Ok(token),
                ConnectTokenOutcome.Conflict => ApiEndpoints.Problem(409, "No connect token", detail!),
                _ => ApiEndpoints.NotFound(id),
            };
        }).WithSummary("Issues a short-lived connect token for your VM, checked by its host (or the relay in front of a NAT'd host).");
    }
}
