using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;
using Microsoft.Data.Sqlite;

namespace DeCloud.Billing.Tests.Ledger;

public sealed class BillingLedgerTests : IDisposable
{
    private readonly TestDb _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public void Post_Transfer_MovesBalanceAndSumsToZero()
    {
        var user = LedgerAccount.User(TestDb.Wallet(1));

        var outcome = _db.Ledger.Post(LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, user, 1_500_000));

        Assert.Equal(PostingOutcome.Posted, outcome);
        Assert.Equal(1_500_000, _db.Ledger.GetBalance(user));
        Assert.Equal(-1_500_000, _db.Ledger.GetBalance(LedgerAccount.ExternalDeposits));
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
    }

    [Fact]
    public void Post_SameKeyTwice_SecondIsNoOp()
    {
        var posting = LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 10);

        _db.Ledger.Post(posting);
        var again = _db.Ledger.Post(LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 10));

        Assert.Equal(PostingOutcome.Duplicate, again);
        Assert.Equal(1, _db.Ledger.PostingCount());
        Assert.Equal(10, _db.Ledger.GetBalance(LedgerAccount.User(TestDb.Wallet(1))));
    }

    [Fact]
    public void Post_SameKeyOtherEntries_ThrowsAndKeepsFirst()
    {
        _db.Ledger.Post(LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 10));

        var ex = Assert.Throws<IdempotencyConflictException>(() =>
            _db.Ledger.Post(LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 11)));

        Assert.Equal("k1", ex.Key);
        Assert.Equal(10, _db.Ledger.GetBalance(LedgerAccount.User(TestDb.Wallet(1))));
    }

    [Fact]
    public void PostBatch_ConflictInTheMiddle_WritesNothing()
    {
        _db.Ledger.Post(LedgerPosting.Transfer("taken", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 10));
        var batch = new[]
        {
            LedgerPosting.Transfer("a", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(2)), 5),
            LedgerPosting.Transfer("taken", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(3)), 5),
        };

        Assert.Throws<IdempotencyConflictException>(() => _db.Ledger.PostBatch(batch));

        Assert.Equal(1, _db.Ledger.PostingCount());
        Assert.Equal(0, _db.Ledger.GetBalance(LedgerAccount.User(TestDb.Wallet(2))));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(MicroUsdc.MaxAmount + 1)]
    public void Transfer_ZeroNegativeOrAbsurdAmount_Throws(long amount)
    {
        var ex = Assert.Throws<BillingValidationException>(() =>
            LedgerPosting.Transfer("k", LedgerAccount.Platform, LedgerAccount.User(TestDb.Wallet(1)), amount));
        Assert.Contains("amount", ex.Field, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_UnbalancedOrBadLegs_Throws()
    {
        var u = LedgerAccount.User(TestDb.Wallet(1));
        Assert.Throws<BillingValidationException>(() => LedgerPosting.Create("k", [new(u, 5), new(LedgerAccount.Platform, -4)]));
        Assert.Throws<BillingValidationException>(() => LedgerPosting.Create("k", [new(u, 5)]));
        Assert.Throws<BillingValidationException>(() => LedgerPosting.Create("k", [new(u, 5), new(u, -5)]));
        Assert.Throws<BillingValidationException>(() => LedgerPosting.Create(" ", [new(u, 5), new(LedgerAccount.Platform, -5)]));
        Assert.Throws<BillingValidationException>(() => LedgerPosting.Create(new string('k', 201), [new(u, 5), new(LedgerAccount.Platform, -5)]));
    }

    [Theory]
    [InlineData("bank:0x0000000000000000000000000000000000000001")]
    [InlineData("user:0x12")]
    [InlineData("user:")]
    [InlineData("escrow:not-a-guid")]
    [InlineData("")]
    [InlineData("PLATFORM")]
    public void Parse_UnknownOrMalformedAccount_ThrowsNamingAccount(string text)
    {
        var ex = Assert.Throws<BillingValidationException>(() => LedgerAccount.Parse(text));
        Assert.Equal("account", ex.Field);
    }

    [Fact]
    public void Parse_EveryKind_RoundTrips()
    {
        var vm = VmId.New();
        LedgerAccount[] all =
        [
            LedgerAccount.User(TestDb.Wallet(1)), LedgerAccount.NodeOperator(TestDb.Wallet(2)), LedgerAccount.RelayOperator(TestDb.Wallet(3)),
            LedgerAccount.TemplateAuthor(TestDb.Wallet(4)), LedgerAccount.Platform, LedgerAccount.Escrow(vm),
            LedgerAccount.ExternalDeposits, LedgerAccount.ExternalPayouts,
        ];
        foreach (var a in all)
        {
            Assert.Equal(a, LedgerAccount.Parse(a.ToString()));
        }

        Assert.Equal(8, all.Select(a => a.Kind).Distinct().Count());
    }

    [Fact]
    public void Entries_UpdateOrDelete_RefusedByTrigger()
    {
        _db.Ledger.Post(LedgerPosting.Transfer("k1", LedgerAccount.ExternalDeposits, LedgerAccount.User(TestDb.Wallet(1)), 10));
        using var c = new SqliteConnection("Data Source=" + _db.Path);
        c.Open();
        using var cmd = c.CreateCommand();

        cmd.CommandText = "UPDATE ledger_entries SET amount = 1000;";
        Assert.Contains("append-only", Assert.Throws<SqliteException>(() => cmd.ExecuteNonQuery()).Message, StringComparison.Ordinal);
        cmd.CommandText = "DELETE FROM ledger_transactions;";
        Assert.Contains("append-only", Assert.Throws<SqliteException>(() => cmd.ExecuteNonQuery()).Message, StringComparison.Ordinal);
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
    }

    [Fact]
    public void Post_DebitBelowZero_RaisesOverdrawnAndTopUpClearsIt()
    {
        var wallet = TestDb.Wallet(7);
        var events = new List<OverdrawnEventArgs>();
        _db.Ledger.Overdrawn += (_, e) => events.Add(e);
        _db.Fund(wallet, 100);

        _db.Ledger.Post(LedgerPosting.Transfer("spend", LedgerAccount.User(wallet), LedgerAccount.Platform, 150));

        var e = Assert.Single(events);
        Assert.Equal(wallet, e.User);
        Assert.Equal(-50, e.BalanceMicroUsdc);
        Assert.Equal(-50, _db.Ledger.GetOverdrawnUsers()[wallet]);

        _db.Fund(wallet, 60);
        Assert.Empty(_db.Ledger.GetOverdrawnUsers());
    }

    [Fact]
    public void MicroUsdc_FloorFromUsdc_RoundsTowardZeroOnce()
    {
        Assert.Equal(1, MicroUsdc.FloorFromUsdc(0.0000019m));
        Assert.Equal(12_345_678, MicroUsdc.FloorFromUsdc(12.3456789m));
        Assert.Equal("12.345678", MicroUsdc.Format(12_345_678));
        Assert.Throws<BillingValidationException>(() => MicroUsdc.FromUsdcExact(0.0000001m));
        Assert.Throws<BillingValidationException>(() => MicroUsdc.FloorFromUsdc(2_000_000_000m));
    }
}
