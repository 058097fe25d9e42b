using System.Buffers;
using System.Text.Json;
using System.Text.RegularExpressions;
using DeCloud.Billing;
using DeCloud.Billing.Chain;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Billing;
using DeCloud.Orchestrator.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using BillingLog = DeCloud.Orchestrator.Billing.Log;

namespace DeCloud.Orchestrator.Api;

/// <summary>
/// The billing part of the JSON API: cost estimates, node pricing, balances, USDC deposits and featured
/// nodes. Bodies are read with a 16 KiB bound; every error is problem details naming what is wrong.
/// </summary>
internal static partial class BillingEndpoints
{
    /// <summary>The largest request body the billing endpoints read.</summary>
    public const int MaxBodyBytes = 16 * 1024;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the public endpoints on <paramref name="api"/> and the signed-in ones on <paramref name="authed"/>.</summary>
    public static void Map(RouteGroupBuilder api, RouteGroupBuilder authed)
    {
        api.MapPost("/vms/estimate", EstimateAsync).WithTags("Billing")
            .Accepts<CreateVmRequest>("application/json").Produces<EstimateResponse>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(413)
            .WithSummary("Estimates a VM's cost, itemized: at the platform defaults, and on the node given as nodeId.");

        api.MapGet("/nodes/featured", (int? limit, FeaturedNodes featured) =>
        {
            var n = limit ?? 10;
            if (n is < 1 or > FeaturedNodes.MaxLimit)
            {
                return ApiEndpoints.Problem(400, "Invalid limit", $"limit {n} must be 1-{FeaturedNodes.MaxLimit}.", "limit");
            }

            return Results.Ok(featured.Rank(n).Select((f, i) =>
                new FeaturedNodeView(i + 1, NodeView.From(f.Node), f.Score, f.Uptime, f.ReferenceHourlyUsdc, f.PriceScore, f.Reason)).ToList());
        }).WithTags("Nodes").Produces<List<FeaturedNodeView>>().ProducesProblem(400)
            .WithSummary("Online nodes, best value first: 0.6 x 30-day uptime + 0.4 x (floor price / node price), with the reason per node.");

        api.MapGet("/nodes/{id}/pricing", (string id, OrchestratorStore store, NodePriceBook book, PriceCalculator calculator) =>
        {
            var (node, problem) = FindNode(id, store);
            return node is null ? problem! : Results.Ok(Pricing(node, book, calculator));
        }).WithTags("Nodes").Produces<PricingView>().ProducesProblem(400).ProducesProblem(404)
            .WithSummary("A node's hourly prices (floor-enforced), with the platform floors and defaults.");

        authed.MapMethods("/nodes/{id}/pricing", ["PATCH"], SetPricingAsync).WithTags("Nodes")
            .Accepts<PricingUpdateRequest>("application/json").Produces<PricingUpdateResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(413)
            .WithSummary("The node's operator sets its prices; each rate is raised to the platform floor, and the answer says which were.");

        authed.MapGet("/balance", (HttpContext http, BillingLedger ledger, UsageMeter meter, OrchestratorStore store) =>
        {
            var wallet = ApiEndpoints.Wallet(http);
            var balance = ledger.GetBalance(LedgerAccount.User(wallet));
            long escrow = 0;
            var leases = new List<LeaseView>();
            foreach (var vm in store.ListVms(wallet))
            {
                escrow += ledger.GetBalance(LedgerAccount.Escrow(vm.Id));
                if (meter.GetLease(vm.Id) is { } lease)
                {
                    leases.Add(LeaseView.From(lease));
                }
            }

            return Results.Ok(new BalanceView(wallet.ToString(), balance, MicroUsdc.Format(balance), escrow, MicroUsdc.Format(escrow),
                ledger.GetOverdrawnUsers().ContainsKey(wallet), leases));
        }).WithTags("Billing").Produces<BalanceView>().ProducesProblem(401)
            .WithSummary("Your balance, what is held in escrow, whether you are overdrawn, and your VMs' frozen rates and charges.");

        authed.MapPost("/deposits", ClaimAsync).WithTags("Billing")
            .Accepts<DepositRequest>("application/json").Produces<DepositClaimView>().Produces<DepositClaimView>(202)
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(404).ProducesProblem(413).ProducesProblem(422).ProducesProblem(502).ProducesProblem(503)
            .WithSummary("Credits a USDC transfer to the platform's deposit address, verified on chain (once per transaction; 202 while confirmations are short).");

        authed.MapGet("/deposits", (HttpContext http, DepositGateway gateway) =>
        {
            if (gateway.Deposits is not { } deposits)
            {
                return NoChain();
            }

            var wallet = ApiEndpoints.Wallet(http);
            return Results.Ok(deposits.GetDeposits().Where(d => d.From == wallet).Select(DepositView.Of).ToList());
        }).WithTags("Billing").Produces<List<DepositView>>().ProducesProblem(401).ProducesProblem(503)
            .WithSummary("The deposits sent from your wallet, with their state.");
    }

