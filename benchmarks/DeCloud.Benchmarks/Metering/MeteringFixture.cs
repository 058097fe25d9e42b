using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Benchmarks.Metering;

/// <summary>A fresh billing database with placed VMs, plus the plain-insert baseline tables.</summary>
internal sealed class MeteringFixture : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "decloud-bench-metering", Guid.NewGuid().ToString("N"));

    public MeteringFixture(int vms)
    {
        Directory.CreateDirectory(_dir);
        Database = new SqliteDatabase(Path.Combine(_dir, "billing.db"));
        Ledger = new BillingLedger(Database);
        var pricing = new PricingOptions();
        Meter = new UsageMeter(Ledger, new PriceCalculator(pricing), new NodePriceBook(Database, pricing), new MeteringOptions());
        Node = NodeId.FromMachine("bench-node", Wallet(1));
        Vms = new VmId[vms];
        for (var i = 0; i < vms; i++)
        {
            Vms[i] = new VmId(new Guid(i + 1, 0, 0, [0, 0, 0, 0, 0, 0, 0, 1]));
            Meter.RegisterVm(Vms[i], Wallet(100 + (i % 50)), new Resources(2, 2048, 20), QualityTier.Standard, BandwidthTier.Standard);
            Meter.Place(Vms[i], Node, Wallet(2), i % 3 == 0 ? Wallet(3) : null);
        }

        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            CREATE TABLE plain_records (record_id TEXT NOT NULL, vm_id TEXT NOT NULL, node_id TEXT NOT NULL, sequence INTEGER NOT NULL,
                observed_at_ms INTEGER NOT NULL, running_seconds INTEGER NOT NULL, relayed_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL);
            CREATE TABLE plain_entries (transaction_key TEXT NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL);
            """;
        cmd.ExecuteNonQuery();
    }

    public SqliteDatabase Database { get; }

    public BillingLedger Ledger { get; }

    public UsageMeter Meter { get; }

    public NodeId Node { get; }

    public VmId[] Vms { get; }

    public static WalletAddress Wallet(int n) => WalletAddress.Parse("0x" + n.ToString("x40", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Records <paramref name="from"/>..<paramref name="from"/>+<paramref name="count"/>, round-robin over the VMs.</summary>
    public UsageRecord[] Records(long from, int count)
    {
        var records = new UsageRecord[count];
        for (var i = 0; i < count; i++)
        {
            var n = from + i;
            var seq = n / Vms.Length;
            records[i] = new UsageRecord(Vms[n % Vms.Length], Node, seq, T0.AddMinutes(seq), seq * 60, seq * 100, seq * 1000);
        }

        return records;
    }

    /// <summary>The baseline: the same rows into a table without any key, prepared statement, one transaction.</summary>
    public void PlainInsert(UsageRecord[] records)
    {
        using var c = Database.Open();
        using var tx = c.BeginTransaction();
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO plain_records VALUES ($id, $vm, $n, $s, $t, $rs, $rb, $tb);";
        var p = new[] { "$id", "$vm", "$n", "$s", "$t", "$rs", "$rb", "$tb" }.Select(name => cmd.Parameters.Add(new SqliteParameter { ParameterName = name })).ToArray();
        foreach (var r in records)
        {
            p[0].Value = r.Id;
            p[1].Value = r.Vm.ToString();
            p[2].Value = r.Node.Value;
            p[3].Value = r.Sequence;
            p[4].Value = r.ObservedAt.ToUnixTimeMilliseconds();
            p[5].Value = r.RunningSeconds;
            p[6].Value = r.RelayedBytes;
            p[7].Value = r.TotalBytes;
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }

    /// <summary>Transfers from a deposit account to users, with unique keys starting at <paramref name="from"/>.</summary>
    public static LedgerPosting[] Postings(long from, int count)
    {
        var postings = new LedgerPosting[count];
        for (var i = 0; i < count; i++)
        {
            postings[i] = LedgerPosting.Transfer("bench:" + (from + i), LedgerAccount.ExternalDeposits, LedgerAccount.User(Wallet(100 + (int)((from + i) % 50))), 1_000 + i);
        }

        return postings;
    }

    /// <summary>The baseline: each posting's two legs into a table without keys or balances, one transaction.</summary>
    public void PlainPost(LedgerPosting[] postings)
    {
        using var c = Database.Open();
        using var tx = c.BeginTransaction();
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO plain_entries VALUES ($k, $a, $v);";
        var k = cmd.Parameters.Add(new SqliteParameter { ParameterName = "$k" });
        var a = cmd.Parameters.Add(new SqliteParameter { ParameterName = "$a" });
        var v = cmd.Parameters.Add(new SqliteParameter { ParameterName = "$v" });
        foreach (var p in postings)
        {
            foreach (var e in p.Entries)
            {
                k.Value = p.IdempotencyKey;
                a.Value = e.Account.ToString();
                v.Value = e.AmountMicroUsdc;
                cmd.ExecuteNonQuery();
            }
        }

        tx.Commit();
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
