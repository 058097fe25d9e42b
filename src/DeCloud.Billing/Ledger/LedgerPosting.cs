using System.Security.Cryptography;
using System.Text;

namespace DeCloud.Billing.Ledger;

/// <summary>One leg of a posting: a positive amount credits the account, a negative one debits it.</summary>
/// <param name="Account">The account.</param>
/// <param name="AmountMicroUsdc">The signed amount in micro-USDC (never zero).</param>
public readonly record struct LedgerEntry(LedgerAccount Account, long AmountMicroUsdc);

/// <summary>
/// A balanced set of entries (they sum to zero) under a unique idempotency key. Posting the same key
/// again is a no-op; posting it with other entries is refused.
/// </summary>
public sealed class LedgerPosting
{
    /// <summary>The longest idempotency key accepted.</summary>
    public const int MaxKeyLength = 200;

    private LedgerPosting(string key, LedgerEntry[] entries, string memo)
    {
        IdempotencyKey = key;
        Entries = entries;
        Memo = memo;
        ContentHash = ComputeHash(entries);
    }

    /// <summary>The unique key that makes the posting idempotent.</summary>
    public string IdempotencyKey { get; }

    /// <summary>The legs, summing to zero.</summary>
    public IReadOnlyList<LedgerEntry> Entries { get; }

    /// <summary>A human-readable reason.</summary>
    public string Memo { get; }

    internal string ContentHash { get; }

    /// <summary>Moves <paramref name="amountMicroUsdc"/> (positive) from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static LedgerPosting Transfer(string idempotencyKey, LedgerAccount from, LedgerAccount to, long amountMicroUsdc, string memo = "") =>
        Create(idempotencyKey, [new LedgerEntry(from, -amountMicroUsdc), new LedgerEntry(to, amountMicroUsdc)], memo);

    /// <summary>
    /// Creates a posting from legs; throws <see cref="BillingValidationException"/> when the key is
    /// empty or too long, a leg is zero or absurd, an account repeats, or the legs do not sum to zero.
    /// </summary>
    public static LedgerPosting Create(string idempotencyKey, IEnumerable<LedgerEntry> entries, string memo = "")
    {
        if (string.IsNullOrWhiteSpace(idempotencyKey) || idempotencyKey.Length > MaxKeyLength)
        {
            throw Check.Fail("idempotencyKey", $"'{Check.Show(idempotencyKey)}' must be 1-{MaxKeyLength} characters and not blank.");
        }

        ArgumentNullException.ThrowIfNull(entries);
        var legs = entries.ToArray();
        if (legs.Length < 2)
        {
            throw Check.Fail("entries", $"a posting needs at least two legs; {legs.Length} given.");
        }

        long sum = 0;
        for (var i = 0; i < legs.Length; i++)
        {
            var amount = legs[i].AmountMicroUsdc;
            _ = legs[i].Account.ToString(); // a default account throws here
            if (amount == 0 || amount > MicroUsdc.MaxAmount || amount < -MicroUsdc.MaxAmount)
            {
                throw Check.Fail($"entries[{i}].amount", $"{amount} micro-USDC must be non-zero and at most {MicroUsdc.MaxAmount} in size.");
            }

            for (var j = 0; j < i; j++)
            {
                if (legs[j].Account == legs[i].Account)
                {
                    throw Check.Fail($"entries[{i}].account", $"{legs[i].Account} appears twice; merge the legs.");
                }
            }

            sum += amount;
        }

        if (sum != 0)
        {
            throw Check.Fail("entries", $"the legs sum to {sum} micro-USDC; a posting must sum to zero.");
        }

        return new LedgerPosting(idempotencyKey, legs, memo ?? string.Empty);
    }

    private static string ComputeHash(LedgerEntry[] entries)
    {
        var sb = new StringBuilder(entries.Length * 64);
        foreach (var e in entries.OrderBy(e => e.Account.ToString(), StringComparer.Ordinal))
        {
            sb.Append(e.Account.ToString()).Append('=').Append(e.AmountMicroUsdc).Append(';');
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()), hash);
        return Convert.ToHexStringLower(hash[..16]);
    }
}

/// <summary>What happened to a posting.</summary>
public enum PostingOutcome
{
    /// <summary>It was written.</summary>
    Posted = 0,

    /// <summary>The same key with the same entries was already posted; nothing changed.</summary>
    Duplicate = 1,
}
