using System.Text;
using System.Text.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Paseto;
using NSec.Cryptography;

namespace DeCloud.Core.Security;

/// <summary>Options of a <see cref="TokenKeyRing"/>.</summary>
public sealed class TokenKeyRingOptions
{
    /// <summary>
    /// How long a replaced signing key still verifies after a rotation, so tokens it signed stay valid
    /// until they expire. Must be at least the longest token lifetime. Default 1 hour.
    /// </summary>
    public TimeSpan RotationOverlap { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long a retired key stays in the published key set marked retired (so hosts report
    /// "retired key" rather than "unknown key") before it is dropped. Default 24 hours.
    /// </summary>
    public TimeSpan RetiredKeyRetention { get; set; } = TimeSpan.FromHours(24);

    internal void Validate()
    {
        if (RotationOverlap < TimeSpan.Zero || RotationOverlap > TimeSpan.FromDays(30))
        {
            throw Model.Validate.Fail(nameof(RotationOverlap), $"{RotationOverlap} is out of range; expected 0 to 30 days (at least the longest token lifetime).");
        }

        if (RetiredKeyRetention < TimeSpan.Zero || RetiredKeyRetention > TimeSpan.FromDays(365))
        {
            throw Model.Validate.Fail(nameof(RetiredKeyRetention), $"{RetiredKeyRetention} is out of range; expected 0 to 365 days.");
        }
    }
}

/// <summary>
/// The orchestrator's Ed25519 signing keys: exactly one current signing key and any number of
/// previous keys that still verify during their rotation overlap. Hosts never hold this: they get
/// the public half through <see cref="GetPublicKeySet"/>.
/// </summary>
public sealed partial class TokenKeyRing : IDisposable
{
    private readonly object _gate = new();
    private readonly TokenKeyRingOptions _options;
    private readonly TimeProvider _time;
    private readonly List<RingKey> _keys = [];
    private readonly ITokenKeyStore? _store;
    private RingKey _current;
    private long _version;
    private bool _disposed;

    /// <summary>Creates a ring with one fresh signing key.</summary>
    public TokenKeyRing(TokenKeyRingOptions? options = null, TimeProvider? timeProvider = null)
    {
        _options = options ?? new TokenKeyRingOptions();
        _options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        _current = NewKey(_time.GetUtcNow(), exportable: false);
        _keys.Add(_current);
        _version = 1;
    }

    /// <summary>The key id of the current signing key (PASERK <c>k4.pid</c> of its public key).</summary>
    public string CurrentKeyId
    {
        get
        {
            lock (_gate)
            {
                return _current.KeyId;
            }
        }
    }

    /// <summary>Increases with every rotation or retirement; hosts ignore key sets older than the one they hold.</summary>
    public long Version
    {
        get
        {
            lock (_gate)
            {
                return _version;
            }
        }
    }

    /// <summary>
    /// Makes a fresh key the signing key. The previous one keeps verifying for
    /// <see cref="TokenKeyRingOptions.RotationOverlap"/>, then is retired. Returns the new key id.
    /// </summary>
    public string Rotate()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _time.GetUtcNow();
            var next = NewKey(now, exportable: _store is not null);
            PersistLocked(next, _current, now + _options.RotationOverlap);
            _current.RetiresAt = now + _options.RotationOverlap;
            _current = next;
            _keys.Add(_current);
            PruneLocked(now);
            _version++;
            return _current.KeyId;
        }
    }

    /// <summary>
    /// Retires a key at once (for example after a compromise): tokens it signed are refused from the
    /// next key-set update on. Retiring the current signing key rotates first. False for an unknown id.
    /// </summary>
    public bool Retire(string keyId)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key = _keys.Find(k => string.Equals(k.KeyId, keyId, StringComparison.Ordinal));
            if (key is null)
            {
                return false;
            }

            var now = _time.GetUtcNow();
            var next = ReferenceEquals(key, _current) ? NewKey(now, exportable: _store is not null) : null;
            PersistLocked(next, key, now);
            if (next is not null)
            {
                _current = next;
                _keys.Add(_current);
            }

            key.RetiresAt = now;
            _version++;
            return true;
        }
    }

    /// <summary>The public half of every key that verifies or was recently retired, for hosts to fetch.</summary>
    public TokenPublicKeySet GetPublicKeySet()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _time.GetUtcNow();
            PruneLocked(now);
            var keys = new List<TokenPublicKey>(_keys.Count);
            foreach (var k in _keys)
            {
                var status = ReferenceEquals(k, _current) ? TokenPublicKey.StatusActive
                    : k.RetiresAt is { } r && r <= now ? TokenPublicKey.StatusRetired
                    : TokenPublicKey.StatusVerifyOnly;
                keys.Add(new TokenPublicKey(k.KeyId, StrictBase64Url.Encode(k.PublicKey), status, k.RetiresAt));
            }

            return new TokenPublicKeySet(_version, keys);
        }
    }

    /// <summary>Signs <paramref name="claims"/> (UTF-8 JSON) with the current key, the key id in the footer.</summary>
    internal string Sign(ReadOnlySpan<byte> claims)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return PasetoV4Public.Sign(_current.Key, claims, _current.Footer);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var k in _keys)
            {
                k.Key.Dispose();
            }

            _keys.Clear();
        }
    }

    /// <summary>
    /// The PASERK <c>k4.pid</c> of an Ed25519 public key:
    /// <c>"k4.pid." + b64url(BLAKE2b-264("k4.pid." + "k4.public." + b64url(pk)))</c>.
    /// </summary>
    internal static string KeyIdOf(ReadOnlySpan<byte> publicKey)
    {
        const string header = "k4.pid.";
        var input = Encoding.ASCII.GetBytes(header + "k4.public." + StrictBase64Url.Encode(publicKey));
        var digest = new Blake2b(33).Hash(input);
        return header + StrictBase64Url.Encode(digest);
    }

    private void PruneLocked(DateTimeOffset now)
    {
        for (var i = _keys.Count - 1; i >= 0; i--)
        {
            var k = _keys[i];
            if (!ReferenceEquals(k, _current) && k.RetiresAt is { } r && now - r >= _options.RetiredKeyRetention)
            {
                k.Key.Dispose();
                _keys.RemoveAt(i);
            }
        }
    }

    private static RingKey NewKey(DateTimeOffset now, bool exportable) =>
        FromKey(Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters
        {
            ExportPolicy = exportable ? KeyExportPolicies.AllowPlaintextExport : KeyExportPolicies.None,
        }), now);

    private static RingKey FromKey(Key key, DateTimeOffset now)
    {
        var pk = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var kid = KeyIdOf(pk);
        var footer = JsonSerializer.SerializeToUtf8Bytes(new TokenFooter(kid), SecurityJsonContext.Default.TokenFooter);
        return new RingKey(key, pk, kid, footer, now);
    }

    private sealed class RingKey(Key key, byte[] publicKey, string keyId, byte[] footer, DateTimeOffset createdAt)
    {
        public Key Key { get; } = key;
        public byte[] PublicKey { get; } = publicKey;
        public string KeyId { get; } = keyId;
        public byte[] Footer { get; } = footer;
        public DateTimeOffset CreatedAt { get; } = createdAt;
        public DateTimeOffset? RetiresAt { get; set; }
    }
}

/// <summary>The footer of a DeCloud token: <c>{"kid":"k4.pid...."}</c>.</summary>
internal sealed record TokenFooter([property: System.Text.Json.Serialization.JsonPropertyName("kid")] string Kid);
