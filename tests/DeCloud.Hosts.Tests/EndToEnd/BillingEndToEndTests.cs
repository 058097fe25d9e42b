using System.Diagnostics.Metrics;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Cli.Client;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Billing;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>Metering from a real agent process: heartbeat usage -> ledger charges -> an overdrawn user's VMs stopped on the agent.</summary>
public sealed class BillingEndToEndTests
{
    [Fact]
    public async Task AgentUsage_VmDeletedWithNoBalance_ChargedToTheSecondOperatorPaidOtherVmStopped()
    {
        await using var orch = await BillingOrchestrator.StartAsync("--Billing:AccrualInterval=00:00:00.200");
        using var usage = new MetricCollector<long>(orch.Services.GetRequiredService<IMeterFactory>(), BillingHostMetrics.MeterName,
            "decloud.orchestrator.billing.usage_records");
        var operatorKey = WalletKey.Generate();
        orch.StartAgent("a1", operatorKey);
        var (client, _, user) = await orch.SignInAsync(WalletKey.Generate());
        await Eventually(async () => (await client.SearchNodesAsync("?online=true", default)).Count == 1, "the agent to register");

        var a = await client.CreateVmAsync(new { name = "a", computePoints = 1, memoryMiB = 512, storageGiB = 1 }, default).Within();
        var b = await client.CreateVmAsync(new { name = "b", computePoints = 1, memoryMiB = 512, storageGiB = 1 }, default).Within();
        foreach (var vm in new[] { a, b })
        {
            await Eventually(async () => (await client.GetVmAsync(vm.Id, default)).State == "Running", $"VM {vm.Name} to run");
        }

        // Each accepted record is a new whole running second of one VM: wait for a few seconds of both.
        await Eventually(() => Task.FromResult(Accepted(usage) >= 6), "usage records from the agent's heartbeats");
        await client.DeleteVmAsync(a.Id, default).Within();
        var closed = await EventuallyValue(async () => (await client.GetBalanceAsync(default)).Vms.SingleOrDefault(l => l.VmId == a.Id && l.Closed), "the lease of the deleted VM to close");
        var stopped = await EventuallyValue(async () => await client.GetVmAsync(b.Id, default) is { State: "Stopped", PowerState: "stopped" } v ? v : null, "the overdrawn user's other VM to stop");
        var balance = await client.GetBalanceAsync(default).Within();

        Assert.InRange(closed.BilledSeconds, 2, 600);
        Assert.Equal((long)Math.Floor(closed.HourlyRateUsdc * closed.BilledSeconds / 3600m * 1_000_000m), closed.ChargedMicroUsdc);
        Assert.True(closed.ChargedMicroUsdc > 0);
        Assert.True(balance.Overdrawn);
        Assert.Equal(-closed.ChargedMicroUsdc, balance.BalanceMicroUsdc);
        Assert.Equal("stopped", stopped.PowerState);
        var ledger = orch.Services.GetRequiredService<BillingLedger>();
        var earned = ledger.GetBalance(LedgerAccount.NodeOperator(WalletAddress.Parse(operatorKey.Address)));
        Assert.Equal(closed.ChargedMicroUsdc - ledger.GetBalance(LedgerAccount.Platform), earned);
        Assert.True(earned > 0);
        Assert.Equal(0, ledger.SumOfAllEntries());
        Assert.False(orch.Services.GetRequiredService<UsageMeter>().GetLease(VmId.Parse(b.Id))!.IsClosed);
        Assert.True(ledger.GetOverdrawnUsers().ContainsKey(user));
    }

    private static long Accepted(MetricCollector<long> usage) =>
        usage.GetMeasurementSnapshot().Where(m => m.Tags.TryGetValue("outcome", out var o) && (string?)o == "accepted").Sum(m => m.Value);

    private static async Task Eventually(Func<Task<bool>> probe, string what) =>
        await EventuallyValue(async () => await probe() ? "done" : null, what);

    private static async Task<T> EventuallyValue<T>(Func<Task<T?>> probe, string what)
        where T : class
    {
        var started = TimeProvider.System.GetTimestamp();
        while (true)
        {
            if (await probe().Within() is { } v)
            {
                return v;
            }

            if (TimeProvider.System.GetElapsedTime(started) > TimeSpan.FromSeconds(90))
            {
                throw new TimeoutException("Timed out waiting for " + what + ".");
            }

            await Task.Delay(100);
        }
    }
}
