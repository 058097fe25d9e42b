using System.Text.Json;
using DeCloud.Cli;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Orchestrator.Billing;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary><c>decloud balance</c>, <c>decloud vm estimate</c> and <c>decloud deposit</c> against a running orchestrator.</summary>
public sealed class BillingCliTests
{
    [Fact]
    public async Task BalanceAndEstimate_SignedIn_PrintRealBalanceAndItemizedEstimate()
    {
        await using var orch = await BillingOrchestrator.StartAsync();
        var session = await UserCommands.SignInAsync(orch.Api, WalletKey.Generate(), CancellationToken.None).Within();
        var sessionFile = Path.Combine(orch.Dir, "session.json");
        session.Save(sessionFile);

        var (balanceExit, balance, _) = await RunAsync("balance", "--session-file", sessionFile);
        var (estimateExit, estimate, _) = await RunAsync("vm", "estimate", "--url", orch.Api.ToString(), "--cp", "2", "--memory", "2048", "--storage", "10", "--json");
        var (depositExit, _, depositError) = await RunAsync("deposit", "claim", "0x" + new string('a', 64), "--session-file", sessionFile);

        Assert.Equal(ExitCodes.Ok, balanceExit);
        Assert.Contains($"{session.Address}: balance 0.000000 USDC, escrow 0.000000 USDC", balance, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, estimateExit);
        var json = JsonDocument.Parse(estimate).RootElement.GetProperty("platformDefaults");
        // Standard quality: 2 points x 8/12 x 0.01 + 2 GiB x 0.005 + 10 GiB x 0.0001 + bandwidth 0.005.
        Assert.Equal(0.0133333m + 0.01m + 0.001m + 0.005m, Math.Round(json.GetProperty("hourlyUsdc").GetDecimal(), 7));
        Assert.NotEqual(ExitCodes.Ok, depositExit);
        Assert.Contains("Deposits not configured", depositError, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadIntervals_MessagesNameTheProperty()
    {
        var errors = new BillingHostOptions { AccrualInterval = TimeSpan.Zero, DepositReconcileInterval = TimeSpan.FromDays(1) }.Validate();

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("Billing:AccrualInterval", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Billing:DepositReconcileInterval", StringComparison.Ordinal));
        Assert.Empty(new BillingHostOptions().Validate());
    }

    private static async Task<(int Exit, string Out, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await CliApp.RunAsync(args, output, error).Within();
        return (exit, output.ToString(), error.ToString());
    }
}
