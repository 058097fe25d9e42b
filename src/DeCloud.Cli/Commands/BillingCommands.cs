using System.CommandLine;
using System.Globalization;
using DeCloud.Cli.Client;

namespace DeCloud.Cli.Commands;

/// <summary><c>decloud balance</c>, <c>decloud deposit claim|list</c> and <c>decloud vm estimate</c>.</summary>
internal static class BillingCommands
{
    /// <summary>Adds <c>balance</c> and <c>deposit</c> to <paramref name="root"/> (<c>vm estimate</c> is added by the <c>vm</c> command).</summary>
    public static void AddTo(RootCommand root, CliOutput output)
    {
        root.Subcommands.Add(Balance(output));
        root.Subcommands.Add(Deposit(output));
    }

    internal static string EstimateText(EstimateInfo e)
    {
        var text = EstimateTable("platform defaults", e.PlatformDefaults);
        return e.Node is { } n ? text + "\n" + EstimateTable($"on node {Table.Short(n.NodeId)}{(n.Online ? string.Empty : " (offline)")}", n.Estimate) : text;
    }

    internal static string BalanceText(BalanceInfo b)
    {
        var head = $"{b.Address}: balance {b.BalanceUsdc} USDC, escrow {b.EscrowUsdc} USDC{(b.Overdrawn ? ", OVERDRAWN (running VMs are stopped)" : string.Empty)}\n";
        return b.Vms.Count == 0 ? head : head + Table.Render(["VM", "NODE", "USDC/h (frozen)", "BILLED s", "CHARGED USDC", "CLOSED"],
            b.Vms.Select(l => (IReadOnlyList<string>)[l.VmId, l.NodeId is null ? "-" : Table.Short(l.NodeId), Usdc(l.HourlyRateUsdc),
                Table.Invariant(l.BilledSeconds), Usdc(l.ChargedMicroUsdc / 1_000_000m), l.Closed ? "yes" : "no"]));
    }

    private static Command Balance(CliOutput output)
    {
        var cmd = new Command("balance", "Show your balance, escrow, overdrawn state and your VMs' frozen rates and charges.");
        cmd.SetAction(async (p, ct) =>
        {
            using var client = UserCommands.Connect(output, p);
            var balance = await client.GetBalanceAsync(ct).ConfigureAwait(false);
            await UserCommands.Print(output, p, balance, () => BalanceText(balance), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static Command Deposit(CliOutput output)
    {
        var tx = new Argument<string>("tx-hash") { Description = "The transaction that sent USDC to the platform's deposit address (0x + 64 hex)." };
        var claim = new Command("claim", "Credit a USDC transfer to the platform's deposit address (verified on chain, once).") { tx };
        claim.SetAction(async (p, ct) =>
        {
            using var client = UserCommands.Connect(output, p);
            var r = await client.ClaimDepositAsync(p.GetValue(tx)!, ct).ConfigureAwait(false);
            await UserCommands.Print(output, p, r, () => r.Outcome == "Pending"
                ? $"{r.TxHash}: pending, {r.Confirmations}/{r.RequiredConfirmations} confirmations; claim again later.\n"
                : $"{r.TxHash}: {r.Outcome}, {string.Join(", ", r.Deposits.Select(d => $"{d.AmountUsdc} USDC from {d.From}"))}\n", ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        var list = new Command("list", "List the deposits sent from your wallet.");
        list.SetAction(async (p, ct) =>
        {
            using var client = UserCommands.Connect(output, p);
            var deposits = await client.ListDepositsAsync(ct).ConfigureAwait(false);
            await UserCommands.Print(output, p, deposits, () => Table.Render(["TX", "LOG", "USDC", "BLOCK", "STATE"],
                deposits.Select(d => (IReadOnlyList<string>)[d.TxHash, Table.Invariant(d.LogIndex), d.AmountUsdc, Table.Invariant(d.BlockNumber), d.State])), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return new Command("deposit", "USDC deposits.") { claim, list };
    }

    /// <summary><c>vm estimate</c>: the same VM options as <c>vm create</c>, so both always accept the same request.</summary>
    internal static Command Estimate(CliOutput output, UserCommands.VmSpecOptions spec)
    {
        var cmd = new Command("estimate", "Estimate a VM's hourly cost (itemized) at the platform defaults, and on --node if given.");
        spec.AddTo(cmd);
        cmd.SetAction(async (p, ct) =>
        {
            using var client = UserCommands.Connect(output, p, requireSession: false);
            var estimate = await client.EstimateVmAsync(spec.Body(p), ct).ConfigureAwait(false);
            await UserCommands.Print(output, p, estimate, () => EstimateText(estimate), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    internal static string EstimateTable(string title, CostEstimateInfo e) =>
        $"Estimate {title}: {Usdc(e.HourlyUsdc)} USDC/h, {Usdc(e.DailyUsdc)} USDC/day, {Usdc(e.MonthlyUsdc)} USDC/month ({e.QualityTier} quality, {e.BandwidthTier} bandwidth)\n"
        + Table.Render(["ITEM", "QUANTITY", "USDC/unit-h", "USDC/h"],
            e.Lines.Select(l => (IReadOnlyList<string>)[l.Item, l.Quantity.ToString("0.####", CultureInfo.InvariantCulture), Usdc(l.UnitRateUsdc), Usdc(l.HourlyUsdc)]))
        + $"resources {Usdc(e.ResourceHourlyUsdc)} x bandwidth multiplier {e.BandwidthMultiplier.ToString("0.##", CultureInfo.InvariantCulture)} + bandwidth {Usdc(e.BandwidthHourlyUsdc)} = {Usdc(e.HourlyUsdc)} USDC/h\n";

    internal static string Usdc(decimal v) => v.ToString("0.######", CultureInfo.InvariantCulture);
}
