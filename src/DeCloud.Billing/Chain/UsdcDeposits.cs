using System.Globalization;
using System.Numerics;
using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nethereum.Hex.HexTypes;
using Nethereum.RPC.Eth.DTOs;

namespace DeCloud.Billing.Chain;

/// <summary>What a deposit claim found.</summary>
public enum DepositOutcome
{
    /// <summary>One or more deposits in the transaction were credited now.</summary>
    Credited = 0,

    /// <summary>Every deposit in the transaction was credited before; nothing changed.</summary>
    AlreadyCredited = 1,

    /// <summary>The deposit is recorded but has too few confirmations; it is credited later by a claim or reconcile.</summary>
    Pending = 2,

    /// <summary>The transaction is not mined (unknown, still pending, or reorganized away).</summary>
    NotFound = 3,

    /// <summary>The transaction reverted: it moved nothing.</summary>
    Reverted = 4,

    /// <summary>The transaction has Transfer logs to the deposit address, but from another token contract.</summary>
    WrongToken = 5,

    /// <summary>The transaction transfers the configured token, but to another address.</summary>
    WrongRecipient = 6,

    /// <summary>The transaction has no Transfer of any token.</summary>
    NoTransfer = 7,
}

/// <summary>Where an on-chain deposit stands.</summary>
public enum DepositState
{
    /// <summary>Seen, waiting for confirmations.</summary>
    Pending = 0,

    /// <summary>Credited to the sender's balance.</summary>
    Credited = 1,

    /// <summary>Was credited, then reorganized away; the credit was reversed.</summary>
    Reversed = 2,

    /// <summary>Was pending, then reorganized away; never credited.</summary>
    Dropped = 3,
}

/// <summary>One USDC Transfer log to the deposit address.</summary>
/// <param name="ChainId">The chain.</param>
/// <param name="TxHash">The transaction hash (lower-case).</param>
/// <param name="LogIndex">The log's index in its block.</param>
/// <param name="From">The sender, whose balance is credited.</param>
/// <param name="AmountMicroUsdc">The amount (USDC base units are micro-USDC).</param>
/// <param name="BlockNumber">The block it was seen in.</param>
/// <param name="State">Where it stands.</param>
public sealed record ChainDeposit(long ChainId, string TxHash, long LogIndex, WalletAddress From, long AmountMicroUsdc, long BlockNumber, DepositState State);

/// <summary>The answer to a claim.</summary>
/// <param name="Outcome">What was found.</param>
/// <param name="Confirmations">Confirmations of the transaction's block (0 when not mined).</param>
/// <param name="Deposits">The deposits of the transaction to the deposit address, as stored now.</param>
public sealed record DepositClaimResult(DepositOutcome Outcome, long Confirmations, IReadOnlyList<ChainDeposit> Deposits);

/// <summary>What a reconcile pass changed.</summary>
/// <param name="Credited">Pending deposits credited now.</param>
/// <param name="Reversed">Credited deposits reversed because their transaction left the chain.</param>
/// <param name="Dropped">Pending deposits dropped because their transaction left the chain.</param>
public sealed record DepositReconcileResult(int Credited, int Reversed, int Dropped);

