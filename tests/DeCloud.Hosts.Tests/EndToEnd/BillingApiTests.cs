using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DeCloud.Cli.Client;
using DeCloud.Core.Model;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>The billing endpoints through HTTP against a running orchestrator: estimates, node pricing, balance, featured nodes, bad input.</summary>
public sealed class BillingApiTests
{
    [Fact]
    public async Task PatchPricing_OperatorBelowFloor_RaisedAndEstimateOnNodeUsesIt()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var (_, http, wallet) = await orch.SignInAsync(WalletKey.Generate());
        var node = await orch.AddNodeAsync(wallet, "m1");

        using var patch = await PatchAsync(http, node.Value, """{"cpuPerPointHour": 0.001, "memoryPerGiBHour": 0.02}""");
        var updated = await Json(patch, HttpStatusCode.OK);
        using var anonymous = new HttpClient { BaseAddress = orch.Api };
        var pricing = await Json(await anonymous.GetAsync($"api/v1/nodes/{node.Value}/pricing"), HttpStatusCode.OK);
        using var estimateResponse = await anonymous.PostAsJsonAsync("api/v1/vms/estimate",
            new { computePoints = 2, memoryMiB = 2048, storageGiB = 10, qualityTier = "Dedicated", nodeId = node.Value });
        var estimate = await Json(estimateResponse, HttpStatusCode.OK);

        Assert.Equal(0.005m, updated.GetProperty("effective").GetProperty("cpuPerPointHour").GetDecimal());
        Assert.Equal(0.001m, updated.GetProperty("requested").GetProperty("cpuPerPointHour").GetDecimal());
        Assert.Equal(0.02m, updated.GetProperty("effective").GetProperty("memoryPerGiBHour").GetDecimal());
        Assert.Equal(["cpuPerPointHour"], updated.GetProperty("raisedToFloor").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(0.02m, pricing.GetProperty("rates").GetProperty("memoryPerGiBHour").GetDecimal());
        Assert.Equal(wallet.ToString(), pricing.GetProperty("operator").GetString());

        // Dedicated: 2 points x 0.005 + 2 GiB x 0.02 + 10 GiB x 0.0001 = 0.051, plus the Standard bandwidth rate.
        var defaults = estimate.GetProperty("platformDefaults");
        var onNode = estimate.GetProperty("node").GetProperty("estimate");
        Assert.Equal(0.051m, onNode.GetProperty("resourceHourlyUsdc").GetDecimal());
        Assert.Equal(0.02m + 0.01m + 0.001m, defaults.GetProperty("resourceHourlyUsdc").GetDecimal());
        Assert.Contains(onNode.GetProperty("lines").EnumerateArray(), l => l.GetProperty("item").GetString() == "memory" && l.GetProperty("hourlyUsdc").GetDecimal() == 0.04m);
        Assert.Equal(onNode.GetProperty("hourlyUsdc").GetDecimal() * 24, onNode.GetProperty("dailyUsdc").GetDecimal());
    }

    [Fact]
    public async Task PatchPricing_NotOperatorOrBadPrices_ProblemDetailsAndPricesUnchanged()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var (_, http, wallet) = await orch.SignInAsync(WalletKey.Generate());
        var (_, stranger, _) = await orch.SignInAsync(WalletKey.Generate());
        var node = (await orch.AddNodeAsync(wallet, "m1")).Value;
        using var anonymous = new HttpClient { BaseAddress = orch.Api };
        var before = (await Json(await anonymous.GetAsync($"api/v1/nodes/{node}/pricing"), HttpStatusCode.OK)).GetRawText();

