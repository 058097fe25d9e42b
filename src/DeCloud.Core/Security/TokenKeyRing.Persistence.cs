using DeCloud.Core.Model;
using NSec.Cryptography;

namespace DeCloud.Core.Security;

/// <summary>The persistent side of the key ring: load from and save to an <see cref="ITokenKeyStore"/>.</summary>
public sealed partial class TokenKeyRing
{
    /// <summary>
    /// Creates a ring kept in <paramref name="store"/>: the stored keys when there are any (so tokens
    /// issued before a restart keep verifying and the same key keeps signing), otherwise one fresh
    /// signing key, saved at once. Every rotation and retirement is saved before it takes effect.
    /// </summary>
    /// <exception cref="DeCloudValidationException">The stored ring is damaged (a key that does not match its id, not exactly one signing key).</exception>
    public TokenKeyRing(ITokenKeyStore store, TokenKeyRingOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _options = options ?? new TokenKeyRingOptions();
        _options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        _store = store;
        var saved = store.Load();
        if (saved is null || saved.Keys.Count == 0)
        {
            _current = NewKey(_time.GetUtcNow(), exportable: true);
            _keys.Add(_current);
            _version = 1;
            try
            {
                store.Save(new StoredTokenKeyRing(_version, [ToStored(_current, null, isCurrent: true)]));
            }
            catch
            {
                _current.Key.Dispose();
                throw;
            }

            return;
        }

        RingKey? current = null;
        try
        {
            foreach (var stored in saved.Keys)
            {
                var key = Import(stored);
                _keys.Add(key);
                if (stored.IsCurrent)
                {
                    current = current is null ? key : throw Validate.Fail("tokenKeys.isCurrent", "more than one stored key is marked as the signing key.");
                }
            }

            _current = current ?? throw Validate.Fail("tokenKeys.isCurrent", "no stored key is marked as the signing key.");
            _version = Math.Max(1, saved.Version);
        }
        catch
        {
            foreach (var k in _keys)
            {
                k.Key.Dispose();
            }

            throw;
        }
    }

    /// <summary>When the current signing key was made (kept across restarts by a persistent ring), to rotate it by age.</summary>
    public DateTimeOffset CurrentKeyCreatedAt
    {
        get
        {
            lock (_gate)
            {
                return _current.CreatedAt;
            }
        }
    }

    /// <summary>True when this ring is kept in an <see cref="ITokenKeyStore"/>.</summary>
    public bool IsPersistent => _store is not null;

    /// <summary>
    /// Saves the ring as it will be after a change: <paramref name="changed"/> gets
    /// <paramref name="changedRetiresAt"/>, and <paramref name="next"/> (when not null) is added as the
    /// signing key. Called before the change is applied, so a failed save changes nothing.
    /// </summary>
    private void PersistLocked(RingKey? next, RingKey changed, DateTimeOffset changedRetiresAt)
    {
        if (_store is null)
        {
            return;
        }

        var keys = new List<StoredTokenKey>(_keys.Count + 1);
        foreach (var k in _keys)
        {
            keys.Add(ToStored(k, ReferenceEquals(k, changed) ? changedRetiresAt : k.RetiresAt, isCurrent: next is null && ReferenceEquals(k, _current)));
        }

        if (next is not null)
        {
            keys.Add(ToStored(next, null, isCurrent: true));
        }

        try
        {
            _store.Save(new StoredTokenKeyRing(_version + 1, keys));
        }
        catch
        {
            next?.Key.Dispose();
            throw;
        }
    }

    private static StoredTokenKey ToStored(RingKey k, DateTimeOffset? retiresAt, bool isCurrent) =>
        new(k.KeyId, k.Key.Export(KeyBlobFormat.RawPrivateKey), k.CreatedAt, retiresAt, isCurrent);

    private static RingKey Import(StoredTokenKey stored)
    {
        if (stored.PrivateKey.Length != 32
            || !Key.TryImport(SignatureAlgorithm.Ed25519, stored.PrivateKey.Span, KeyBlobFormat.RawPrivateKey, out var key,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }))
        {
            throw Validate.Fail("tokenKeys.privateKey", $"the stored key '{stored.KeyId}' is not a 32-byte Ed25519 private key.");
        }

        var ring = FromKey(key!, stored.CreatedAt);
        if (!string.Equals(ring.KeyId, stored.KeyId, StringComparison.Ordinal))
        {
            key!.Dispose();
            throw Validate.Fail("tokenKeys.kid", $"the stored key id '{stored.KeyId}' does not match its private key ('{ring.KeyId}').");
        }

        ring.RetiresAt = stored.RetiresAt;
        return ring;
    }
}
