using System.Globalization;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Billing.Metering;

/// <summary>
/// Leases, usage ingest and hourly accrual. A VM is registered at creation (priced at platform
/// defaults), placed on a node (re-priced at the node's floor-enforced prices, then fixed), metered
/// with cumulative usage records (ingest is idempotent on the record id), and accrued into hourly
/// charges: the user pays, the node operator, the relay operator (when relayed) and the platform earn.
/// Each hour's amount is floor(rate x hours) minus what was charged before, so rounding happens once
/// and the remainder carries forward. State and postings change in one SQLite transaction, so a crash
/// at any point loses and doubles nothing.
/// </summary>
public sealed class UsageMeter
{
    internal const string Component = "metering";
    private const int MaxProblems = 20;

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE billing_leases (
            vm_id TEXT PRIMARY KEY,
            user_wallet TEXT NOT NULL,
            compute_points INTEGER NOT NULL, memory_mib INTEGER NOT NULL, storage_gib INTEGER NOT NULL,
            gpus INTEGER NOT NULL, gpu_model TEXT NULL, quality INTEGER NOT NULL, bandwidth INTEGER NOT NULL,
            hourly_rate TEXT NOT NULL,
            node_id TEXT NULL, operator_wallet TEXT NULL, relay_wallet TEXT NULL,
            billed_seconds INTEGER NOT NULL DEFAULT 0,
            charged_micro INTEGER NOT NULL DEFAULT 0,
            closed INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        CREATE INDEX billing_leases_user ON billing_leases(user_wallet);
        CREATE TABLE usage_records (
            record_id TEXT PRIMARY KEY,
            vm_id TEXT NOT NULL, node_id TEXT NOT NULL, sequence INTEGER NOT NULL, observed_at_ms INTEGER NOT NULL,
            running_seconds INTEGER NOT NULL, relayed_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE usage_state (
            vm_id TEXT PRIMARY KEY,
            running_seconds INTEGER NOT NULL, relayed_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL,
            last_observed_ms INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE accruals (
            vm_id TEXT NOT NULL, hour INTEGER NOT NULL,
            amount INTEGER NOT NULL, node_amount INTEGER NOT NULL, relay_amount INTEGER NOT NULL, platform_amount INTEGER NOT NULL,
            accrued_at_ms INTEGER NOT NULL,
            PRIMARY KEY (vm_id, hour)) WITHOUT ROWID;
        CREATE INDEX accruals_time ON accruals(accrued_at_ms);
        CREATE TABLE sla_credits (
            vm_id TEXT NOT NULL, period_start_ms INTEGER NOT NULL, period_end_ms INTEGER NOT NULL,
            uptime TEXT NOT NULL, amount INTEGER NOT NULL,
            PRIMARY KEY (vm_id, period_start_ms)) WITHOUT ROWID;
        """,
    ];

    private readonly BillingLedger _ledger;
    private readonly PriceCalculator _prices;
    private readonly NodePriceBook _priceBook;
    private readonly MeteringOptions _options;
    private readonly INodeUptimeSource? _uptime;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Opens the meter on the ledger's database, creating its tables once.</summary>
    public UsageMeter(BillingLedger ledger, PriceCalculator prices, NodePriceBook priceBook, MeteringOptions options,
        INodeUptimeSource? uptime = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(prices);
        ArgumentNullException.ThrowIfNull(priceBook);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _ledger = ledger;
        _prices = prices;
        _priceBook = priceBook;
        _options = options;
        _uptime = uptime;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<UsageMeter>();
        ledger.Database.Migrate(Component, Migrations);
        ledger.Overdrawn += OnOverdrawn;
    }

    /// <summary>Raised after a charge left a user's balance at or below zero, with the user's open VMs.</summary>
    public event EventHandler<VmsOverdrawnEventArgs>? VmsOverdrawn;

    /// <summary>Test seam: called after each posting inside an accrual transaction (a throw rolls it all back).</summary>
    internal Action<int>? AfterAccrualPosting { get; set; }

    /// <summary>
    /// Registers a VM at creation, priced at the platform's default rates. Registering the same VM again
    /// returns the existing lease unchanged.
    /// </summary>
    public BillingLease RegisterVm(VmId vm, WalletAddress user, Resources resources, QualityTier quality, BandwidthTier bandwidth)
    {
        RequireVm(vm);
        if (user.IsEmpty)
        {
            throw Check.Fail("user", "must be a wallet address.");
        }

        var estimate = _prices.EstimateWithDefaults(resources, quality, bandwidth);
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            INSERT INTO billing_leases (vm_id, user_wallet, compute_points, memory_mib, storage_gib, gpus, gpu_model, quality, bandwidth, hourly_rate)
            VALUES ($vm, $u, $cp, $mem, $st, $g, $gm, $q, $b, $r) ON CONFLICT (vm_id) DO NOTHING;
            """;
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        cmd.Parameters.AddWithValue("$u", user.ToLowerHex());
        cmd.Parameters.AddWithValue("$cp", resources.ComputePoints);
        cmd.Parameters.AddWithValue("$mem", resources.MemoryMiB);
        cmd.Parameters.AddWithValue("$st", resources.StorageGiB);
        cmd.Parameters.AddWithValue("$g", resources.Gpus);
        cmd.Parameters.AddWithValue("$gm", (object?)resources.GpuModel ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$q", (int)quality);
        cmd.Parameters.AddWithValue("$b", (int)bandwidth);
        cmd.Parameters.AddWithValue("$r", estimate.HourlyUsdc.ToString(CultureInfo.InvariantCulture));
        cmd.ExecuteNonQuery();
        return GetLease(vm)!;
    }

    /// <summary>
    /// Places a registered VM on <paramref name="node"/>: the rate is recomputed with the node's prices
    /// (floor-enforced) and fixed from now on. Placing again on the same node is a no-op; placing a
    /// placed VM on another node is refused.
    /// </summary>
    public BillingLease Place(VmId vm, NodeId node, WalletAddress nodeOperator, WalletAddress? relayOperator = null)
    {
        RequireVm(vm);
        if (node.IsEmpty)
        {
            throw Check.Fail("node", "must be a node id.");
        }

        if (nodeOperator.IsEmpty || relayOperator is { IsEmpty: true })
        {
            throw Check.Fail("operator", "must be a wallet address.");
        }

        var lease = GetLease(vm) ?? throw new BillingStateException($"VM {vm} is not registered; call RegisterVm first.");
        if (lease.Node is { } placed)
        {
            return placed == node && lease.Operator == nodeOperator && lease.RelayOperator == relayOperator
                ? lease
                : throw new BillingStateException($"VM {vm} is already placed on node {placed}; its rate is fixed.");
        }

        var (resources, quality, bandwidth) = ReadSpec(vm);
        var rate = _prices.Estimate(resources, quality, bandwidth, _priceBook.GetPrices(node)).HourlyUsdc;
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            UPDATE billing_leases SET node_id = $n, operator_wallet = $o, relay_wallet = $rl, hourly_rate = $r
            WHERE vm_id = $vm AND node_id IS NULL;
            """;
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        cmd.Parameters.AddWithValue("$n", node.Value);
        cmd.Parameters.AddWithValue("$o", nodeOperator.ToLowerHex());
        cmd.Parameters.AddWithValue("$rl", relayOperator is { } r ? r.ToLowerHex() : DBNull.Value);
        cmd.Parameters.AddWithValue("$r", rate.ToString(CultureInfo.InvariantCulture));
        cmd.ExecuteNonQuery();
        return GetLease(vm)!;
    }

    /// <summary>The lease of <paramref name="vm"/>, or null if it was never registered.</summary>
    public BillingLease? GetLease(VmId vm)
    {
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT user_wallet, node_id, operator_wallet, relay_wallet, hourly_rate, billed_seconds, charged_micro, closed
            FROM billing_leases WHERE vm_id = $vm;
            """;
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        using var r = cmd.ExecuteReader();
        if (!r.Read())
        {
            return null;
        }

        return new BillingLease(
            vm,
            WalletAddress.Parse(r.GetString(0)),
            r.IsDBNull(1) ? null : NodeId.Parse(r.GetString(1)),
            r.IsDBNull(2) ? null : WalletAddress.Parse(r.GetString(2)),
            r.IsDBNull(3) ? null : WalletAddress.Parse(r.GetString(3)),
            ParseRate(r.GetString(4)),
            r.GetInt64(5),
            r.GetInt64(6),
            r.GetInt64(7) != 0);
    }

    /// <summary>
    /// Stores usage records idempotently (in one transaction): a record id seen before is ignored, records
    /// may arrive in any order (counters are cumulative, the highest wins). Malformed records, records of
    /// unknown, unplaced or closed VMs, and records from a node other than the VM's are rejected and
    /// counted; the rest of the batch is stored.
    /// </summary>
    public IngestResult Ingest(IReadOnlyList<UsageRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count > _options.MaxBatchSize)
        {
            throw Check.Fail("records", $"{records.Count} records in one batch; at most {_options.MaxBatchSize} (Metering.MaxBatchSize).");
        }

        int accepted = 0, duplicates = 0, conflicts = 0, rejected = 0;
        var problems = new List<string>();
        using var c = _ledger.Database.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using var insert = LedgerWriter.Prepare(c, tx,
            """
            INSERT INTO usage_records (record_id, vm_id, node_id, sequence, observed_at_ms, running_seconds, relayed_bytes, total_bytes)
            VALUES ($id, $vm, $n, $s, $t, $rs, $rb, $tb) ON CONFLICT (record_id) DO NOTHING;
            """, "$id", "$vm", "$n", "$s", "$t", "$rs", "$rb", "$tb");
        using var find = LedgerWriter.Prepare(c, tx, "SELECT running_seconds, relayed_bytes, total_bytes, observed_at_ms FROM usage_records WHERE record_id = $id;", "$id");
        using var lease = LedgerWriter.Prepare(c, tx, "SELECT node_id, closed FROM billing_leases WHERE vm_id = $vm;", "$vm");
        var leases = new Dictionary<VmId, string?>();
        var maxima = new Dictionary<VmId, UsageRecord>();
        // Insert in key order: neighbouring keys land on the same B-tree pages (fewer page visits per record).
        var valid = new List<(string Id, UsageRecord Record)>(records.Count);
        foreach (var rec in records)
        {
            var problem = rec.Problem() ?? CheckLease(rec, lease, leases);
            if (problem is not null)
            {
                rejected++;
                Note(problems, $"record {SafeId(rec)}: {problem}");
                continue;
            }

            valid.Add((rec.Id, rec));
        }

        valid.Sort(static (a, b) => string.CompareOrdinal(a.Id, b.Id));
        foreach (var (id, rec) in valid)
        {
            var p = insert.Parameters;
            p[0].Value = id;
            p[1].Value = rec.Vm.ToString();
            p[2].Value = rec.Node.Value;
            p[3].Value = rec.Sequence;
            p[4].Value = rec.ObservedAt.ToUnixTimeMilliseconds();
            p[5].Value = rec.RunningSeconds;
            p[6].Value = rec.RelayedBytes;
            p[7].Value = rec.TotalBytes;
            if (insert.ExecuteNonQuery() == 1)
            {
                accepted++;
                maxima[rec.Vm] = maxima.TryGetValue(rec.Vm, out var m) ? Max(m, rec) : rec;
            }
            else if (SameAsStored(find, id, rec))
            {
                duplicates++;
            }
            else
            {
                conflicts++;
                Note(problems, $"record {id}: already stored with other counters; the first one stands.");
            }
        }

        using var state = LedgerWriter.Prepare(c, tx,
            """
            INSERT INTO usage_state (vm_id, running_seconds, relayed_bytes, total_bytes, last_observed_ms) VALUES ($vm, $rs, $rb, $tb, $t)
            ON CONFLICT (vm_id) DO UPDATE SET running_seconds = MAX(running_seconds, excluded.running_seconds),
                relayed_bytes = MAX(relayed_bytes, excluded.relayed_bytes), total_bytes = MAX(total_bytes, excluded.total_bytes),
                last_observed_ms = MAX(last_observed_ms, excluded.last_observed_ms);
            """, "$vm", "$rs", "$rb", "$tb", "$t");
        foreach (var (vm, m) in maxima)
        {
            state.Parameters[0].Value = vm.ToString();
            state.Parameters[1].Value = m.RunningSeconds;
            state.Parameters[2].Value = m.RelayedBytes;
            state.Parameters[3].Value = m.TotalBytes;
            state.Parameters[4].Value = m.ObservedAt.ToUnixTimeMilliseconds();
            state.ExecuteNonQuery();
        }

        tx.Commit();
        BillingMetrics.RecordsIngested.Add(accepted);
        return new IngestResult(accepted, duplicates, conflicts, rejected, problems);
    }

    /// <summary>
    /// Charges every complete running hour not charged yet, for every placed, open lease, in one
    /// transaction. Running it again without new usage posts nothing.
    /// </summary>
    public AccrualResult Accrue() => _ledger.InTransaction(w =>
    {
        var due = new List<(string Vm, LeaseRow Row, long Running)>();
        using (var q = w.Prepare(
            """
            SELECT l.vm_id, l.user_wallet, l.operator_wallet, l.relay_wallet, l.hourly_rate, l.billed_seconds, l.charged_micro, s.running_seconds
            FROM billing_leases l JOIN usage_state s ON s.vm_id = l.vm_id
            WHERE l.closed = 0 AND l.node_id IS NOT NULL AND s.running_seconds / 3600 > l.billed_seconds / 3600;
            """))
        using (var r = q.ExecuteReader())
        {
            while (r.Read())
            {
                due.Add((r.GetString(0), ReadRow(r, 1), r.GetInt64(7)));
            }
        }

        int postings = 0;
        long total = 0;
        using var accrual = PrepareAccrualInsert(w);
        using var update = w.Prepare(
            "UPDATE billing_leases SET billed_seconds = $s, charged_micro = $c WHERE vm_id = $vm;", "$s", "$c", "$vm");
        foreach (var (vm, row, running) in due)
        {
            var charged = row.Charged;
            var hours = running / 3600;
            for (var h = row.BilledSeconds / 3600 + 1; h <= hours; h++)
            {
                var cumulative = MicroUsdc.FloorFromUsdc(row.Rate * h);
                var amount = cumulative - charged;
                if (Charge(w, accrual, vm, row, h.ToString(CultureInfo.InvariantCulture), h, amount))
                {
                    postings++;
                    AfterAccrualPosting?.Invoke(postings);
                }

                total += amount;
                charged = cumulative;
            }

            update.Parameters[0].Value = hours * 3600;
            update.Parameters[1].Value = charged;
            update.Parameters[2].Value = vm;
            update.ExecuteNonQuery();
        }

        BillingMetrics.Charged.Add(total);
        return new AccrualResult(postings, total);
    });

    /// <summary>
    /// Ends a lease: charges the complete hours and then the last partial hour (to the second), and
    /// refuses later records. Closing a closed lease is a no-op.
    /// </summary>
    public AccrualResult Close(VmId vm)
    {
        RequireVm(vm);
        var hourly = Accrue();
        var last = _ledger.InTransaction(w =>
        {
            using var q = w.Prepare(
                """
                SELECT l.vm_id, l.user_wallet, l.operator_wallet, l.relay_wallet, l.hourly_rate, l.billed_seconds, l.charged_micro,
                    COALESCE(s.running_seconds, 0), l.closed, l.node_id
                FROM billing_leases l LEFT JOIN usage_state s ON s.vm_id = l.vm_id WHERE l.vm_id = $vm;
                """, "$vm");
            q.Parameters[0].Value = vm.ToString();
            LeaseRow row;
            long running;
            using (var r = q.ExecuteReader())
            {
                if (!r.Read())
                {
                    throw new BillingStateException($"VM {vm} is not registered.");
                }

                if (r.GetInt64(8) != 0)
                {
                    return new AccrualResult(0, 0);
                }

                row = ReadRow(r, 1);
                running = r.IsDBNull(9) ? 0 : r.GetInt64(7);
            }

            var seconds = Math.Max(running, row.BilledSeconds);
            var cumulative = MicroUsdc.FloorFromUsdc(row.Rate * seconds / 3600m);
            var amount = cumulative - row.Charged;
            using var accrual = PrepareAccrualInsert(w);
            var posted = amount > 0 && Charge(w, accrual, vm.ToString(), row, "close", (seconds + 3599) / 3600, amount);
            using var update = w.Prepare(
                "UPDATE billing_leases SET billed_seconds = $s, charged_micro = $c, closed = 1 WHERE vm_id = $vm;", "$s", "$c", "$vm");
            update.Parameters[0].Value = seconds;
            update.Parameters[1].Value = Math.Max(cumulative, row.Charged);
            update.Parameters[2].Value = vm.ToString();
            update.ExecuteNonQuery();
            BillingMetrics.Charged.Add(Math.Max(amount, 0));
            return new AccrualResult(posted ? 1 : 0, Math.Max(amount, 0));
        });
        return new AccrualResult(hourly.Postings + last.Postings, hourly.ChargedMicroUsdc + last.ChargedMicroUsdc);
    }

    /// <summary>
    /// For each VM charged between <paramref name="from"/> and <paramref name="to"/> whose node's uptime
    /// over that period (from the <see cref="INodeUptimeSource"/>) is under the threshold, credits the
    /// user <see cref="MeteringOptions.SlaCreditShare"/> of the period's charges from the operator's
    /// earnings (at most what the operator earned). A period that overlaps one already credited for the
    /// VM is skipped. Returns the total credited.
    /// </summary>
    public long ApplySlaCredits(DateTimeOffset from, DateTimeOffset to)
    {
        if (to <= from)
        {
            throw Check.Fail("to", $"the period end {to:O} must be after its start {from:O}.");
        }

        if (_uptime is null)
        {
            throw new BillingStateException("No INodeUptimeSource was given; SLA credits need the nodes' measured uptime.");
        }

        long fromMs = from.ToUnixTimeMilliseconds(), toMs = to.ToUnixTimeMilliseconds();
        return _ledger.InTransaction(w =>
        {
            var periods = new List<(string Vm, string Node, string User, string Operator, long Amount, long NodeAmount)>();
            using (var q = w.Prepare(
                """
                SELECT a.vm_id, l.node_id, l.user_wallet, l.operator_wallet, SUM(a.amount), SUM(a.node_amount)
                FROM accruals a JOIN billing_leases l ON l.vm_id = a.vm_id
                WHERE a.accrued_at_ms >= $f AND a.accrued_at_ms < $t
                  AND NOT EXISTS (SELECT 1 FROM sla_credits c WHERE c.vm_id = a.vm_id AND c.period_start_ms < $t AND c.period_end_ms > $f)
                GROUP BY a.vm_id, l.node_id, l.user_wallet, l.operator_wallet ORDER BY a.vm_id;
                """, "$f", "$t"))
            {
                q.Parameters[0].Value = fromMs;
                q.Parameters[1].Value = toMs;
                using var r = q.ExecuteReader();
                while (r.Read())
                {
                    periods.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), r.GetInt64(5)));
                }
            }

            long credited = 0;
            using var record = w.Prepare(
                "INSERT INTO sla_credits (vm_id, period_start_ms, period_end_ms, uptime, amount) VALUES ($vm, $f, $t, $u, $a);",
                "$vm", "$f", "$t", "$u", "$a");
            foreach (var p in periods)
            {
                var uptime = _uptime.GetUptime(NodeId.Parse(p.Node), from, to);
                if (uptime is null)
                {
                    continue;
                }

                if (uptime is < 0m or > 1m)
                {
                    throw Check.Fail("uptime", $"the uptime source returned {uptime} for node {p.Node}; expected a fraction 0..1.");
                }

                if (uptime >= _options.SlaUptimeThreshold)
                {
                    continue;
                }

                var credit = Math.Min(MicroUsdc.FloorFromUsdc(MicroUsdc.ToUsdc(p.Amount) * _options.SlaCreditShare), p.NodeAmount);
                if (credit > 0)
                {
                    w.Post(LedgerPosting.Transfer(
                        string.Create(CultureInfo.InvariantCulture, $"sla:{p.Vm}:{fromMs}:{toMs}"),
                        LedgerAccount.NodeOperator(WalletAddress.Parse(p.Operator)),
                        LedgerAccount.User(WalletAddress.Parse(p.User)),
                        credit,
                        $"SLA credit for VM {p.Vm}: uptime {uptime} under {_options.SlaUptimeThreshold}"));
                    Log.SlaCredit(_logger, p.Vm, uptime.Value, _options.SlaUptimeThreshold, MicroUsdc.Format(credit));
                }

                record.Parameters[0].Value = p.Vm;
                record.Parameters[1].Value = fromMs;
                record.Parameters[2].Value = toMs;
                record.Parameters[3].Value = uptime.Value.ToString(CultureInfo.InvariantCulture);
                record.Parameters[4].Value = credit;
                record.ExecuteNonQuery();
                credited += credit;
            }

            return credited;
        });
    }

    /// <summary>The open leases of <paramref name="user"/>.</summary>
    public IReadOnlyList<VmId> GetOpenVms(WalletAddress user)
    {
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT vm_id FROM billing_leases WHERE user_wallet = $u AND closed = 0 ORDER BY vm_id;";
        cmd.Parameters.AddWithValue("$u", user.ToLowerHex());
        using var r = cmd.ExecuteReader();
        var vms = new List<VmId>();
        while (r.Read())
        {
            vms.Add(VmId.Parse(r.GetString(0)));
        }

        return vms;
    }

    /// <summary>Splits an hourly amount: platform and relay shares rounded down, the node operator gets the rest.</summary>
    internal static (long Node, long Relay, long Platform) Split(long amount, bool relayed, decimal platformShare, decimal relayShare)
    {
        var platform = (long)decimal.Floor(amount * platformShare);
        var relay = relayed ? (long)decimal.Floor(amount * relayShare) : 0;
        return (amount - platform - relay, relay, platform);
    }

    private static SqliteCommand PrepareAccrualInsert(LedgerWriter w) => w.Prepare(
        """
        INSERT INTO accruals (vm_id, hour, amount, node_amount, relay_amount, platform_amount, accrued_at_ms)
        VALUES ($vm, $h, $a, $n, $r, $p, $t) ON CONFLICT (vm_id, hour) DO UPDATE SET amount = amount + excluded.amount,
            node_amount = node_amount + excluded.node_amount, relay_amount = relay_amount + excluded.relay_amount,
            platform_amount = platform_amount + excluded.platform_amount;
        """, "$vm", "$h", "$a", "$n", "$r", "$p", "$t");

    private static LeaseRow ReadRow(SqliteDataReader r, int at) => new(
        r.GetString(at),
        r.GetString(at + 1),
        r.IsDBNull(at + 2) ? null : r.GetString(at + 2),
        ParseRate(r.GetString(at + 3)),
        r.GetInt64(at + 4),
        r.GetInt64(at + 5));

    private static decimal ParseRate(string s) => decimal.Parse(s, NumberStyles.Number, CultureInfo.InvariantCulture);

    private static UsageRecord Max(UsageRecord a, UsageRecord b) => a with
    {
        RunningSeconds = Math.Max(a.RunningSeconds, b.RunningSeconds),
        RelayedBytes = Math.Max(a.RelayedBytes, b.RelayedBytes),
        TotalBytes = Math.Max(a.TotalBytes, b.TotalBytes),
        ObservedAt = a.ObservedAt > b.ObservedAt ? a.ObservedAt : b.ObservedAt,
    };

    private static bool SameAsStored(SqliteCommand find, string id, UsageRecord rec)
    {
        find.Parameters[0].Value = id;
        using var r = find.ExecuteReader();
        return r.Read() && r.GetInt64(0) == rec.RunningSeconds && r.GetInt64(1) == rec.RelayedBytes &&
               r.GetInt64(2) == rec.TotalBytes && r.GetInt64(3) == rec.ObservedAt.ToUnixTimeMilliseconds();
    }

    private static string? CheckLease(UsageRecord rec, SqliteCommand lease, Dictionary<VmId, string?> cache)
    {
        if (!cache.TryGetValue(rec.Vm, out var node))
        {
            lease.Parameters[0].Value = rec.Vm.ToString();
            using var r = lease.ExecuteReader();
            node = !r.Read() ? "unknown" : r.GetInt64(1) != 0 ? "closed" : r.IsDBNull(0) ? "unplaced" : r.GetString(0);
            cache[rec.Vm] = node;
        }

        return node switch
        {
            "unknown" => $"VM {rec.Vm} is not registered",
            "closed" => $"VM {rec.Vm} is closed",
            "unplaced" => $"VM {rec.Vm} is not placed on a node",
            _ when !string.Equals(node, rec.Node.Value, StringComparison.Ordinal) => $"VM {rec.Vm} runs on node {node}, not {rec.Node}",
            _ => null,
        };
    }

    private static void Note(List<string> problems, string problem)
    {
        if (problems.Count < MaxProblems)
        {
            problems.Add(problem);
        }
    }

    private static string SafeId(UsageRecord rec) => rec.Node.IsEmpty ? rec.Vm.ToString() : rec.Id;

    private static void RequireVm(VmId vm)
    {
        if (vm.Value == Guid.Empty)
        {
            throw Check.Fail("vm", "must be a VM id.");
        }
    }

    private bool Charge(LedgerWriter w, SqliteCommand accrual, string vm, LeaseRow row, string suffix, long hour, long amount)
    {
        var (node, relay, platform) = Split(amount, row.Relay is not null, _options.PlatformShare, _options.RelayShare);
        var p = accrual.Parameters;
        p[0].Value = vm;
        p[1].Value = hour;
        p[2].Value = amount;
        p[3].Value = node;
        p[4].Value = relay;
        p[5].Value = platform;
        p[6].Value = w.NowMs;
        accrual.ExecuteNonQuery();
        if (amount <= 0)
        {
            return false;
        }

        var legs = new List<LedgerEntry>(4) { new(LedgerAccount.User(WalletAddress.Parse(row.User)), -amount) };
        if (node > 0)
        {
            legs.Add(new(LedgerAccount.NodeOperator(WalletAddress.Parse(row.Operator!)), node));
        }

        if (relay > 0)
        {
            legs.Add(new(LedgerAccount.RelayOperator(WalletAddress.Parse(row.Relay!)), relay));
        }

        if (platform > 0)
        {
            legs.Add(new(LedgerAccount.Platform, platform));
        }

        w.Post(LedgerPosting.Create($"accrual:{vm}:{suffix}", legs, $"VM {vm} usage"));
        return true;
    }

    private (Resources, QualityTier, BandwidthTier) ReadSpec(VmId vm)
    {
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT compute_points, memory_mib, storage_gib, gpus, gpu_model, quality, bandwidth FROM billing_leases WHERE vm_id = $vm;";
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        using var r = cmd.ExecuteReader();
        r.Read();
        return (new Resources(r.GetInt32(0), r.GetInt64(1), r.GetInt64(2), r.GetInt32(3), r.IsDBNull(4) ? null : r.GetString(4)),
            (QualityTier)r.GetInt32(5), (BandwidthTier)r.GetInt32(6));
    }

    private void OnOverdrawn(object? sender, OverdrawnEventArgs e)
    {
        var vms = GetOpenVms(e.User);
        if (vms.Count > 0)
        {
            VmsOverdrawn?.Invoke(this, new VmsOverdrawnEventArgs(e.User, e.BalanceMicroUsdc, vms));
        }
    }

    private sealed record LeaseRow(string User, string? Operator, string? Relay, decimal Rate, long BilledSeconds, long Charged);
}
