using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace DeCloud.Orchestrator.Api;

/// <summary>The HTTP JSON API under <c>/api/v1</c>. Errors are RFC 9457 problem details.</summary>
internal static class ApiEndpoints
{
    private const string WalletKey = "decloud.wallet";

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1");

        var auth = api.MapGroup("/auth").WithTags("Sign-in");
        auth.MapPost("/nonce", async (NonceRequest body, SignInService signIn, CancellationToken ct) =>
        {
            if (!WalletAddress.TryParse(body.Address, out var wallet, out var error))
            {
                return Problem(400, "Invalid address", "address: " + error);
            }

            var (nonce, message, expires) = await signIn.BeginSignInAsync(wallet, ct).ConfigureAwait(false);
            return Results.Ok(new NonceResponse(nonce, message, expires));
        }).WithSummary("Starts a Sign-In with Ethereum: returns the message to sign.");

        auth.MapPost("/verify", async (VerifyRequest body, SignInService signIn, CancellationToken ct) =>
        {
            if (string.IsNullOrEmpty(body.Message) || string.IsNullOrEmpty(body.Signature))
            {
                return Problem(400, "Invalid sign-in", "message and signature are required.");
            }

            var (token, wallet, expires, error) = await signIn.CompleteAsync(body.Message, body.Signature, ct).ConfigureAwait(false);
            return token is null
                ? Problem(401, "Sign-in failed", error!)
                : Results.Ok(new SessionResponse(token, wallet.ToString(), expires));
        }).WithSummary("Verifies the signed message and returns a bearer session token.");

        var authed = api.MapGroup("").AddEndpointFilter(RequireSession);
        BillingEndpoints.Map(api, authed);
        authed.MapGet("/auth/session", (HttpContext http) => Results.Ok(new SessionResponse(null, Wallet(http).ToString(), null)))
            .WithTags("Sign-in").WithSummary("The wallet of the current session.");

        var vms = authed.MapGroup("/vms").WithTags("VMs");
        vms.MapPost("", (CreateVmRequest body, HttpContext http, VmService service) =>
        {
            var (request, field, error) = Parse(body);
            if (request is null)
            {
                return Problem(400, "Invalid VM request", error!, field);
            }

            var (outcome, vm, detail, refusal) = service.Create(Wallet(http), request);
            return outcome switch
            {
                VmOutcome.Ok => Results.Created($"/api/v1/vms/{vm!.Id}", VmView.From(vm)),
                VmOutcome.NodeUnavailable => Refused("Target node unavailable", detail!, refusal),
                _ => Refused("No capacity", detail!, refusal),
            };
        }).WithSummary("Creates a VM, auto-placed or on a chosen node (nodeId).");

        vms.MapGet("", (HttpContext http, OrchestratorStore store) =>
            Results.Ok(store.ListVms(Wallet(http)).Select(VmView.From).ToList())).WithSummary("Lists your VMs.");

        vms.MapGet("/{id}", (string id, HttpContext http, OrchestratorStore store) =>
        {
            if (!VmId.TryParse(id, null, out var vmId))
            {
                return Problem(400, "Invalid VM id", $"'{Cut(id)}' is not a VM id (32 hex characters).", "id");
            }

            var vm = store.GetVm(vmId);
            return vm is null || vm.Owner != Wallet(http) ? NotFound(id) : Results.Ok(VmView.From(vm));
        }).WithSummary("Shows one VM.");

        vms.MapPost("/{id}/start", (string id, HttpContext http, VmService s) => Change(id, http, s.Start, "start"));
        vms.MapPost("/{id}/stop", (string id, HttpContext http, VmService s) => Change(id, http, s.Stop, "stop"));
        vms.MapDelete("/{id}", (string id, HttpContext http, VmService s) => Change(id, http, s.Delete, "delete"));

        vms.MapPost("/{id}/ports", (string id, OpenPortRequest body, HttpContext http, VmService service, OrchestratorStore store) =>
        {
            if (!VmId.TryParse(id, null, out var vmId))
            {
                return Problem(400, "Invalid VM id", $"'{Cut(id)}' is not a VM id.", "id");
            }

            var protocol = (body.Protocol ?? "tcp").ToLowerInvariant();
            if (body.TargetPort is < 1 or > 65535 || protocol is not ("tcp" or "udp"))
            {
                return Problem(400, "Invalid port request", "targetPort must be 1-65535 and protocol tcp or udp.", "targetPort");
            }

            var (outcome, port, detail) = service.OpenPort(Wallet(http), vmId, body.TargetPort, protocol);
            return outcome switch
            {
                VmOutcome.Ok => Results.Created($"/api/v1/vms/{id}/ports", PortView.From(port!, store)),
                VmOutcome.NotFound => NotFound(id),
                VmOutcome.Conflict => Problem(409, "VM not running", detail!),
                _ => Problem(503, "No free public port", detail!),
            };
        }).WithSummary("Opens a public port (40000-65535) to a port of the VM.");

        vms.MapGet("/{id}/ports", (string id, HttpContext http, OrchestratorStore store) =>
        {
            if (!VmId.TryParse(id, null, out var vmId))
            {
                return Problem(400, "Invalid VM id", $"'{Cut(id)}' is not a VM id.", "id");
            }

            var vm = store.GetVm(vmId);
            return vm is null || vm.Owner != Wallet(http) ? NotFound(id) : Results.Ok(store.ListPorts(vmId).Select(p => PortView.From(p, store)).ToList());
        }).WithSummary("Lists the public ports of a VM.");

        SecurityEndpoints.Map(app, vms);