        await Problem(await PatchAsync(stranger, node, """{"cpuPerPointHour": 0.5}"""), HttpStatusCode.Forbidden, "Not the node's operator");
        await Problem(await PatchAsync(anonymous, node, """{"cpuPerPointHour": 0.5}"""), HttpStatusCode.Unauthorized, "Sign-in required");
        var negative = await Problem(await PatchAsync(http, node, """{"cpuPerPointHour": 0.5, "gpuPerHour": -1}"""), HttpStatusCode.BadRequest, "Invalid price");
        Assert.Equal("gpuPerHour", negative.GetProperty("field").GetString());
        await Problem(await PatchAsync(http, node, """{"memoryPerGiBHour": 5000}"""), HttpStatusCode.BadRequest, "Invalid price");
        await Problem(await PatchAsync(http, node, """{"cpuPerPointHour": NaN}"""), HttpStatusCode.BadRequest, "Malformed JSON");
        await Problem(await PatchAsync(http, node, """{"cpuPerPointHour": "NaN"}"""), HttpStatusCode.BadRequest, "Malformed JSON");
        await Problem(await PatchAsync(http, node, """{"cpuPerPointHour": 1e40}"""), HttpStatusCode.BadRequest, "Malformed JSON");
        await Problem(await PatchAsync(http, node, """{"cpuPerPointHour": 0.5"""), HttpStatusCode.BadRequest, "Malformed JSON");
        await Problem(await PatchAsync(http, node, "{}"), HttpStatusCode.BadRequest, "Nothing to change");
        await Problem(await PatchAsync(http, node, ""), HttpStatusCode.BadRequest, "Body required");
        await Problem(await PatchAsync(http, node, "{\"cpuPerPointHour\": 0.5, \"pad\": \"" + new string('x', 20_000) + "\"}"), HttpStatusCode.RequestEntityTooLarge, "Request body too large");
        await Problem(await PatchAsync(http, new string('a', 64), """{"cpuPerPointHour": 0.5}"""), HttpStatusCode.NotFound, "Node not found");
        await Problem(await PatchAsync(http, "not-a-node", """{"cpuPerPointHour": 0.5}"""), HttpStatusCode.BadRequest, "Invalid node id");
        await Problem(await anonymous.GetAsync("api/v1/nodes/not-a-node/pricing"), HttpStatusCode.BadRequest, "Invalid node id");

        var after = (await Json(await anonymous.GetAsync($"api/v1/nodes/{node}/pricing"), HttpStatusCode.OK)).GetRawText();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task Estimate_BadRequests_ProblemDetailsNamingTheField()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        using var http = new HttpClient { BaseAddress = orch.Api };

