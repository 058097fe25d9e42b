using DeCloud.Billing.Escrow;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Billing.Tests;

/// <summary>A temporary SQLite file with the billing components opened on it; deleted on dispose.</summary>
public sealed class TestDb : IDisposable
{
    private readonly string _dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "decloud-billing-tests", Guid.NewGuid().ToString("N"));

    public TestDb(MeteringOptions? metering = null, INodeUptimeSource? uptime = null)
    {
        Directory.CreateDirectory(_dir);
        Path = System.IO.Path.Combine(_dir, "billing.db");
        MeteringOptions = metering ?? new MeteringOptions();
        Uptime = uptime;
        Open();
    }

    public string Path { get; }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public MeteringOptions MeteringOptions { get; }

    public INodeUptimeSource? Uptime { get; }

    public PricingOptions Pricing { get; } = new();

    public BillingLedger Ledger { get; private set; } = null!;

    public NodePriceBook PriceBook { get; private set; } = null!;

    public PriceCalculator Prices { get; private set; } = null!;

    public UsageMeter Meter { get; private set; } = null!;

    public TemplateEscrow Escrow { get; private set; } = null!;

    public static WalletAddress Wallet(int n) => WalletAddress.Parse("0x" + n.ToString("x40", System.Globalization.CultureInfo.InvariantCulture));

    public static NodeId Node(int n) => NodeId.FromMachine("machine-" + n, Wallet(1000 + n));

    /// <summary>Drops every object and opens the same file again, as a restarted process would.</summary>
    public void Reopen()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Open();
    }

    public void Fund(WalletAddress user, long micro, string? key = null) =>
        Ledger.Post(LedgerPosting.Transfer(key ?? "fund:" + Guid.NewGuid(), LedgerAccount.ExternalDeposits, LedgerAccount.User(user), micro));

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void Open()
    {
        var db = new SqliteDatabase(Path);
        Ledger = new BillingLedger(db, timeProvider: Time);
        PriceBook = new NodePriceBook(db, Pricing, Time);
        Prices = new PriceCalculator(Pricing);
        Meter = new UsageMeter(Ledger, Prices, PriceBook, MeteringOptions, Uptime, timeProvider: Time);
        Escrow = new TemplateEscrow(Ledger);
    }
}
