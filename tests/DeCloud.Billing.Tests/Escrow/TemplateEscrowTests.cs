using DeCloud.Billing.Escrow;
using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;

namespace DeCloud.Billing.Tests.Escrow;

public sealed class TemplateEscrowTests : IDisposable
{
    private readonly TestDb _db = new();
    private readonly WalletAddress _user = TestDb.Wallet(1);
    private readonly WalletAddress _author = TestDb.Wallet(2);

    public void Dispose() => _db.Dispose();

    [Fact]
    public void Release_AfterHold_PaysAuthor85PercentFloorAndPlatformRest()
    {
        _db.Fund(_user, 10_000_000);
        var vm = VmId.New();

        _db.Escrow.Hold(vm, _user, _author, 1_999_999);
        Assert.Equal(1_999_999, _db.Ledger.GetBalance(LedgerAccount.Escrow(vm)));
        var released = _db.Escrow.Release(vm);

        Assert.Equal(EscrowState.Released, released.State);
        Assert.Equal(1_699_999, _db.Ledger.GetBalance(LedgerAccount.TemplateAuthor(_author))); // floor(1,999,999 x 0.85) = 1,699,999
        Assert.Equal(300_000, _db.Ledger.GetBalance(LedgerAccount.Platform));
        Assert.Equal(0, _db.Ledger.GetBalance(LedgerAccount.Escrow(vm)));
        Assert.Equal(released, _db.Escrow.Release(vm));
        Assert.Throws<BillingStateException>(() => _db.Escrow.Refund(vm));
    }

    [Fact]
    public void Refund_FailedDeployment_ReturnsFeeAndRefusesRelease()
    {
        _db.Fund(_user, 5_000_000);
        var vm = VmId.New();
        _db.Escrow.Hold(vm, _user, _author, 2_000_000);

        _db.Escrow.Refund(vm);
        _db.Escrow.Refund(vm);

        Assert.Equal(5_000_000, _db.Ledger.GetBalance(LedgerAccount.User(_user)));
        Assert.Equal(0, _db.Ledger.GetBalance(LedgerAccount.TemplateAuthor(_author)));
        Assert.Throws<BillingStateException>(() => _db.Escrow.Release(vm));
        Assert.Equal(EscrowState.Refunded, _db.Escrow.Get(vm)!.State);
    }

    [Fact]
    public void Hold_InsufficientBalance_ThrowsAndHoldsNothing()
    {
        _db.Fund(_user, 999);
        var vm = VmId.New();

        var ex = Assert.Throws<InsufficientFundsException>(() => _db.Escrow.Hold(vm, _user, _author, 1000));

        Assert.Equal(999, ex.BalanceMicroUsdc);
        Assert.Null(_db.Escrow.Get(vm));
        Assert.Equal(999, _db.Ledger.GetBalance(LedgerAccount.User(_user)));
    }

    [Fact]
    public void Hold_Twice_SameTermsNoOpOtherTermsConflict()
    {
        _db.Fund(_user, 10_000);
        var vm = VmId.New();
        _db.Escrow.Hold(vm, _user, _author, 1000);

        _db.Escrow.Hold(vm, _user, _author, 1000);
        Assert.Throws<IdempotencyConflictException>(() => _db.Escrow.Hold(vm, _user, _author, 2000));

        Assert.Equal(9000, _db.Ledger.GetBalance(LedgerAccount.User(_user)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(MicroUsdc.MaxAmount + 1)]
    public void Split_BadFee_Throws(long fee) => Assert.Throws<BillingValidationException>(() => TemplateEscrow.Split(fee));

    [Fact]
    public void Release_UnknownVm_Throws() => Assert.Throws<BillingStateException>(() => _db.Escrow.Release(VmId.New()));
}