/// <summary>
/// Credits USDC deposits verified on chain. A deposit is an ERC-20 <c>Transfer</c> log emitted by the
/// configured contract to the platform's deposit address in a successful transaction; it is credited to
/// the sender once per (chain id, transaction hash, log index), only after the configured confirmations
/// and after checking the RPC's chain id. <see cref="ReconcileAsync"/> credits deposits that matured and
/// reverses credits whose transaction was reorganized away.
/// </summary>
public sealed class UsdcDeposits : IDisposable
{
    internal const string Component = "deposits";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE chain_deposits (
            chain_id INTEGER NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL,
            block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
            from_wallet TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
            state INTEGER NOT NULL, generation INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
            PRIMARY KEY (chain_id, tx_hash, log_index)) WITHOUT ROWID;
        CREATE INDEX chain_deposits_state ON chain_deposits(state, block_number);
        """,
    ];

    private readonly ChainOptions _options;
    private readonly BillingLedger _ledger;
    private readonly ChainRpc _rpc;
    private readonly ILogger _logger;
    private readonly string _contract;
    private readonly string _depositTopic;

    /// <summary>Creates the deposit reader; the options are validated here.</summary>
    public UsdcDeposits(ChainOptions options, BillingLedger ledger, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(ledger);
        options.Validate();
        _options = options;
        _ledger = ledger;
        _rpc = new ChainRpc(options);
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<UsdcDeposits>();
        _contract = options.Contract.ToLowerHex();
        _depositTopic = ChainRpc.Topic(options.Deposit);
        ledger.Database.Migrate(Component, Migrations);
    }

    /// <summary>
    /// Verifies the transaction <paramref name="txHash"/> and credits its USDC transfers to the deposit
    /// address once they have enough confirmations. Safe to call any number of times.
    /// </summary>
    public async Task<DepositClaimResult> ClaimAsync(string txHash, CancellationToken cancellationToken = default)
    {
        var hash = ChainText.TxHash(txHash);
        await _rpc.EnsureChainAsync(cancellationToken).ConfigureAwait(false);
        var receipt = await _rpc.GetReceiptAsync(hash, cancellationToken).ConfigureAwait(false);
        if (receipt?.BlockNumber is null || receipt.BlockHash is null)
        {
            return Refused(hash, DepositOutcome.NotFound);
        }

        if (receipt.Status?.Value != BigInteger.One)
        {
            return Refused(hash, DepositOutcome.Reverted);
        }

        var logs = ChainRpc.LogsOf(receipt);
        var matches = new List<(long LogIndex, WalletAddress From, long Amount)>();
        bool otherToken = false, otherRecipient = false;
        foreach (var log in logs)
        {
            if (log.Topics is not { Length: 3 } topics || !Same(topics[0], ChainRpc.TransferTopic))
            {
                continue;
            }

            var ours = Same(log.Address, _contract);
            var toUs = Same(topics[2], _depositTopic);
            otherToken |= !ours && toUs;
            otherRecipient |= ours && !toUs;
            if (ours && toUs && TryAmount(log.Data, out var amount) && amount > 0 && log.LogIndex is not null)
            {
                matches.Add(((long)log.LogIndex.Value, AddressOfTopic(topics[1]), amount));
            }
        }

        if (matches.Count == 0)
        {
            return Refused(hash, otherToken ? DepositOutcome.WrongToken : otherRecipient ? DepositOutcome.WrongRecipient : DepositOutcome.NoTransfer);
        }

        var blockNumber = (long)receipt.BlockNumber.Value;
        var blockHash = receipt.BlockHash.ToLowerInvariant();
        var latest = await _rpc.GetBlockNumberAsync(cancellationToken).ConfigureAwait(false);
        var canonical = await _rpc.GetBlockHashAsync(blockNumber, cancellationToken).ConfigureAwait(false);
        if (!string.Equals(canonical, blockHash, StringComparison.Ordinal))
        {
            // The receipt's block is not (or no longer) on the canonical chain: a reorganization is under way.
            return Refused(hash, DepositOutcome.NotFound);
        }

        var confirmations = Math.Max(0, latest - blockNumber + 1);
        var confirmed = confirmations >= _options.Confirmations;
        var credited = 0;
        var deposits = _ledger.InTransaction(w =>
        {
            var stored = new List<ChainDeposit>();
            foreach (var (logIndex, from, amount) in matches)
            {
                var row = ReadRow(w, hash, logIndex);
                var generation = row?.Generation ?? 0;
                var state = row?.State;
                if (state is DepositState.Reversed or DepositState.Dropped)
                {
                    // Reorganized away earlier and mined again since: a new generation may be credited.
                    generation++;
                    state = null;
                }

                if (state != DepositState.Credited)
                {
                    state = confirmed ? DepositState.Credited : DepositState.Pending;
                    if (confirmed)
                    {
                        Credit(w, hash, logIndex, from, amount, generation);
                        credited++;
                    }
                }

                Upsert(w, hash, logIndex, blockNumber, blockHash, from, amount, state.Value, generation);
                stored.Add(new ChainDeposit(_options.ChainId, hash, logIndex, from, amount, blockNumber, state.Value));
            }

            return stored;
        });

        foreach (var d in deposits.Where(_ => credited > 0).Where(d => d.State == DepositState.Credited))
        {
            Log.DepositCredited(_logger, d.TxHash, d.LogIndex, MicroUsdc.Format(d.AmountMicroUsdc), d.From.ToString());
        }

        var outcome = credited > 0 ? DepositOutcome.Credited
            : deposits.All(d => d.State == DepositState.Credited) ? DepositOutcome.AlreadyCredited
            : DepositOutcome.Pending;
        return new DepositClaimResult(outcome, confirmations, deposits);
    }

    /// <summary>
    /// Reads the Transfer logs of the configured contract to the deposit address in blocks
    /// <paramref name="fromBlock"/>..<paramref name="toBlock"/> (eth_getLogs) and claims each transaction.
    /// Returns the claims made.
    /// </summary>
    public async Task<IReadOnlyList<DepositClaimResult>> ScanAsync(long fromBlock, long toBlock, CancellationToken cancellationToken = default)
    {
        if (fromBlock < 0 || toBlock < fromBlock || toBlock - fromBlock > 100_000)
        {
            throw Check.Fail("blocks", $"{fromBlock}..{toBlock} must be a non-negative range of at most 100,000 blocks.");
        }

        await _rpc.EnsureChainAsync(cancellationToken).ConfigureAwait(false);
        var logs = await _rpc.GetTransferLogsAsync(fromBlock, toBlock, cancellationToken).ConfigureAwait(false);
        var results = new List<DepositClaimResult>();
        foreach (var tx in logs.Select(l => l.TransactionHash).Where(h => h is not null).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            results.Add(await ClaimAsync(tx, cancellationToken).ConfigureAwait(false));
        }

        return results;
    }

    /// <summary>
    /// Re-checks every pending deposit and every credited one within <see cref="ChainOptions.ReorgDepth"/>
    /// blocks of the head: a matured pending deposit is credited; a deposit whose transaction is no
    /// longer on the chain is dropped (pending) or reversed (credited), which may overdraw the user.
    /// </summary>
    public async Task<DepositReconcileResult> ReconcileAsync(CancellationToken cancellationToken = default)
    {
        await _rpc.EnsureChainAsync(cancellationToken).ConfigureAwait(false);
        var latest = await _rpc.GetBlockNumberAsync(cancellationToken).ConfigureAwait(false);
        var rows = _ledger.InTransaction(w => ReadRecent(w, latest - _options.ReorgDepth));
        int credited = 0, reversed = 0, dropped = 0;
        foreach (var row in rows)
        {
            var receipt = await _rpc.GetReceiptAsync(row.TxHash, cancellationToken).ConfigureAwait(false);
            var still = receipt?.BlockNumber is not null && receipt.BlockHash is not null && receipt.Status?.Value == BigInteger.One &&
                        ChainRpc.LogsOf(receipt).Any(l => l.LogIndex is not null && (long)l.LogIndex.Value == row.LogIndex &&
                                                          Same(l.Address, _contract) && l.Topics is { Length: 3 } t && Same(t[2], _depositTopic));
            string? canonical = null;
            if (still)
            {
                canonical = await _rpc.GetBlockHashAsync((long)receipt!.BlockNumber.Value, cancellationToken).ConfigureAwait(false);
                still = string.Equals(canonical, receipt.BlockHash!.ToLowerInvariant(), StringComparison.Ordinal);
            }

            if (!still)
            {
                var change = _ledger.InTransaction(w => Remove(w, row));
                reversed += change == DepositState.Reversed ? 1 : 0;
                dropped += change == DepositState.Dropped ? 1 : 0;
                continue;
            }

            var blockNumber = (long)receipt!.BlockNumber.Value;
            var confirmed = latest - blockNumber + 1 >= _options.Confirmations;
            var nowCredited = _ledger.InTransaction(w =>
            {
                var current = ReadRow(w, row.TxHash, row.LogIndex);
                if (current is null || current.State is DepositState.Reversed or DepositState.Dropped)
                {
                    return false;
                }

                var credit = current.State == DepositState.Pending && confirmed;
                if (credit)
                {
                    Credit(w, row.TxHash, row.LogIndex, current.From, current.Amount, current.Generation);
                }

                Upsert(w, row.TxHash, row.LogIndex, blockNumber, canonical!, current.From, current.Amount,
                    credit ? DepositState.Credited : current.State, current.Generation);
                return credit;
            });
            credited += nowCredited ? 1 : 0;
        }

        return new DepositReconcileResult(credited, reversed, dropped);
    }

    /// <summary>Every deposit stored for this chain, oldest block first.</summary>
    public IReadOnlyList<ChainDeposit> GetDeposits() => _ledger.InTransaction(w =>
        ReadRecent(w, long.MinValue, allStates: true).Select(r => new ChainDeposit(_options.ChainId, r.TxHash, r.LogIndex, r.From, r.Amount, r.BlockNumber, r.State)).ToList());

    /// <inheritdoc />
    public void Dispose() => _rpc.Dispose();

    private static bool Same(object? a, string b) => a is string s && string.Equals(s, b, StringComparison.OrdinalIgnoreCase);

    private static WalletAddress AddressOfTopic(object topic) => WalletAddress.Parse("0x" + ((string)topic)[^40..], "topic");

    private static bool TryAmount(string? data, out long amount)
    {
        amount = 0;
        if (data is null || !ChainText.IsHex(data, 64))
        {
            return false;
        }

        var value = new HexBigInteger(data).Value;
        if (value <= 0 || value > MicroUsdc.MaxAmount)
        {
            return false;
        }

        amount = (long)value;
        return true;
    }

    private DepositClaimResult Refused(string hash, DepositOutcome outcome)
    {
        Log.DepositRefused(_logger, hash, outcome.ToString());
        return new DepositClaimResult(outcome, 0, []);
    }

    private string Key(string prefix, string hash, long logIndex, long generation) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}:{_options.ChainId}:{hash}:{logIndex}:{generation}");

    private void Credit(LedgerWriter w, string hash, long logIndex, WalletAddress from, long amount, long generation)
    {
        w.Post(LedgerPosting.Transfer(Key("deposit", hash, logIndex, generation), LedgerAccount.ExternalDeposits, LedgerAccount.User(from), amount,
            $"USDC deposit {hash}#{logIndex} on chain {_options.ChainId}"));
        BillingMetrics.DepositsCredited.Add(amount);
    }

    private DepositState? Remove(LedgerWriter w, Row row)
    {
        var current = ReadRow(w, row.TxHash, row.LogIndex);
        if (current is null || current.State is DepositState.Reversed or DepositState.Dropped)
        {
            return null;
        }

        DepositState next;
        if (current.State == DepositState.Credited)
        {
            w.Post(LedgerPosting.Transfer(Key("deposit-reversal", row.TxHash, row.LogIndex, current.Generation), LedgerAccount.User(current.From),
                LedgerAccount.ExternalDeposits, current.Amount, $"reorganized away: USDC deposit {row.TxHash}#{row.LogIndex}"));
            BillingMetrics.DepositsReversed.Add(current.Amount);
            next = DepositState.Reversed;
        }
        else
        {
            next = DepositState.Dropped;
        }

        Upsert(w, row.TxHash, row.LogIndex, current.BlockNumber, current.BlockHash, current.From, current.Amount, next, current.Generation);
        Log.DepositReorganized(_logger, row.TxHash, row.LogIndex, next == DepositState.Reversed ? "credit reversed" : "pending deposit dropped");
        return next;
    }

    private void Upsert(LedgerWriter w, string hash, long logIndex, long blockNumber, string blockHash, WalletAddress from, long amount, DepositState state, long generation)
    {
        using var cmd = w.Prepare(
            """
            INSERT INTO chain_deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_wallet, amount, state, generation, updated_at_ms)
            VALUES ($c, $h, $i, $bn, $bh, $f, $a, $s, $g, $t)
            ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET block_number = excluded.block_number, block_hash = excluded.block_hash,
                state = excluded.state, generation = excluded.generation, updated_at_ms = excluded.updated_at_ms;
            """, "$c", "$h", "$i", "$bn", "$bh", "$f", "$a", "$s", "$g", "$t");
        var p = cmd.Parameters;
        p[0].Value = _options.ChainId;
        p[1].Value = hash;
        p[2].Value = logIndex;
        p[3].Value = blockNumber;
        p[4].Value = blockHash;
        p[5].Value = from.ToLowerHex();
        p[6].Value = amount;
        p[7].Value = (int)state;
        p[8].Value = generation;
        p[9].Value = w.NowMs;
        cmd.ExecuteNonQuery();
    }

    private Row? ReadRow(LedgerWriter w, string hash, long logIndex)
    {
        using var cmd = w.Prepare(
            "SELECT tx_hash, log_index, block_number, block_hash, from_wallet, amount, state, generation FROM chain_deposits WHERE chain_id = $c AND tx_hash = $h AND log_index = $i;",
            "$c", "$h", "$i");
        cmd.Parameters[0].Value = _options.ChainId;
        cmd.Parameters[1].Value = hash;
        cmd.Parameters[2].Value = logIndex;
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadRow(r) : null;
    }

    private List<Row> ReadRecent(LedgerWriter w, long sinceBlock, bool allStates = false)
    {
        using var cmd = w.Prepare(
            allStates
                ? "SELECT tx_hash, log_index, block_number, block_hash, from_wallet, amount, state, generation FROM chain_deposits WHERE chain_id = $c AND block_number >= $b ORDER BY block_number, tx_hash, log_index;"
                : "SELECT tx_hash, log_index, block_number, block_hash, from_wallet, amount, state, generation FROM chain_deposits WHERE chain_id = $c AND (state = 0 OR (state = 1 AND block_number >= $b)) ORDER BY block_number, tx_hash, log_index;",
            "$c", "$b");
        cmd.Parameters[0].Value = _options.ChainId;
        cmd.Parameters[1].Value = sinceBlock;
        using var r = cmd.ExecuteReader();
        var rows = new List<Row>();
        while (r.Read())
        {
            rows.Add(ReadRow(r));
        }

        return rows;
    }

    private static Row ReadRow(Microsoft.Data.Sqlite.SqliteDataReader r) => new(
        r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetString(3), WalletAddress.Parse(r.GetString(4)), r.GetInt64(5), (DepositState)r.GetInt32(6), r.GetInt64(7));

    private sealed record Row(string TxHash, long LogIndex, long BlockNumber, string BlockHash, WalletAddress From, long Amount, DepositState State, long Generation);
}