    private static async Task<IResult> EstimateAsync(HttpContext http, OrchestratorStore store, NodePriceBook book, PriceCalculator calculator)
    {
        var (body, bad) = await ReadAsync<CreateVmRequest>(http).ConfigureAwait(false);
        if (body is null)
        {
            return bad!;
        }

        var (request, field, error) = ApiEndpoints.Parse(body);
        if (request is null)
        {
            return ApiEndpoints.Problem(400, "Invalid VM request", error!, field);
        }

        var defaults = calculator.Options.Defaults;
        var atDefaults = EstimateView.From(calculator.EstimateWithDefaults(request.Resources, request.QualityTier, request.BandwidthTier), defaults);
        NodeEstimateView? onNode = null;
        if (request.TargetNode is { } target)
        {
            var node = store.GetNode(target);
            if (node is null)
            {
                return ApiEndpoints.Problem(404, "Node not found", $"No node {target}.", "nodeId");
            }

            var rates = book.GetPrices(target);
            onNode = new NodeEstimateView(target.Value, node.Online,
                EstimateView.From(calculator.Estimate(request.Resources, request.QualityTier, request.BandwidthTier, rates), rates));
        }

        return Results.Ok(new EstimateResponse(atDefaults, onNode));
    }

    private static async Task<IResult> SetPricingAsync(string id, HttpContext http, OrchestratorStore store, NodePriceBook book, PriceCalculator calculator, ILoggerFactory logs)
    {
        var (node, problem) = FindNode(id, store);
        if (node is null)
        {
            return problem!;
        }

        var wallet = ApiEndpoints.Wallet(http);
        if (node.Operator != wallet)
        {
            return ApiEndpoints.Problem(403, "Not the node's operator", $"Node {node.Id} is operated by {node.Operator}; you are signed in as {wallet}.");
        }

        var (body, bad) = await ReadAsync<PricingUpdateRequest>(http).ConfigureAwait(false);
        if (body is null)
        {
            return bad!;
        }

        if (body is { CpuPerPointHour: null, MemoryPerGiBHour: null, StoragePerGiBHour: null, GpuPerHour: null })
        {
            return ApiEndpoints.Problem(400, "Nothing to change", "Give at least one of cpuPerPointHour, memoryPerGiBHour, storagePerGiBHour, gpuPerHour (USDC per unit-hour).");
        }

        var current = book.GetPrices(node.Id);
        var requested = new ResourceRates(
            body.CpuPerPointHour ?? current.CpuPerPointHour,
            body.MemoryPerGiBHour ?? current.MemoryPerGiBHour,
            body.StoragePerGiBHour ?? current.StoragePerGiBHour,
            body.GpuPerHour ?? current.GpuPerHour);
        ResourceRates effective;
        try
        {
            effective = book.SetOperatorPrices(node.Id, requested);
        }
        catch (BillingValidationException ex)
        {
            var field = ex.Field[(ex.Field.LastIndexOf('.') + 1)..];
            return ApiEndpoints.Problem(400, "Invalid price", ex.Message, field);
        }

        var floors = calculator.Options.Floors;
        var raised = new List<string>();
        Raised(raised, "cpuPerPointHour", requested.CpuPerPointHour, floors.CpuPerPointHour);
        Raised(raised, "memoryPerGiBHour", requested.MemoryPerGiBHour, floors.MemoryPerGiBHour);
        Raised(raised, "storagePerGiBHour", requested.StoragePerGiBHour, floors.StoragePerGiBHour);
        Raised(raised, "gpuPerHour", requested.GpuPerHour, floors.GpuPerHour);
        BillingLog.PricesSet(logs.CreateLogger(typeof(BillingEndpoints)), wallet.ToString(), node.Id.Value, effective.ToString());
        await store.UpdatePricingAsync(node.Id, new Core.Registry.NodePricing(effective.CpuPerPointHour, effective.MemoryPerGiBHour, effective.StoragePerGiBHour, effective.GpuPerHour),
            http.RequestAborted).ConfigureAwait(false);
        return Results.Ok(new PricingUpdateResponse(node.Id.Value, RatesView.From(requested), RatesView.From(effective), raised, RatesView.From(floors)));

        static void Raised(List<string> into, string name, decimal asked, decimal floor)
        {
            if (asked < floor)
            {
                into.Add(name);
            }
        }
    }

