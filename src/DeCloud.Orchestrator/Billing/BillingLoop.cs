using DeCloud.Billing;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// The orchestrator's billing pass, every <see cref="BillingHostOptions.AccrualInterval"/> on the injected
/// <see cref="TimeProvider"/>: closes the leases of VMs that ended (Deleted or Failed: the last partial hour
/// is charged to the second), charges complete running hours, and stops the running VMs of overdrawn users
/// through the normal VM stop path. Overdrawn events from the meter stop VMs at once; the pass catches what an
/// event missed (a restart, a VM that was still starting). Deposits are reconciled on chain when configured.
/// Everything it does is idempotent, so a crash between steps is repaired by the next pass.
/// </summary>
internal sealed class BillingLoop(
    UsageMeter meter,
    BillingLedger ledger,
    OrchestratorStore store,
    VmService vms,
    DepositGateway deposits,
    BillingHostMetrics metrics,
    IOptions<BillingHostOptions> options,
    TimeProvider time,
    ILogger<BillingLoop> logger) : BackgroundService
{
    private readonly HashSet<VmId> _closed = [];
    private readonly Lock _gate = new();

    /// <summary>One billing pass (also called by tests). Returns what the accrual charged.</summary>
    public AccrualResult RunOnce()
    {
        lock (_gate)
        {
            CloseEnded();
            var accrued = meter.Accrue();
            if (accrued.Postings > 0)
            {
                Log.Accrued(logger, accrued.Postings, MicroUsdc.Format(accrued.ChargedMicroUsdc));
            }

            foreach (var (user, balance) in ledger.GetOverdrawnUsers())
            {
                StopRunning(user, balance, null);
            }

            return accrued;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        meter.VmsOverdrawn += OnVmsOverdrawn;
        try
        {
            var o = options.Value;
            var lastReconcile = time.GetTimestamp();
            using var timer = new PeriodicTimer(o.AccrualInterval, time);
            do
            {
                try
                {
                    RunOnce();
                }
                catch (Exception ex) when (ex is BillingException or Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
                {
                    Log.PassFailed(logger, ex);
                }

                if (deposits.Deposits is { } chain && time.GetElapsedTime(lastReconcile) >= o.DepositReconcileInterval)
                {
                    lastReconcile = time.GetTimestamp();
                    await ReconcileAsync(chain, stoppingToken).ConfigureAwait(false);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        finally
        {
            meter.VmsOverdrawn -= OnVmsOverdrawn;
        }
    }

    private async Task ReconcileAsync(DeCloud.Billing.Chain.UsdcDeposits chain, CancellationToken ct)
    {
        try
        {
            var r = await chain.ReconcileAsync(ct).ConfigureAwait(false);
            if (r.Credited + r.Reversed + r.Dropped > 0)
            {
                Log.DepositsReconciled(logger, r.Credited, r.Reversed, r.Dropped);
            }
        }
        catch (ChainException ex)
        {
            Log.ReconcileFailed(logger, ex.IsTransient, ex.Message);
        }
    }

    private void OnVmsOverdrawn(object? sender, VmsOverdrawnEventArgs e)
    {
        try
        {
            StopRunning(e.User, e.BalanceMicroUsdc, e.Vms);
        }
        catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
        {
            Log.PassFailed(logger, ex); // the next pass stops them
        }
    }

    /// <summary>Stops the user's running VMs (all of them, or those listed), through <see cref="VmService.Stop"/>.</summary>
    private void StopRunning(WalletAddress user, long balance, IReadOnlyList<VmId>? only)
    {
        foreach (var vm in store.ListVms(user))
        {
            if (vm.State != VmStates.Running || (only is not null && !only.Contains(vm.Id)))
            {
                continue;
            }

            Log.StoppingOverdrawn(logger, user.ToString(), MicroUsdc.Format(balance), vm.Id.ToString());
            if (vms.Stop(user, vm.Id).Outcome == VmOutcome.Ok)
            {
                metrics.VmsStopped.Add(1);
            }
        }
    }

    /// <summary>Closes the open leases of VMs that reached Deleted or Failed.</summary>
    private void CloseEnded()
    {
        foreach (var vm in store.ListVms(null))
        {
            if (VmStates.HoldsResources(vm.State) || _closed.Contains(vm.Id))
            {
                continue;
            }

            if (meter.GetLease(vm.Id) is { IsClosed: false })
            {
                var last = meter.Close(vm.Id);
                Log.LeaseClosed(logger, vm.Id.ToString(), vm.State, MicroUsdc.Format(last.ChargedMicroUsdc));
            }

            _closed.Add(vm.Id);
        }
    }
}
