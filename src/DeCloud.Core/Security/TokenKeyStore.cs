namespace DeCloud.Core.Security;

/// <summary>One signing key of a <see cref="TokenKeyRing"/> as a <see cref="ITokenKeyStore"/> keeps it.</summary>
/// <param name="KeyId">The PASERK <c>k4.pid</c> of the public key; checked against the private key on load.</param>
/// <param name="PrivateKey">The raw Ed25519 private key (32-byte seed).</param>
/// <param name="CreatedAt">When the key was made.</param>
/// <param name="RetiresAt">When it stops verifying, or null while it is the signing key or has no end yet.</param>
/// <param name="IsCurrent">True for the one key that signs.</param>
public sealed record StoredTokenKey(string KeyId, ReadOnlyMemory<byte> PrivateKey, DateTimeOffset CreatedAt, DateTimeOffset? RetiresAt, bool IsCurrent);

/// <summary>A whole key ring as stored: its version and every key it holds.</summary>
/// <param name="Version">The ring's version (what hosts compare).</param>
/// <param name="Keys">Every key, exactly one of them current.</param>
public sealed record StoredTokenKeyRing(long Version, IReadOnlyList<StoredTokenKey> Keys);

/// <summary>
/// Where a <see cref="TokenKeyRing"/> keeps its keys so an orchestrator restart keeps signing with the
/// same key and hosts keep accepting tokens issued before it. <see cref="Save"/> replaces the whole ring
/// atomically: a crash leaves either the old ring or the new one.
/// </summary>
public interface ITokenKeyStore
{
    /// <summary>The stored ring, or null when nothing was stored yet.</summary>
    StoredTokenKeyRing? Load();

    /// <summary>Replaces the stored ring with <paramref name="ring"/> in one transaction.</summary>
    void Save(StoredTokenKeyRing ring);
}
