using DeCloud.Billing.Chain;
using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;
using DeCloud.Testing;

namespace DeCloud.Billing.Tests.Chain;

[Collection(HardhatCollection.Name)]
public sealed class ChainTests(HardhatChain chain) : IDisposable
{
    private const int Confirmations = 3;
    private readonly TestDb _db = new();

    public void Dispose()
    {
        foreach (var d in _disposables)
        {
            d.Dispose();
        }

        _db.Dispose();
    }

    [Fact]
    public async Task ClaimAsync_GoodDepositWithConfirmations_CreditsSenderOnce()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 12_500_000);
        await chain.MineAsync(Confirmations - 1);

        var result = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);

        Assert.Equal(DepositOutcome.Credited, result.Outcome);
        var d = Assert.Single(result.Deposits);
        Assert.Equal(12_500_000, d.AmountMicroUsdc);
        Assert.Equal(DepositState.Credited, d.State);
        Assert.Equal(12_500_000, _db.Ledger.GetBalance(LedgerAccount.User(WalletAddress.Parse(user))));
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
    }

    [Fact]
    public async Task ClaimAsync_SameTransactionClaimedTwice_CreditsOnce()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 7_000_000);
        await chain.MineAsync(Confirmations);

        var first = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);
        var second = await deposits.ClaimAsync(tx.ToUpperInvariant().Replace("0X", "0x", StringComparison.Ordinal)).Within(TimeBox.RealPart);

        Assert.Equal(DepositOutcome.Credited, first.Outcome);
        Assert.Equal(DepositOutcome.AlreadyCredited, second.Outcome);
        Assert.Equal(7_000_000, _db.Ledger.GetBalance(LedgerAccount.User(WalletAddress.Parse(user))));
        Assert.Equal(1, _db.Ledger.PostingCount());
    }

    [Fact]
    public async Task ClaimAsync_TransferFromAnotherTokenContract_IsNotCredited()
    {
        var (deposits, _, deposit, user) = await SetupAsync();
        var fake = await chain.DeployTokenAsync();
        await chain.TransferAsync(fake, chain.Accounts[0], user, 50_000_000);
        var tx = await chain.TransferAsync(fake, user, deposit, 50_000_000);
        await chain.MineAsync(Confirmations);

        var result = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);

        Assert.Equal(DepositOutcome.WrongToken, result.Outcome);
        Assert.Equal(0, _db.Ledger.PostingCount());
    }

    [Fact]
    public async Task ClaimAsync_TransferToAnotherAddress_IsNotCredited()
    {
        var (deposits, token, _, user) = await SetupAsync();
        var tx = await chain.TransferAsync(token, user, HardhatChain.NewAddress(), 1_000_000);
        await chain.MineAsync(Confirmations);

        var result = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);

        Assert.Equal(DepositOutcome.WrongRecipient, result.Outcome);
        Assert.Equal(0, _db.Ledger.PostingCount());
    }

    [Fact]
    public async Task ClaimAsync_RevertedTransfer_IsNotCredited()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 10_000_000_000_000); // more than the user holds
        await chain.MineAsync(Confirmations);
        Assert.Equal("0x0", (await chain.ReceiptAsync(tx))["status"]!.GetValue<string>());

        var result = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);

        Assert.Equal(DepositOutcome.Reverted, result.Outcome);
        Assert.Equal(0, _db.Ledger.PostingCount());
    }

    [Fact]
    public async Task ClaimAsync_TooFewConfirmations_IsPendingUntilReconciled()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 3_000_000);

        var early = await deposits.ClaimAsync(tx).Within(TimeBox.RealPart);
        Assert.Equal(DepositOutcome.Pending, early.Outcome);
        Assert.Equal(1, early.Confirmations);
        Assert.Equal(0, _db.Ledger.GetBalance(LedgerAccount.User(WalletAddress.Parse(user))));

        await chain.MineAsync(Confirmations - 1);
        var reconciled = await deposits.ReconcileAsync().Within(TimeBox.RealPart);

        Assert.Equal(1, reconciled.Credited);
        Assert.Equal(3_000_000, _db.Ledger.GetBalance(LedgerAccount.User(WalletAddress.Parse(user))));
        Assert.Equal(DepositOutcome.AlreadyCredited, (await deposits.ClaimAsync(tx).Within(TimeBox.RealPart)).Outcome);
    }

    [Fact]
    public async Task ClaimAsync_RpcReportsAnotherChainId_ThrowsAndCreditsNothing()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync();
        using var deposits = new UsdcDeposits(Options(token, HardhatChain.NewAddress(), chainId: 137), _db.Ledger);
        var tx = await chain.TransferAsync(token, chain.Accounts[0], HardhatChain.NewAddress(), 1);

        var ex = await Assert.ThrowsAsync<ChainException>(() => deposits.ClaimAsync(tx)).Within(TimeBox.RealPart);

        Assert.Contains("chain id 31337", ex.Message, StringComparison.Ordinal);
        Assert.False(ex.IsTransient);
        Assert.Equal(0, _db.Ledger.PostingCount());
    }

    [Fact]
    public async Task ClaimAsync_ContractAddressWithoutCode_Throws()
    {
        chain.Require();
        using var deposits = new UsdcDeposits(Options(HardhatChain.NewAddress(), HardhatChain.NewAddress()), _db.Ledger);

        var ex = await Assert.ThrowsAsync<ChainException>(() => deposits.ClaimAsync("0x" + new string('a', 64))).Within(TimeBox.RealPart);

        Assert.Contains("no contract", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReconcileAsync_CreditedDepositReorganizedAway_ReversesCredit()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var snapshot = await chain.SnapshotAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 9_000_000);
        await chain.MineAsync(Confirmations);
        Assert.Equal(DepositOutcome.Credited, (await deposits.ClaimAsync(tx).Within(TimeBox.RealPart)).Outcome);
        var wallet = WalletAddress.Parse(user);
        var overdrawn = new List<OverdrawnEventArgs>();
        _db.Ledger.Overdrawn += (_, e) => overdrawn.Add(e);
        // The user spends part of it before the reorg.
        _db.Ledger.Post(LedgerPosting.Transfer("spend", LedgerAccount.User(wallet), LedgerAccount.Platform, 4_000_000));

        await chain.RevertAsync(snapshot);
        await chain.MineAsync(Confirmations + 2); // the other branch grows longer
        var result = await deposits.ReconcileAsync().Within(TimeBox.RealPart);

        Assert.Equal(1, result.Reversed);
        Assert.Equal(-4_000_000, _db.Ledger.GetBalance(LedgerAccount.User(wallet)));
        Assert.Equal(DepositState.Reversed, Assert.Single(deposits.GetDeposits()).State);
        Assert.Equal(wallet, Assert.Single(overdrawn).User);
        Assert.Equal(0, _db.Ledger.SumOfAllEntries());
        Assert.Equal(DepositOutcome.NotFound, (await deposits.ClaimAsync(tx).Within(TimeBox.RealPart)).Outcome);
        Assert.Equal(0, (await deposits.ReconcileAsync().Within(TimeBox.RealPart)).Reversed);
    }

    [Fact]
    public async Task ReconcileAsync_PendingDepositReorganizedAway_IsNeverCredited()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var snapshot = await chain.SnapshotAsync();
        var tx = await chain.TransferAsync(token, user, deposit, 2_000_000);
        Assert.Equal(DepositOutcome.Pending, (await deposits.ClaimAsync(tx).Within(TimeBox.RealPart)).Outcome);

        await chain.RevertAsync(snapshot);
        await chain.MineAsync(Confirmations + 2);
        var result = await deposits.ReconcileAsync().Within(TimeBox.RealPart);

        Assert.Equal(1, result.Dropped);
        Assert.Equal(0, result.Credited);
        Assert.Equal(0, _db.Ledger.PostingCount());
        Assert.Equal(DepositState.Dropped, Assert.Single(deposits.GetDeposits()).State);
    }

    [Fact]
    public async Task ScanAsync_FindsDepositsByLogs_CreditsEachOnce()
    {
        var (deposits, token, deposit, user) = await SetupAsync();
        var from = long.Parse((await chain.RpcAsync("eth_blockNumber")).GetValue<string>()[2..], System.Globalization.NumberStyles.HexNumber, null);
        await chain.TransferAsync(token, user, deposit, 1_000_000);
        await chain.TransferAsync(token, user, deposit, 2_000_000);
        await chain.TransferAsync(token, user, HardhatChain.NewAddress(), 4_000_000);
        await chain.MineAsync(Confirmations);

        var first = await deposits.ScanAsync(from, from + 10).Within(TimeBox.RealPart);
        var again = await deposits.ScanAsync(from, from + 10).Within(TimeBox.RealPart);

        Assert.Equal(2, first.Count(r => r.Outcome == DepositOutcome.Credited));
        Assert.All(again, r => Assert.Equal(DepositOutcome.AlreadyCredited, r.Outcome));
        Assert.Equal(3_000_000, _db.Ledger.GetBalance(LedgerAccount.User(WalletAddress.Parse(user))));
    }

    [Fact]
    public async Task PayAsync_OperatorEarnings_SendsTransferOnceAndConfirms()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync();
        var op = WalletAddress.Parse(HardhatChain.NewAddress());
        var earnings = LedgerAccount.NodeOperator(op);
        _db.Ledger.Post(LedgerPosting.Transfer("earned", LedgerAccount.Platform, earnings, 5_000_000));
        using var payouts = new OperatorPayouts(Options(token, HardhatChain.NewAddress(), key: HardhatChain.Account0Key), _db.Ledger);
        Assert.Equal(WalletAddress.Parse(chain.Accounts[0]), payouts.PlatformAccount);

        var sent = await payouts.PayAsync("payout-1", earnings, 3_250_000).Within(TimeBox.RealPart);
        var again = await payouts.PayAsync("payout-1", earnings, 3_250_000).Within(TimeBox.RealPart);
        var confirmed = await payouts.ConfirmAsync("payout-1").Within(TimeBox.RealPart);

        Assert.Equal(PayoutState.Sent, sent.State);
        Assert.Equal(sent.TxHash, again.TxHash);
        Assert.Equal(PayoutState.Confirmed, confirmed.State);
        Assert.Equal(3_250_000, await chain.BalanceOfAsync(token, op.ToLowerHex()));
        Assert.Equal(1_750_000, _db.Ledger.GetBalance(earnings));
        Assert.Equal(3_250_000, _db.Ledger.GetBalance(LedgerAccount.ExternalPayouts));
        await Assert.ThrowsAsync<IdempotencyConflictException>(() => payouts.PayAsync("payout-1", earnings, 1)).Within(TimeBox.RealPart);
        await Assert.ThrowsAsync<InsufficientFundsException>(() => payouts.PayAsync("payout-2", earnings, 1_750_001)).Within(TimeBox.RealPart);
        Assert.Equal(3_250_000, await chain.BalanceOfAsync(token, op.ToLowerHex()));
    }

    [Fact]
    public async Task ConfirmAsync_PayoutRevertedOnChain_RestoresEarnings()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync(supply: 1_000_000); // the platform holds less than it pays
        var op = WalletAddress.Parse(HardhatChain.NewAddress());
        var earnings = LedgerAccount.RelayOperator(op);
        _db.Ledger.Post(LedgerPosting.Transfer("earned", LedgerAccount.Platform, earnings, 5_000_000));
        using var payouts = new OperatorPayouts(Options(token, HardhatChain.NewAddress(), key: HardhatChain.Account0Key), _db.Ledger);

        await payouts.PayAsync("too-much", earnings, 2_000_000).Within(TimeBox.RealPart);
        var result = await payouts.ConfirmAsync("too-much").Within(TimeBox.RealPart);

        Assert.Equal(PayoutState.Failed, result.State);
        Assert.Equal(5_000_000, _db.Ledger.GetBalance(earnings));
        Assert.Equal(0, _db.Ledger.GetBalance(LedgerAccount.ExternalPayouts));
        Assert.Equal(0, await chain.BalanceOfAsync(token, op.ToLowerHex()));
    }

    private ChainOptions Options(string token, string deposit, long chainId = 31337, string? key = null) => new()
    {
        RpcUrl = chain.RpcUrl,
        ChainId = chainId,
        UsdcContract = token,
        DepositAddress = deposit,
        Confirmations = Confirmations,
        ReorgDepth = 64,
        RpcTimeout = TimeSpan.FromSeconds(30),
        PayoutPrivateKey = key,
    };

    private async Task<(UsdcDeposits Deposits, string Token, string Deposit, string User)> SetupAsync()
    {
        chain.Require();
        var token = await chain.DeployTokenAsync();
        var user = chain.Accounts[1 + Random.Shared.Next(chain.Accounts.Length - 1)];
        await chain.TransferAsync(token, chain.Accounts[0], user, 100_000_000);
        var deposit = HardhatChain.NewAddress();
        var deposits = new UsdcDeposits(Options(token, deposit), _db.Ledger);
        _disposables.Add(deposits);
        return (deposits, token, deposit, user);
    }

    private readonly List<IDisposable> _disposables = [];
}
