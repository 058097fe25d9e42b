using System.Globalization;
using System.Numerics;
using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nethereum.Hex.HexTypes;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Util;

namespace DeCloud.Billing.Chain;

/// <summary>Where a payout stands.</summary>
public enum PayoutState
{
    /// <summary>Signed and recorded (earnings debited); not known to have reached the RPC yet.</summary>
    Signed = 0,

    /// <summary>Accepted by the RPC; waiting to be mined.</summary>
    Sent = 1,

    /// <summary>Mined successfully.</summary>
    Confirmed = 2,

    /// <summary>Mined but reverted; the earnings were restored.</summary>
    Failed = 3,
}

/// <summary>One payout to an operator or author.</summary>
/// <param name="Key">The caller's idempotency key.</param>
/// <param name="Account">The earnings account paid from.</param>
/// <param name="To">The wallet paid to (the account's owner).</param>
/// <param name="AmountMicroUsdc">The amount.</param>
/// <param name="Nonce">The platform account's nonce used.</param>
/// <param name="TxHash">The signed transaction's hash.</param>
/// <param name="State">Where it stands.</param>
public sealed record Payout(string Key, LedgerAccount Account, WalletAddress To, long AmountMicroUsdc, long Nonce, string TxHash, PayoutState State);

/// <summary>
/// Pays earnings out on chain: builds the ERC-20 <c>transfer</c> from the platform account, signs it
/// (Nethereum), records the signed transaction and debits the earnings in one SQLite transaction, then
/// broadcasts it. The caller's key makes it idempotent: calling again with the same key returns the same
/// payout (re-broadcasting the same signed bytes if it was not sent), never a second transfer.
/// </summary>
public sealed class OperatorPayouts : IDisposable
{
    internal const string Component = "payouts";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE chain_payouts (
            payout_key TEXT PRIMARY KEY, account TEXT NOT NULL, to_wallet TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
            chain_id INTEGER NOT NULL, nonce INTEGER NOT NULL, tx_hash TEXT NOT NULL UNIQUE, raw_tx TEXT NOT NULL,
            state INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL) WITHOUT ROWID;
        """,
    ];

    private readonly ChainOptions _options;
    private readonly BillingLedger _ledger;
    private readonly ChainRpc _rpc;
    private readonly Nethereum.Web3.Accounts.Account _account;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ILogger _logger;

    /// <summary>Creates the payout sender; needs <see cref="ChainOptions.PayoutPrivateKey"/>.</summary>
    public OperatorPayouts(ChainOptions options, BillingLedger ledger, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(ledger);
        options.Validate();
        if (options.PayoutPrivateKey is null)
        {
            throw Check.Fail("Chain.PayoutPrivateKey", "must be set to send payouts.");
        }

        _options = options;
        _ledger = ledger;
        _account = new Nethereum.Web3.Accounts.Account(options.PayoutPrivateKey, new BigInteger(options.ChainId));
        _rpc = new ChainRpc(options, _account);
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<OperatorPayouts>();
        ledger.Database.Migrate(Component, Migrations);
    }

    /// <summary>The platform account that sends payouts.</summary>
    public WalletAddress PlatformAccount => WalletAddress.Parse(_account.Address);

    /// <summary>
    /// Pays <paramref name="amountMicroUsdc"/> from an earnings account (node operator, relay operator or
    /// template author) to its owner's wallet. Throws <see cref="InsufficientFundsException"/> when the
    /// earnings are short, <see cref="IdempotencyConflictException"/> when the key was used for another payout.
    /// </summary>
    public async Task<Payout> PayAsync(string payoutKey, LedgerAccount earnings, long amountMicroUsdc, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrWhiteSpace(payoutKey) || payoutKey.Length > 150)
        {
            throw Check.Fail("payoutKey", $"'{Check.Show(payoutKey)}' must be 1-150 characters and not blank.");
        }

        if (earnings.Kind is not (LedgerAccountKind.NodeOperatorEarnings or LedgerAccountKind.RelayOperatorEarnings or LedgerAccountKind.TemplateAuthor))
        {
            throw Check.Fail("account", $"{earnings} is not an earnings account; payouts go from node, relay or author accounts.");
        }

        if (amountMicroUsdc <= 0 || amountMicroUsdc > MicroUsdc.MaxAmount)
        {
            throw Check.Fail("amount", $"{amountMicroUsdc} micro-USDC must be positive and at most {MicroUsdc.MaxAmount}.");
        }

        var to = WalletAddress.Parse(earnings.ToString()[(earnings.ToString().IndexOf(':', StringComparison.Ordinal) + 1)..]);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var existing = Read(payoutKey);
            if (existing is not null)
            {
                if (existing.Value.Payout.Account != earnings || existing.Value.Payout.AmountMicroUsdc != amountMicroUsdc)
                {
                    throw new IdempotencyConflictException(payoutKey, "payout");
                }

                return existing.Value.Payout.State == PayoutState.Signed
                    ? await BroadcastAsync(existing.Value.Payout, existing.Value.Raw, cancellationToken).ConfigureAwait(false)
                    : existing.Value.Payout;
            }

            var balance = _ledger.GetBalance(earnings);
            if (balance < amountMicroUsdc)
            {
                throw new InsufficientFundsException(earnings, balance, amountMicroUsdc);
            }

            await _rpc.EnsureChainAsync(cancellationToken).ConfigureAwait(false);
            var nonce = BigInteger.Max(
                await _rpc.GetPendingNonceAsync(_account.Address, cancellationToken).ConfigureAwait(false),
                NextStoredNonce());
            var gasPrice = await _rpc.GetGasPriceAsync(cancellationToken).ConfigureAwait(false);
            var input = new TransactionInput
            {
                From = _account.Address,
                To = _options.Contract.ToLowerHex(),
                Data = TransferCall(to, amountMicroUsdc),
                Gas = new HexBigInteger(_options.PayoutGasLimit),
                GasPrice = new HexBigInteger(gasPrice),
                Value = new HexBigInteger(0),
                Nonce = new HexBigInteger(nonce),
                ChainId = new HexBigInteger(_options.ChainId),
            };
            var raw = await _rpc.Call(() => _rpc.Web3.TransactionManager.SignTransactionAsync(input), "sign transfer", cancellationToken).ConfigureAwait(false);
            raw = raw.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? raw : "0x" + raw;
            var hash = "0x" + Sha3Keccack.Current.CalculateHashFromHex(raw).ToLowerInvariant();
            var payout = new Payout(payoutKey, earnings, to, amountMicroUsdc, (long)nonce, hash, PayoutState.Signed);
            _ledger.InTransaction(w =>
            {
                var now = LedgerAccountBalance(w, earnings);
                if (now < amountMicroUsdc)
                {
                    throw new InsufficientFundsException(earnings, now, amountMicroUsdc);
                }

                w.Post(LedgerPosting.Transfer("payout:" + payoutKey, earnings, LedgerAccount.ExternalPayouts, amountMicroUsdc, $"payout {payoutKey} in {hash}"));
                using var insert = w.Prepare(
                    """
                    INSERT INTO chain_payouts (payout_key, account, to_wallet, amount, chain_id, nonce, tx_hash, raw_tx, state, updated_at_ms)
                    VALUES ($k, $a, $to, $amt, $c, $n, $h, $raw, 0, $t);
                    """, "$k", "$a", "$to", "$amt", "$c", "$n", "$h", "$raw", "$t");
                var p = insert.Parameters;
                p[0].Value = payoutKey;
                p[1].Value = earnings.ToString();
                p[2].Value = to.ToLowerHex();
                p[3].Value = amountMicroUsdc;
                p[4].Value = _options.ChainId;
                p[5].Value = (long)nonce;
                p[6].Value = hash;
                p[7].Value = raw;
                p[8].Value = w.NowMs;
                insert.ExecuteNonQuery();
                return 0;
            });
            return await BroadcastAsync(payout, raw, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Checks a sent payout on chain: mined successfully makes it <see cref="PayoutState.Confirmed"/>;
    /// mined and reverted makes it <see cref="PayoutState.Failed"/> and restores the earnings; not mined
    /// yet leaves it as it is.
    /// </summary>
    public async Task<Payout> ConfirmAsync(string payoutKey, CancellationToken cancellationToken = default)
    {
        var stored = Read(payoutKey) ?? throw new BillingStateException($"There is no payout with key '{Check.Show(payoutKey)}'.");
        var payout = stored.Payout;
        if (payout.State is PayoutState.Confirmed or PayoutState.Failed)
        {
            return payout;
        }

        await _rpc.EnsureChainAsync(cancellationToken).ConfigureAwait(false);
        var receipt = await _rpc.GetReceiptAsync(payout.TxHash, cancellationToken).ConfigureAwait(false);
        if (receipt?.BlockNumber is null)
        {
            return payout;
        }

        var ok = receipt.Status?.Value == BigInteger.One;
        _ledger.InTransaction(w =>
        {
            if (!ok)
            {
                w.Post(LedgerPosting.Transfer("payout-reversal:" + payoutKey, LedgerAccount.ExternalPayouts, payout.Account, payout.AmountMicroUsdc,
                    $"payout {payoutKey} reverted on chain in {payout.TxHash}"));
            }

            SetState(w, payoutKey, ok ? PayoutState.Confirmed : PayoutState.Failed);
            return 0;
        });
        if (ok)
        {
            BillingMetrics.PaidOut.Add(payout.AmountMicroUsdc);
        }
        else
        {
            Log.PayoutFailed(_logger, payoutKey, payout.TxHash);
        }

        return payout with { State = ok ? PayoutState.Confirmed : PayoutState.Failed };
    }

    /// <summary>The payout with <paramref name="payoutKey"/>, or null.</summary>
    public Payout? Get(string payoutKey) => Read(payoutKey)?.Payout;

    /// <inheritdoc />
    public void Dispose()
    {
        _rpc.Dispose();
        _gate.Dispose();
    }

    /// <summary>ABI-encodes <c>transfer(address,uint256)</c>.</summary>
    internal static string TransferCall(WalletAddress to, long amount) =>
        "0xa9059cbb" + to.ToLowerHex()[2..].PadLeft(64, '0') + amount.ToString("x", CultureInfo.InvariantCulture).PadLeft(64, '0');

    private static long LedgerAccountBalance(LedgerWriter w, LedgerAccount account) => w.Balance(account);

    private static void SetState(LedgerWriter w, string key, PayoutState state)
    {
        using var update = w.Prepare("UPDATE chain_payouts SET state = $s, updated_at_ms = $t WHERE payout_key = $k;", "$s", "$t", "$k");
        update.Parameters[0].Value = (int)state;
        update.Parameters[1].Value = w.NowMs;
        update.Parameters[2].Value = key;
        update.ExecuteNonQuery();
    }

    private async Task<Payout> BroadcastAsync(Payout payout, string raw, CancellationToken cancellationToken)
    {
        try
        {
            await _rpc.SendRawAsync(raw, cancellationToken).ConfigureAwait(false);
        }
        catch (ChainException ex) when (!ex.IsTransient && (ex.Message.Contains("already", StringComparison.OrdinalIgnoreCase) ||
                                                          ex.Message.Contains("nonce too low", StringComparison.OrdinalIgnoreCase)))
        {
            // The same signed bytes reached the chain before (a retry after a lost answer): it is sent.
        }

        _ledger.InTransaction(w =>
        {
            SetState(w, payout.Key, PayoutState.Sent);
            return 0;
        });
        Log.PayoutSent(_logger, payout.Key, MicroUsdc.Format(payout.AmountMicroUsdc), payout.To.ToString(), payout.TxHash);
        return payout with { State = PayoutState.Sent };
    }

    private long NextStoredNonce()
    {
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(nonce) + 1, 0) FROM chain_payouts WHERE chain_id = $c AND state IN (0, 1);";
        cmd.Parameters.AddWithValue("$c", _options.ChainId);
        return (long)cmd.ExecuteScalar()!;
    }

    private (Payout Payout, string Raw)? Read(string key)
    {
        using var c = _ledger.Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT account, to_wallet, amount, nonce, tx_hash, state, raw_tx FROM chain_payouts WHERE payout_key = $k;";
        cmd.Parameters.AddWithValue("$k", key);
        using var r = cmd.ExecuteReader();
        return r.Read()
            ? (new Payout(key, LedgerAccount.Parse(r.GetString(0)), WalletAddress.Parse(r.GetString(1)), r.GetInt64(2), r.GetInt64(3), r.GetString(4), (PayoutState)r.GetInt32(5)), r.GetString(6))
            : null;
    }
}
