using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using DeCloud.Billing.Ledger;
using DeCloud.Cli.Client;
using DeCloud.Core.Model;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>One hardhat node (the Billing tests' fixture, shared through DeCloud.Testing) for the orchestrator's deposit tests.</summary>
[CollectionDefinition(Name)]
public sealed class BillingHardhatCollection : ICollectionFixture<HardhatChain>
{
    public const string Name = "billing-hardhat";
}

/// <summary>POST /api/v1/deposits against a real local EVM chain: verified on chain, credited once, problem details otherwise.</summary>
[Collection(BillingHardhatCollection.Name)]
public sealed class BillingDepositTests(HardhatChain chain)
{
    [Fact]
    public async Task PostDeposit_TwiceConcurrentlyThenAgain_BalanceCreditedExactlyOnce()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync().Within(TimeBox.RealPart);
        var depositAddress = HardhatChain.NewAddress();
        await using var orch = await StartAsync(token, depositAddress);
        var (client, http, wallet) = await orch.SignInAsync(Account0(orch.Dir));
        Assert.Equal(WalletAddress.Parse(chain.Accounts[0]), wallet);
        var tx = await chain.TransferAsync(token, chain.Accounts[0], depositAddress, 12_500_000).Within(TimeBox.RealPart);

        var both = await Task.WhenAll(
            http.PostAsJsonAsync("api/v1/deposits", new { txHash = tx }),
            http.PostAsJsonAsync("api/v1/deposits", new { txHash = tx.ToUpperInvariant().Replace("0X", "0x", StringComparison.Ordinal) })).Within(TimeBox.RealPart);
        var outcomes = new List<string>();
        foreach (var r in both)
        {
            outcomes.Add((await BillingApiTests.Json(r, HttpStatusCode.OK)).GetProperty("outcome").GetString()!);
        }

        var again = await client.ClaimDepositAsync(tx, default).Within(TimeBox.RealPart);
        var balance = await client.GetBalanceAsync(default).Within();
        var deposits = await client.ListDepositsAsync(default).Within();

        Assert.Equal(["AlreadyCredited", "Credited"], outcomes.Order());
        Assert.Equal("AlreadyCredited", again.Outcome);
        Assert.Equal(12_500_000, balance.BalanceMicroUsdc);
        Assert.Equal("12.500000", balance.BalanceUsdc);
        var d = Assert.Single(deposits);
        Assert.Equal((tx.ToLowerInvariant(), "Credited", 12_500_000L), (d.TxHash, d.State, d.AmountMicroUsdc));
        var ledger = orch.Services.GetRequiredService<BillingLedger>();
        Assert.Equal(0, ledger.SumOfAllEntries());
        Assert.Equal(1, ledger.PostingCount());
    }

    [Fact]
    public async Task PostDeposit_NotADepositOrMalformed_ProblemDetailsAndNothingCredited()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync().Within(TimeBox.RealPart);
        var depositAddress = HardhatChain.NewAddress();
        await using var orch = await StartAsync(token, depositAddress);
        var (client, http, _) = await orch.SignInAsync(Account0(orch.Dir));
        var elsewhere = await chain.TransferAsync(token, chain.Accounts[0], HardhatChain.NewAddress(), 3_000_000).Within(TimeBox.RealPart);
        var unknown = "0x" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

        var wrong = await BillingApiTests.Problem(await http.PostAsJsonAsync("api/v1/deposits", new { txHash = elsewhere }), HttpStatusCode.UnprocessableEntity, "Not a deposit");
        Assert.Equal("WrongRecipient", wrong.GetProperty("outcome").GetString());
        await BillingApiTests.Problem(await http.PostAsJsonAsync("api/v1/deposits", new { txHash = unknown }), HttpStatusCode.NotFound, "Transaction not found");
        foreach (var bad in new[] { "0x1234", "0x" + new string('g', 64), "not a hash", string.Empty })
        {
            var p = await BillingApiTests.Problem(await http.PostAsJsonAsync("api/v1/deposits", new { txHash = bad }), HttpStatusCode.BadRequest, "Invalid transaction hash");
            Assert.Equal("txHash", p.GetProperty("field").GetString());
        }

        await BillingApiTests.Problem(await http.PostAsJsonAsync("api/v1/deposits", new { }), HttpStatusCode.BadRequest, "Invalid transaction hash");
        Assert.Equal(0, (await client.GetBalanceAsync(default).Within()).BalanceMicroUsdc);
        Assert.Equal(0, orch.Services.GetRequiredService<BillingLedger>().PostingCount());
    }

    private Task<BillingOrchestrator> StartAsync(string token, string depositAddress) => BillingOrchestrator.StartAsync(
        "--Billing:Chain:RpcUrl=" + chain.RpcUrl, "--Billing:Chain:ChainId=31337", "--Billing:Chain:UsdcContract=" + token,
        "--Billing:Chain:DepositAddress=" + depositAddress, "--Billing:Chain:Confirmations=1",
        "--Billing:Chain:ReorgDepth=" + 16.ToString(CultureInfo.InvariantCulture));

    /// <summary>Hardhat's first development account (it deployed the token and holds its supply) as a wallet key to sign in with.</summary>
    private static WalletKey Account0(string dir)
    {
        var path = Path.Combine(dir, "account0.key");
        File.WriteAllText(path, HardhatChain.Account0Key);
        return WalletKey.Load(path);
    }
}