    private static async Task<IResult> ClaimAsync(HttpContext http, DepositGateway gateway, BillingHostMetrics metrics, ILoggerFactory logs)
    {
        if (gateway.Deposits is not { } deposits)
        {
            return NoChain();
        }

        var (body, bad) = await ReadAsync<DepositRequest>(http).ConfigureAwait(false);
        if (body is null)
        {
            return bad!;
        }

        if (body.TxHash is null || !TxHashPattern().IsMatch(body.TxHash))
        {
            return ApiEndpoints.Problem(400, "Invalid transaction hash",
                $"txHash '{Cut(body.TxHash ?? "null")}' must be 0x followed by 64 hex digits.", "txHash");
        }

        DepositClaimResult result;
        try
        {
            result = await deposits.ClaimAsync(body.TxHash, http.RequestAborted).ConfigureAwait(false);
        }
        catch (ChainException ex)
        {
            return ex.IsTransient
                ? ApiEndpoints.Problem(503, "Chain unavailable", ex.Message + " Try again later.")
                : ApiEndpoints.Problem(502, "Chain check failed", ex.Message);
        }

        var wallet = ApiEndpoints.Wallet(http);
        metrics.DepositClaims.Add(1, new KeyValuePair<string, object?>("outcome", result.Outcome.ToString()));
        BillingLog.DepositClaimed(logs.CreateLogger(typeof(BillingEndpoints)), body.TxHash, wallet.ToString(), result.Outcome.ToString());
        var required = gateway.RequiredConfirmations;
        var view = new DepositClaimView(body.TxHash.ToLowerInvariant(), result.Outcome.ToString(), result.Confirmations, required,
            result.Deposits.Select(DepositView.Of).ToList());
        return result.Outcome switch
        {
            DepositOutcome.Credited or DepositOutcome.AlreadyCredited => Results.Ok(view),
            DepositOutcome.Pending => Results.Json(view, statusCode: 202),
            DepositOutcome.NotFound => ApiEndpoints.Problem(404, "Transaction not found",
                $"Transaction {body.TxHash} is not mined on the configured chain (or was reorganized away)."),
            _ => Results.Problem(statusCode: 422, title: "Not a deposit", detail: result.Outcome switch
            {
                DepositOutcome.Reverted => "The transaction reverted.",
                DepositOutcome.WrongToken => "The transaction transfers another token than the platform's USDC contract.",
                DepositOutcome.WrongRecipient => "The transaction transfers USDC to another address than the platform's deposit address.",
                _ => "The transaction has no USDC transfer to the platform's deposit address.",
            }, extensions: new Dictionary<string, object?> { ["outcome"] = result.Outcome.ToString() }),
        };
    }

    private static PricingView Pricing(NodeRecord node, NodePriceBook book, PriceCalculator calculator) =>
        new(node.Id.Value, node.Operator.ToString(), RatesView.From(book.GetPrices(node.Id)), RatesView.From(calculator.Options.Floors),
            RatesView.From(calculator.Options.Defaults));

    private static (NodeRecord? Node, IResult? Problem) FindNode(string id, OrchestratorStore store)
    {
        if (!NodeId.TryParse(id, null, out var nodeId))
        {
            return (null, ApiEndpoints.Problem(400, "Invalid node id", $"'{Cut(id)}' is not a node id (64 hex characters).", "id"));
        }

        var node = store.GetNode(nodeId);
        return node is null ? (null, ApiEndpoints.Problem(404, "Node not found", $"No node {nodeId}.")) : (node, null);
    }

    private static IResult NoChain() => ApiEndpoints.Problem(503, "Deposits not configured",
        "This orchestrator has no chain configured for USDC deposits (Billing:Chain:RpcUrl, UsdcContract, DepositAddress).");

    /// <summary>
    /// Reads a JSON body of at most <see cref="MaxBodyBytes"/>: 413 when larger, 415 when not JSON, 400 when
    /// empty or malformed (naming where), so nothing is bound from a half-read or oversized body.
    /// </summary>
    internal static async Task<(T? Value, IResult? Problem)> ReadAsync<T>(HttpContext http)
        where T : class
    {
        var request = http.Request;
        if (request.ContentLength is > MaxBodyBytes)
        {
            return (null, TooLarge(request.ContentLength.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) + " bytes"));
        }

        if (!request.HasJsonContentType())
        {
            return (null, ApiEndpoints.Problem(415, "Unsupported Media Type", "Send the body as application/json."));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(MaxBodyBytes + 1);
        try
        {
            var total = 0;
            while (total <= MaxBodyBytes)
            {
                var n = await request.Body.ReadAsync(buffer.AsMemory(total, MaxBodyBytes + 1 - total), http.RequestAborted).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                total += n;
            }

            if (total > MaxBodyBytes)
            {
                return (null, TooLarge("more than " + MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) + " bytes"));
            }

            T? value;
            try
            {
                value = total == 0 ? null : JsonSerializer.Deserialize<T>(buffer.AsSpan(0, total), Json);
            }
            catch (JsonException ex)
            {
                var where = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? string.Empty : $" at {ex.Path}";
                return (null, ApiEndpoints.Problem(400, "Malformed JSON", $"The body is not valid JSON for this request{where}: {FirstSentence(ex.Message)}", ex.Path?.TrimStart('$', '.')));
            }

            return value is null ? (null, ApiEndpoints.Problem(400, "Body required", "Send a JSON object as the body.")) : (value, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static IResult TooLarge(string size) =>
        ApiEndpoints.Problem(413, "Request body too large", $"The body has {size}; at most {MaxBodyBytes} bytes are accepted.");

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(". ", StringComparison.Ordinal);
        return Cut(i < 0 ? message : message[..(i + 1)]);
    }

    private static string Cut(string s) => s.Length <= 120 ? s : s[..120] + "...";

    [GeneratedRegex("^0x[0-9a-fA-F]{64}$")]
    private static partial Regex TxHashPattern();
}
