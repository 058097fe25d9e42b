using CsCheck;
using DeCloud.Billing.Escrow;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;

namespace DeCloud.Billing.Tests;

public sealed class PropertyTests
{
    private static readonly LedgerAccount[] Pool =
    [
        LedgerAccount.User(TestDb.Wallet(1)), LedgerAccount.User(TestDb.Wallet(2)), LedgerAccount.NodeOperator(TestDb.Wallet(3)),
        LedgerAccount.RelayOperator(TestDb.Wallet(4)), LedgerAccount.TemplateAuthor(TestDb.Wallet(5)), LedgerAccount.Platform,
        LedgerAccount.ExternalDeposits, LedgerAccount.ExternalPayouts, LedgerAccount.Escrow(new VmId(new Guid("6a1f0f7e-0000-4000-8000-000000000001"))),
    ];

    [Fact]
    public void Ledger_AnyPostings_SumToZeroAndBalancesAgree()
    {
        var posting = Gen.Select(Gen.Int[0, 12], Gen.Int[0, Pool.Length - 1], Gen.Int[1, Pool.Length - 1], Gen.Long[1, 5_000_000_000]);
        posting.Array[1, 40].Sample(ops =>
        {
            using var db = new TestDb();
            foreach (var (key, from, offset, amount) in ops)
            {
                var p = LedgerPosting.Transfer("k" + key, Pool[from], Pool[(from + offset) % Pool.Length], amount);
                try
                {
                    db.Ledger.Post(p);
                }
                catch (IdempotencyConflictException)
                {
                    // A reused key with other entries is refused; the ledger must still balance.
                }
            }

            Assert.Equal(0, db.Ledger.SumOfAllEntries());
            Assert.Equal(0, db.Ledger.GetBalances().Values.Sum());
            Assert.True(db.Ledger.PostingCount() <= 13);
        }, iter: 25);
    }

    [Fact]
    public void Split_AnyFee_PartsSumToFeeAndAuthorIsFloor85Percent()
    {
        Gen.Long[1, MicroUsdc.MaxAmount].Sample(fee =>
        {
            var (author, platform) = TemplateEscrow.Split(fee);
            Assert.Equal(fee, author + platform);
            Assert.Equal((long)decimal.Floor(fee * 0.85m), author);
            Assert.True(platform >= 0);
        }, iter: 10_000);
    }

    [Fact]
    public void Split_AnyHourlyAmountAndShares_PartsSumToAmount()
    {
        Gen.Select(Gen.Long[0, MicroUsdc.MaxAmount], Gen.Bool, Gen.Int[0, 50], Gen.Int[0, 50]).Sample((amount, relayed, p, r) =>
        {
            var (node, relay, platform) = UsageMeter.Split(amount, relayed, p / 100m, r / 100m);
            Assert.Equal(amount, node + relay + platform);
            Assert.True(node >= 0 && relay >= 0 && platform >= 0);
            Assert.True(relayed || relay == 0);
        }, iter: 10_000);
    }

    [Fact]
    public void PriceBook_AnyOperatorPrices_StoredAtLeastFloors()
    {
        using var db = new TestDb();
        var floors = db.Pricing.Floors;
        var rate = Gen.Int[0, 1_000_000].Select(i => i / 10_000_000m); // 0 .. 0.1 USDC in 1e-7 steps
        Gen.Select(rate, rate, rate, rate, Gen.Int[0, 1000]).Sample((cpu, mem, st, gpu, n) =>
        {
            var node = TestDb.Node(n);
            var stored = db.PriceBook.SetOperatorPrices(node, new ResourceRates(cpu, mem, st, gpu));
            Assert.Equal(Math.Max(cpu, floors.CpuPerPointHour), stored.CpuPerPointHour);
            Assert.Equal(Math.Max(mem, floors.MemoryPerGiBHour), stored.MemoryPerGiBHour);
            Assert.Equal(Math.Max(st, floors.StoragePerGiBHour), stored.StoragePerGiBHour);
            Assert.Equal(Math.Max(gpu, floors.GpuPerHour), stored.GpuPerHour);
            Assert.Equal(stored, db.PriceBook.GetPrices(node));
        }, iter: 300, threads: 1); // one thread: samples share the price book and may draw the same node
    }

    [Fact]
    public void EventStream_ReplayingAnyPrefixTwice_ChangesNothing()
    {
        var vm = new VmId(new Guid("6a1f0f7e-0000-4000-8000-0000000000aa"));
        var node = TestDb.Node(1);
        // Events: 0 deposit, 1 usage record, 2 accrual pass, 3 template deployed (escrow hold), 4 deployment running (release),
        // 5 deployment failed (refund). Raw draws are made well-formed: holds come after a deposit that covers them,
        // a release or refund only after its hold.
        var evt = Gen.Select(Gen.Int[0, 5], Gen.Int[0, 30]);
        Gen.Select(evt.Array[1, 30], Gen.Int[0, 100]).Sample((raw, cut) =>
        {
            var events = WellFormed(raw);
            var prefix = events.Count * cut / 100;
            Assert.Equal(Run(events, 0), Run(events, prefix));
        }, iter: 20);

        List<(int Kind, int Arg)> WellFormed((int Kind, int Arg)[] raw)
        {
            var list = new List<(int, int)>();
            var funded = false;
            var held = new HashSet<int>();
            foreach (var (kind, arg) in raw)
            {
                var template = arg % 3;
                if (kind == 0)
                {
                    funded = true;
                }
                else if (kind == 3 && !funded)
                {
                    continue;
                }
                else if (kind == 3)
                {
                    held.Add(template);
                }
                else if (kind is 4 or 5 && !held.Contains(template))
                {
                    continue;
                }

                list.Add((kind, arg));
            }

            return list;
        }

        string Run(List<(int Kind, int Arg)> events, int replayPrefix)
        {
            using var db = new TestDb();
            var user = TestDb.Wallet(1);
            db.Meter.RegisterVm(vm, user, new Resources(1, 1024, 10), QualityTier.Standard, BandwidthTier.Basic);
            db.Meter.Place(vm, node, TestDb.Wallet(2), TestDb.Wallet(3));
            foreach (var (kind, arg) in events.Take(replayPrefix).Concat(events))
            {
                var template = new VmId(new Guid($"6a1f0f7e-0000-4000-8000-00000000010{arg % 3}"));
                switch (kind)
                {
                    case 0:
                        db.Fund(user, 1_000_000, key: "deposit" + arg);
                        break;
                    case 1:
                        db.Meter.Ingest([new UsageRecord(vm, node, arg, DateTimeOffset.UnixEpoch.AddHours(arg), arg * 3600L, 0, 0)]);
                        break;
                    case 2:
                        db.Meter.Accrue();
                        break;
                    case 3:
                        db.Escrow.Hold(template, user, TestDb.Wallet(4), 100_000);
                        break;
                    case 4 when db.Escrow.Get(template)!.State != EscrowState.Refunded:
                        db.Escrow.Release(template);
                        break;
                    case 5 when db.Escrow.Get(template)!.State != EscrowState.Released:
                        db.Escrow.Refund(template);
                        break;
                }
            }

            db.Meter.Accrue(); // the hourly job runs once more at the end of both histories
            Assert.Equal(0, db.Ledger.SumOfAllEntries());
            return string.Join(";", db.Ledger.GetBalances().Select(kv => $"{kv.Key}={kv.Value}")) + "|" + db.Ledger.PostingCount();
        }
    }
}