        var negative = await Problem(await http.PostAsJsonAsync("api/v1/vms/estimate", new { computePoints = -1, memoryMiB = 512, storageGiB = 1 }), HttpStatusCode.BadRequest, "Invalid VM request");
        Assert.Contains("computePoints", negative.GetProperty("field").GetString(), StringComparison.OrdinalIgnoreCase);
        var tier = await Problem(await http.PostAsJsonAsync("api/v1/vms/estimate", new { computePoints = 1, memoryMiB = 512, storageGiB = 1, qualityTier = "Golden" }), HttpStatusCode.BadRequest, "Invalid VM request");
        Assert.Contains("Golden", tier.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await Problem(await http.PostAsJsonAsync("api/v1/vms/estimate", new { computePoints = 1, memoryMiB = 512, storageGiB = 1, nodeId = new string('b', 64) }), HttpStatusCode.NotFound, "Node not found");
        await Problem(await http.PostAsync("api/v1/vms/estimate", new StringContent("[1,2", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "Malformed JSON");
        await Problem(await http.PostAsync("api/v1/vms/estimate", new StringContent("computePoints=1", Encoding.UTF8, "text/plain")), HttpStatusCode.UnsupportedMediaType, "Unsupported Media Type");
        await Problem(await http.PostAsync("api/v1/vms/estimate", new StringContent(new string(' ', 17_000) + "{}", Encoding.UTF8, "application/json")), HttpStatusCode.RequestEntityTooLarge, "Request body too large");
    }

    [Fact]
    public async Task Balance_VmCreatedOnPricedNode_ZeroBalanceAndRateFrozenAtNodePrice()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var (client, http, wallet) = await orch.SignInAsync(WalletKey.Generate());
        var node = await orch.AddNodeAsync(wallet, "m1");
        (await PatchAsync(http, node.Value, """{"cpuPerPointHour": 0.03}""")).Dispose();

        var vm = await client.CreateVmAsync(new { name = "a", computePoints = 1, memoryMiB = 1024, storageGiB = 10, nodeId = node.Value }, default).Within();
        (await PatchAsync(http, node.Value, """{"cpuPerPointHour": 0.9}""")).Dispose();
        var estimate = await client.EstimateVmAsync(new { computePoints = 1, memoryMiB = 1024, storageGiB = 10 }, default).Within();
        var balance = await client.GetBalanceAsync(default).Within();

        Assert.Equal(wallet.ToString(), balance.Address);
        Assert.Equal(0, balance.BalanceMicroUsdc);
        Assert.Equal("0.000000", balance.BalanceUsdc);
        Assert.False(balance.Overdrawn);
        var lease = Assert.Single(balance.Vms);
        Assert.Equal(vm.Id, lease.VmId);
        Assert.Equal(node.Value, lease.NodeId);
        // Standard quality gives 8/12 of a point: 0.03 x 8/12 + 1 GiB x 0.005 + 10 GiB x 0.0001 + bandwidth 0.005 = 0.031 (the later 0.9 does not apply).
        Assert.Equal(0.031m, lease.HourlyRateUsdc);
        Assert.NotEqual(estimate.PlatformDefaults.HourlyUsdc, lease.HourlyRateUsdc);
    }

    [Fact]
    public async Task Featured_OnlineNodes_CheaperFirstWithReasonAndLimitChecked()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var (_, http, wallet) = await orch.SignInAsync(WalletKey.Generate());
        var dear = await orch.AddNodeAsync(wallet, "dear");
        var cheap = await orch.AddNodeAsync(wallet, "cheap");
        (await PatchAsync(http, dear.Value, """{"cpuPerPointHour": 0.2, "memoryPerGiBHour": 0.1}""")).Dispose();
        (await PatchAsync(http, cheap.Value, """{"cpuPerPointHour": 0, "memoryPerGiBHour": 0, "storagePerGiBHour": 0}""")).Dispose();
        using var anonymous = new HttpClient { BaseAddress = orch.Api };

        var featured = await Json(await anonymous.GetAsync("api/v1/nodes/featured?limit=5"), HttpStatusCode.OK);

        var list = featured.EnumerateArray().ToList();
        Assert.Equal([cheap.Value, dear.Value], list.Select(f => f.GetProperty("node").GetProperty("id").GetString()));
        Assert.Equal([1, 2], list.Select(f => f.GetProperty("rank").GetInt32()));
        Assert.Equal(1m, list[0].GetProperty("priceScore").GetDecimal());
        Assert.Contains("the floor", list[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
        await Problem(await anonymous.GetAsync("api/v1/nodes/featured?limit=0"), HttpStatusCode.BadRequest, "Invalid limit");
        await Problem(await anonymous.GetAsync("api/v1/nodes/featured?limit=51"), HttpStatusCode.BadRequest, "Invalid limit");
    }

    [Fact]
    public async Task Deposits_NoChainConfigured_503SayingSo()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var (_, http, _) = await orch.SignInAsync(WalletKey.Generate());

        var post = await Problem(await http.PostAsJsonAsync("api/v1/deposits", new { txHash = "0x" + new string('a', 64) }), HttpStatusCode.ServiceUnavailable, "Deposits not configured");
        await Problem(await http.GetAsync("api/v1/deposits"), HttpStatusCode.ServiceUnavailable, "Deposits not configured");
        Assert.Contains("Billing:Chain", post.GetProperty("detail").GetString(), StringComparison.Ordinal);
        using var anonymous = new HttpClient { BaseAddress = orch.Api };
        await Problem(await anonymous.GetAsync("api/v1/balance"), HttpStatusCode.Unauthorized, "Sign-in required");
    }

    [Fact]
    public async Task OpenApi_Document_DescribesEveryBillingEndpoint()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        using var http = new HttpClient { BaseAddress = orch.Api };

        var doc = await Json(await http.GetAsync("openapi/v1.json"), HttpStatusCode.OK);

        var paths = doc.GetProperty("paths");
        Assert.True(paths.GetProperty("/api/v1/vms/estimate").TryGetProperty("post", out var estimate));
        Assert.True(estimate.TryGetProperty("requestBody", out _));
        Assert.True(paths.GetProperty("/api/v1/nodes/{id}/pricing").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/api/v1/nodes/{id}/pricing").TryGetProperty("patch", out _));
        Assert.True(paths.GetProperty("/api/v1/balance").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/api/v1/deposits").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/api/v1/deposits").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/api/v1/nodes/featured").TryGetProperty("get", out _));
    }

    internal static Task<HttpResponseMessage> PatchAsync(HttpClient http, string node, string json) =>
        http.PatchAsync($"api/v1/nodes/{node}/pricing", new StringContent(json, Encoding.UTF8, "application/json"));

    internal static async Task<JsonElement> Json(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, $"expected {expected}, got {response.StatusCode}: {text}");
            return JsonDocument.Parse(text).RootElement.Clone();
        }
    }

    internal static async Task<JsonElement> Problem(HttpResponseMessage response, HttpStatusCode expected, string title)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await Json(response, expected);
        Assert.Equal(title, problem.GetProperty("title").GetString());
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        return problem;
    }
}
