using System.Collections.Frozen;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Paseto;
using NSec.Cryptography;

namespace DeCloud.Core.Security;

/// <summary>
/// A host's copy of the orchestrator's public keys, looked up by key id without allocating. An
/// update replaces the whole set atomically; readers never lock.
/// </summary>
public sealed class TokenVerificationKeys
{
    private volatile Snapshot _snapshot = new(0, FrozenDictionary<string, VerificationKey>.Empty);

    /// <summary>Creates an empty set (every token is refused as signed by an unknown key until <see cref="Update"/>).</summary>
    public TokenVerificationKeys()
    {
    }

    /// <summary>Creates a set holding <paramref name="keySet"/>.</summary>
    public TokenVerificationKeys(TokenPublicKeySet keySet) => Update(keySet);

    /// <summary>The version of the key set in use (0 before the first update).</summary>
    public long Version => _snapshot.Version;

    /// <summary>The number of keys held (including retired ones kept to report them as retired).</summary>
    public int Count => _snapshot.Keys.Count;

    /// <summary>
    /// Replaces the keys with <paramref name="keySet"/> unless it is older than the set in use
    /// (returns false then). Throws <see cref="DeCloudValidationException"/> for a malformed set, leaving the current one in place.
    /// </summary>
    public bool Update(TokenPublicKeySet keySet)
    {
        ArgumentNullException.ThrowIfNull(keySet);
        var keys = new Dictionary<string, VerificationKey>(StringComparer.Ordinal);
        for (var i = 0; i < keySet.Keys.Count; i++)
        {
            var k = keySet.Keys[i];
            var field = $"keys[{i}]";
            if (k is null || string.IsNullOrEmpty(k.Kid) || k.Kid.Length > 128)
            {
                throw Validate.Fail(field + ".kid", "is missing or longer than 128 characters.");
            }

            if (k.KeyType != "OKP" || k.Curve != "Ed25519")
            {
                throw Validate.Fail(field, $"has kty '{k.KeyType}' crv '{k.Curve}'; only OKP/Ed25519 is supported.");
            }

            var raw = StrictBase64Url.DecodeOrNull(k.X ?? string.Empty);
            if (raw is null || !PublicKey.TryImport(SignatureAlgorithm.Ed25519, raw, KeyBlobFormat.RawPublicKey, out var publicKey) || publicKey is null)
            {
                throw Validate.Fail(field + ".x", "is not a base64url raw Ed25519 public key.");
            }

            var retired = k.Status switch
            {
                TokenPublicKey.StatusActive or TokenPublicKey.StatusVerifyOnly => false,
                TokenPublicKey.StatusRetired => true,
                _ => throw Validate.Fail(field + ".status", $"'{k.Status}' is not active, verify or retired."),
            };
            if (!keys.TryAdd(k.Kid, new VerificationKey(publicKey, retired, k.RetiresAt)))
            {
                throw Validate.Fail(field + ".kid", $"'{k.Kid}' appears twice.");
            }
        }

        while (true)
        {
            var current = _snapshot;
            if (keySet.Version < current.Version)
            {
                return false;
            }

            var next = new Snapshot(keySet.Version, keys.ToFrozenDictionary(StringComparer.Ordinal));
#pragma warning disable CS0420 // volatile field passed by reference: Interlocked gives the same guarantees.
            if (Interlocked.CompareExchange(ref _snapshot, next, current) == current)
#pragma warning restore CS0420
            {
                return true;
            }
        }
    }

    /// <summary>Finds a key by id (no allocation).</summary>
    internal VerificationKey? Find(ReadOnlySpan<char> keyId) =>
        _snapshot.Lookup.TryGetValue(keyId, out var key) ? key : null;

    internal sealed class VerificationKey(PublicKey key, bool retired, DateTimeOffset? retiresAt)
    {
        public PublicKey Key { get; } = key;

        public bool IsRetiredAt(DateTimeOffset now) => retired || (retiresAt is { } r && now >= r);
    }

    private sealed class Snapshot(long version, FrozenDictionary<string, VerificationKey> keys)
    {
        public long Version { get; } = version;
        public FrozenDictionary<string, VerificationKey> Keys { get; } = keys;
        public FrozenDictionary<string, VerificationKey>.AlternateLookup<ReadOnlySpan<char>> Lookup { get; } = keys.GetAlternateLookup<ReadOnlySpan<char>>();
    }
}
