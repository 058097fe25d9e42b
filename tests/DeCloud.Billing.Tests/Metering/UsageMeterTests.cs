using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Core.Model;

namespace DeCloud.Billing.Tests.Metering;

public sealed class UsageMeterTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly TestDb _db = new();
    private readonly WalletAddress _user = TestDb.Wallet(1);
    private readonly WalletAddress _operator = TestDb.Wallet(2);
    private readonly WalletAddress _relay = TestDb.Wallet(3);
    private readonly NodeId _node = TestDb.Node(1);

    public void Dispose() => _db.Dispose();

    [Fact]
    public void Ingest_SameRecordsTwice_SecondIsAllDuplicates()
    {
        var vm = Placed();
        var records = Enumerable.Range(0, 10).Select(i => Rec(vm, i, i * 600)).ToArray();

        var first = _db.Meter.Ingest(records);
        var second = _db.Meter.Ingest(records);

        Assert.Equal(10, first.Accepted);
        Assert.Equal(0, second.Accepted);
        Assert.Equal(10, second.Duplicates);
    }

    [Fact]
    public void Ingest_OutOfOrderAndLostRecords_HighestCumulativeCounterWins()
    {
        var vm = Placed();
        _db.Meter.Ingest([Rec(vm, 5, 5 * 3600), Rec(vm, 2, 2 * 3600)]); // 3, 4 lost; 2 arrives late

        var result = _db.Meter.Accrue();

        Assert.Equal(5, result.Postings);
        Assert.Equal(MicroUsdc.FloorFromUsdc(_db.Meter.GetLease(vm)!.HourlyRateUsdc * 5), result.ChargedMicroUsdc);
    }

    [Fact]
    public void Ingest_SameIdOtherCounters_IsConflictAndFirstStands()
    {
        var vm = Placed();
        _db.Meter.Ingest([Rec(vm, 1, 3600)]);

        var result = _db.Meter.Ingest([Rec(vm, 1, 99 * 3600)]);

        Assert.Equal(1, result.Conflicts);
        Assert.Contains("other counters", Assert.Single(result.Problems), StringComparison.Ordinal);
        Assert.Equal(1, _db.Meter.Accrue().Postings);
    }

    [Fact]
    public void Ingest_BadRecords_RejectedWithReasonsAndRestStored()
    {
        var vm = Placed();
        var unknown = VmId.New();
        var records = new[]
        {
            Rec(vm, 0, 100),
            Rec(unknown, 0, 100),
            Rec(vm, 1, 100) with { Node = TestDb.Node(9) },
            Rec(vm, 2, -1),
            Rec(vm, 3, 100) with { RelayedBytes = 10, TotalBytes = 5 },
            new UsageRecord(vm, _node, 4, T0, UsageRecord.MaxCounter + 1, 0, UsageRecord.MaxCounter + 1),
        };

        var result = _db.Meter.Ingest(records);

        Assert.Equal(1, result.Accepted);
        Assert.Equal(5, result.Rejected);
        Assert.Contains(result.Problems, p => p.Contains("not registered", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.Contains("runs on node", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.Contains("negative", StringComparison.Ordinal));
    }

    [Fact]
    public void Ingest_TooLargeBatch_Throws()
    {
        using var db = new TestDb(new MeteringOptions { MaxBatchSize = 2 });
        Assert.Equal("records", Assert.Throws<BillingValidationException>(() => db.Meter.Ingest(new UsageRecord[3])).Field);
    }

    [Fact]
    public void Accrue_ThousandHours_SumsExactlyToRoundedTotal()
    {
        var vm = Placed(new Resources(1, 1536, 7), QualityTier.Standard, BandwidthTier.Basic); // 2/3 of a point: 0.00666... USDC/h of CPU
        var rate = _db.Meter.GetLease(vm)!.HourlyRateUsdc;
        Assert.NotEqual(decimal.Floor(rate * 1_000_000), rate * 1_000_000); // the hourly rate is not a whole micro-USDC

        long total = 0;
        for (var h = 1; h <= 1000; h++)
        {
            _db.Meter.Ingest([Rec(vm, h, h * 3600L)]);
            total += _db.Meter.Accrue().ChargedMicroUsdc;
        }

        Assert.Equal(MicroUsdc.FloorFromUsdc(rate * 1000), total);
        Assert.Equal(-total, _db.Ledger.GetBalance(LedgerAccount.User(_user)));
        Assert.Equal(1000, _db.Ledger.PostingCount());
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
    }

    [Fact]
    public void Accrue_Relayed_SplitsNodeRelayPlatformExactly()
    {
        var vm = Placed(relay: _relay);
        _db.Fund(_user, 10_000_000);
        _db.Meter.Ingest([Rec(vm, 0, 10 * 3600)]);

        var result = _db.Meter.Accrue();

        var node = _db.Ledger.GetBalance(LedgerAccount.NodeOperator(_operator));
        var relay = _db.Ledger.GetBalance(LedgerAccount.RelayOperator(_relay));
        var platform = _db.Ledger.GetBalance(LedgerAccount.Platform);
        Assert.Equal(result.ChargedMicroUsdc, node + relay + platform);
        Assert.True(relay > 0 && platform > relay && node > platform);
        Assert.Equal(10_000_000 - result.ChargedMicroUsdc, _db.Ledger.GetBalance(LedgerAccount.User(_user)));
    }

    [Theory]
    [InlineData(1000, false, 0.15, 0.10, 850, 0, 150)]
    [InlineData(1000, true, 0.15, 0.10, 750, 100, 150)]
    [InlineData(7, true, 0.15, 0.10, 6, 0, 1)]
    [InlineData(1, true, 0.5, 0.5, 1, 0, 0)]
    public void Split_Amount_PartsSumToAmount(long amount, bool relayed, double p, double r, long node, long relay, long platform)
    {
        Assert.Equal((node, relay, platform), UsageMeter.Split(amount, relayed, (decimal)p, (decimal)r));
    }

    [Fact]
    public void Close_PartialHour_ChargesToTheSecondAndRefusesLaterRecords()
    {
        var vm = Placed();
        var rate = _db.Meter.GetLease(vm)!.HourlyRateUsdc;
        _db.Meter.Ingest([Rec(vm, 0, 2 * 3600 + 1800)]);

        var closed = _db.Meter.Close(vm);
        var again = _db.Meter.Close(vm);
        var late = _db.Meter.Ingest([Rec(vm, 1, 3 * 3600)]);

        Assert.Equal(3, closed.Postings);
        Assert.Equal(MicroUsdc.FloorFromUsdc(rate * 2.5m), closed.ChargedMicroUsdc);
        Assert.Equal(0, again.Postings);
        Assert.Equal(1, late.Rejected);
        Assert.True(_db.Meter.GetLease(vm)!.IsClosed);
    }

    [Fact]
    public void Accrue_BalanceRunsOut_RaisesVmsOverdrawnWithOpenVms()
    {
        var vm = Placed();
        _db.Fund(_user, 10);
        var events = new List<VmsOverdrawnEventArgs>();
        _db.Meter.VmsOverdrawn += (_, e) => events.Add(e);
        _db.Meter.Ingest([Rec(vm, 0, 3600)]);

        _db.Meter.Accrue();

        var e = Assert.Single(events);
        Assert.Equal(_user, e.User);
        Assert.Equal([vm], e.Vms);
        Assert.True(e.BalanceMicroUsdc < 0);
    }

    [Fact]
    public void CrashBetweenIngestAndAccrual_ReopenAndAccrue_NothingLostOrDoubled()
    {
        var vm = Placed();
        var rate = _db.Meter.GetLease(vm)!.HourlyRateUsdc;
        _db.Meter.Ingest(Enumerable.Range(1, 24).Select(h => Rec(vm, h, h * 3600L)).ToArray());

        // The process dies mid-accrual, after some postings were written inside the transaction.
        _db.Meter.AfterAccrualPosting = n => { if (n == 10) { throw new IOException("simulated crash"); } };
        Assert.Throws<IOException>(() => _db.Meter.Accrue());
        _db.Reopen();
        Assert.Equal(0, _db.Ledger.PostingCount());

        // The agent re-sends its records after the restart; then accrual runs twice.
        _db.Meter.Ingest(Enumerable.Range(1, 24).Select(h => Rec(vm, h, h * 3600L)).ToArray());
        var first = _db.Meter.Accrue();
        _db.Reopen();
        var second = _db.Meter.Accrue();

        Assert.Equal(24, first.Postings);
        Assert.Equal(0, second.Postings);
        Assert.Equal(-MicroUsdc.FloorFromUsdc(rate * 24), _db.Ledger.GetBalance(LedgerAccount.User(_user)));
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
    }

    [Fact]
    public void ApplySlaCredits_UptimeUnderThreshold_CreditsUserFromOperatorOnce()
    {
        var uptime = new FixedUptime(0.95m);
        using var db = new TestDb(uptime: uptime);
        var vm = VmId.New();
        db.Meter.RegisterVm(vm, _user, new Resources(4, 4096, 50), QualityTier.Dedicated, BandwidthTier.Standard);
        db.Meter.Place(vm, _node, _operator);
        db.Meter.Ingest([Rec(vm, 0, 100 * 3600)]);
        var charged = db.Meter.Accrue().ChargedMicroUsdc;
        var operatorBefore = db.Ledger.GetBalance(LedgerAccount.NodeOperator(_operator));

        var credit = db.Meter.ApplySlaCredits(T0.AddDays(-1), T0.AddDays(1));
        var again = db.Meter.ApplySlaCredits(T0.AddHours(-1), T0.AddHours(1)); // overlaps the credited period

        Assert.Equal(MicroUsdc.FloorFromUsdc(MicroUsdc.ToUsdc(charged) * 0.10m), credit);
        Assert.Equal(0, again);
        Assert.Equal(operatorBefore - credit, db.Ledger.GetBalance(LedgerAccount.NodeOperator(_operator)));
        Assert.Equal(credit - charged, db.Ledger.GetBalance(LedgerAccount.User(_user)));
    }

    [Fact]
    public void ApplySlaCredits_UptimeAboveThresholdOrUnknown_CreditsNothing()
    {
        foreach (var value in new decimal?[] { 0.999m, null })
        {
            using var db = new TestDb(uptime: new FixedUptime(value));
            var vm = VmId.New();
            db.Meter.RegisterVm(vm, _user, new Resources(4, 4096, 50), QualityTier.Dedicated, BandwidthTier.Standard);
            db.Meter.Place(vm, _node, _operator);
            db.Meter.Ingest([Rec(vm, 0, 10 * 3600)]);
            db.Meter.Accrue();

            Assert.Equal(0, db.Meter.ApplySlaCredits(T0.AddDays(-1), T0.AddDays(1)));
        }
    }

    [Fact]
    public void ApplySlaCredits_UptimeSourceLies_ThrowsAndCreditsNothing()
    {
        using var db = new TestDb(uptime: new FixedUptime(1.5m));
        var vm = VmId.New();
        db.Meter.RegisterVm(vm, _user, new Resources(4, 4096, 50), QualityTier.Dedicated, BandwidthTier.Standard);
        db.Meter.Place(vm, _node, _operator);
        db.Meter.Ingest([Rec(vm, 0, 10 * 3600)]);
        db.Meter.Accrue();
        var postings = db.Ledger.PostingCount();

        Assert.Equal("uptime", Assert.Throws<BillingValidationException>(() => db.Meter.ApplySlaCredits(T0.AddDays(-1), T0.AddDays(1))).Field);
        Assert.Equal(postings, db.Ledger.PostingCount());
    }

    [Fact]
    public void MeteringOptions_SharesOverOne_NamesProperty()
    {
        var ex = Assert.Throws<BillingValidationException>(() => new TestDb(new MeteringOptions { PlatformShare = 0.6m, RelayShare = 0.5m }));
        Assert.Equal("Metering.RelayShare", ex.Field);
    }

    private VmId Placed(Resources? resources = null, QualityTier quality = QualityTier.Dedicated, BandwidthTier bandwidth = BandwidthTier.Standard, WalletAddress? relay = null)
    {
        var vm = VmId.New();
        _db.Meter.RegisterVm(vm, _user, resources ?? new Resources(2, 2048, 20), quality, bandwidth);
        _db.Meter.Place(vm, _node, _operator, relay);
        return vm;
    }

    private UsageRecord Rec(VmId vm, long seq, long seconds) =>
        new(vm, _node, seq, T0.AddSeconds(seconds), seconds, 0, seconds * 10);

    private sealed class FixedUptime(decimal? value) : INodeUptimeSource
    {
        public decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to) => value;
    }
}