        var nodes = api.MapGroup("/nodes").WithTags("Nodes");
        nodes.MapGet("", async (string? region, int? minComputePoints, string? tag, bool? online, string? sort, OrchestratorStore store, CancellationToken ct) =>
        {
            if (sort is not (null or "uptime" or "price" or "free"))
            {
                return Problem(400, "Invalid sort", $"sort '{Cut(sort)}' must be uptime, price or free.", "sort");
            }

            // Core's node search (filters, order by uptime, price or free capacity); "online=false" lists only offline nodes.
            var query = new Core.Registry.NodeSearchQuery
            {
                Region = region,
                Tags = tag is null ? null : [tag],
                MinFreeComputePoints = minComputePoints,
                OnlineOnly = online == true,
                Sort = sort switch { "price" => Core.Registry.NodeSortOrder.Price, "free" => Core.Registry.NodeSortOrder.Capacity, _ => Core.Registry.NodeSortOrder.Uptime },
                Limit = 1000,
            };
            IReadOnlyList<Core.Registry.NodeRecord> found;
            try
            {
                found = await store.Registry.SearchAsync(query, ct).ConfigureAwait(false);
            }
            catch (DeCloudValidationException ex)
            {
                return Problem(400, "Invalid node search", ex.Message, ex.Field);
            }

            return Results.Ok(found.Where(n => online != false || !n.IsOnline).Select(n => NodeView.From(store.Compose(n))).ToList());
        }).WithSummary("Searches nodes (Core's registry) by region, free compute points, tag and online state; sort by uptime (default), price or free capacity.");

        nodes.MapGet("/{id}", (string id, OrchestratorStore store) =>
        {
            if (!NodeId.TryParse(id, null, out var nodeId))
            {
                return Problem(400, "Invalid node id", $"'{Cut(id)}' is not a node id (64 hex characters).", "id");
            }

            var node = store.GetNode(nodeId);
            return node is null ? Problem(404, "Node not found", $"No node {nodeId}.") : Results.Ok(NodeView.From(node));
        }).WithSummary("Shows one node.");
    }

    private static IResult Change(string id, HttpContext http, Func<WalletAddress, VmId, (VmOutcome, VmRecord?)> op, string verb)
    {
        if (!VmId.TryParse(id, null, out var vmId))
        {
            return Problem(400, "Invalid VM id", $"'{Cut(id)}' is not a VM id.", "id");
        }

        var (outcome, vm) = op(Wallet(http), vmId);
        return outcome switch
        {
            VmOutcome.Ok => Results.Accepted($"/api/v1/vms/{id}", VmView.From(vm!)),
            VmOutcome.Conflict => Problem(409, $"Cannot {verb} the VM", $"VM {id} is {vm!.State}."),
            _ => NotFound(id),
        };
    }

    internal static (VmRequest? Request, string? Field, string? Error) Parse(CreateVmRequest b)
    {
        var name = string.IsNullOrWhiteSpace(b.Name) ? "vm" : b.Name.Trim();
        if (name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            return (null, "name", $"name: '{Cut(name)}' must be 1-64 letters, digits, '-', '_' or '.'.");
        }

        var image = b.Image ?? "debian-12";
        if (image.Length > 128)
        {
            return (null, "image", "image: must be at most 128 characters.");
        }

        try
        {
            var resources = new Resources(b.ComputePoints, b.MemoryMiB, b.StorageGiB, b.Gpus);
            resources.ValidateRequest(string.Empty);
            var quality = b.QualityTier is null ? QualityTier.Standard : QualityTiers.Parse(b.QualityTier);
            var bandwidth = b.BandwidthTier is null ? BandwidthTier.Standard : BandwidthTierCatalog.Parse(b.BandwidthTier);
            NodeId? target = b.NodeId is null ? null : NodeId.Parse(b.NodeId);
            return (new VmRequest(name, resources, quality, bandwidth, target, image), null, null);
        }
        catch (DeCloudValidationException ex)
        {
            return (null, ex.Field.TrimStart('.'), ex.Message.TrimStart('.'));
        }
    }

    private static async ValueTask<object?> RequireSession(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var header = http.Request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        if (!header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
        {
            return Problem(401, "Sign-in required", "Send 'Authorization: Bearer <token>' from /api/v1/auth/verify.");
        }

        var signIn = http.RequestServices.GetService(typeof(SignInService)) as SignInService;
        var wallet = signIn!.Authenticate(header[bearer.Length..].Trim());
        if (wallet is null)
        {
            return Problem(401, "Session invalid", "The session token is unknown or expired; sign in again.");
        }

        http.Items[WalletKey] = wallet.Value;
        return await next(context).ConfigureAwait(false);
    }

    internal static WalletAddress Wallet(HttpContext http) => (WalletAddress)http.Items[WalletKey]!;

    internal static IResult NotFound(string id) => Problem(404, "VM not found", $"No VM {Cut(id)} belongs to this wallet.");

    internal static IResult Problem(int status, string title, string detail, string? field = null) =>
        Results.Problem(detail: detail, statusCode: status, title: title,
            extensions: field is null ? null : new Dictionary<string, object?> { ["field"] = field });

    /// <summary>A placement refusal as 409 problem details carrying the scheduler's explanation.</summary>
    private static IResult Refused(string title, string detail, PlacementRefusal? refusal) =>
        Results.Problem(detail: detail, statusCode: 409, title: title, extensions: refusal is null ? null : new Dictionary<string, object?>
        {
            ["inventorySize"] = refusal.InventorySize,
            ["rejections"] = refusal.Rejections.Select(r => new RejectionView(r.Filter, r.Nodes)).ToList(),
            ["nearMisses"] = refusal.NearMisses.Select(m => new NearMissView(m.Filter, m.Nodes, m.Shortfall, m.Message)).ToList(),
            ["structuralReason"] = refusal.StructuralReason,
        });

    internal static string Cut(string s) => s.Length <= 80 ? s : s[..80] + "...";
}
