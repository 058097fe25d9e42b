using System.Text.Json;
using System.Text.Json.Serialization;
using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>
/// One public verification key, in a JWK-like shape (<c>kty</c> OKP, <c>crv</c> Ed25519, <c>x</c> the
/// raw 32-byte key in base64url) plus its status and retirement time.
/// </summary>
public sealed record TokenPublicKey
{
    /// <summary>The current signing key.</summary>
    public const string StatusActive = "active";

    /// <summary>A replaced key that still verifies until <see cref="RetiresAt"/>.</summary>
    public const string StatusVerifyOnly = "verify";

    /// <summary>A retired key: tokens it signed are refused.</summary>
    public const string StatusRetired = "retired";

    /// <summary>Creates a key entry.</summary>
    [JsonConstructor]
    public TokenPublicKey(string kid, string x, string status, DateTimeOffset? retiresAt)
    {
        Kid = kid;
        X = x;
        Status = status;
        RetiresAt = retiresAt;
    }

    /// <summary>The key id (PASERK <c>k4.pid</c>), as found in token footers.</summary>
    [JsonPropertyName("kid")]
    public string Kid { get; init; }

    /// <summary>Always <c>OKP</c>.</summary>
    [JsonPropertyName("kty")]
    public string KeyType { get; init; } = "OKP";

    /// <summary>Always <c>Ed25519</c>.</summary>
    [JsonPropertyName("crv")]
    public string Curve { get; init; } = "Ed25519";

    /// <summary>Always <c>sig</c>.</summary>
    [JsonPropertyName("use")]
    public string Use { get; init; } = "sig";

    /// <summary>The raw public key, unpadded base64url.</summary>
    [JsonPropertyName("x")]
    public string X { get; init; }

    /// <summary><see cref="StatusActive"/>, <see cref="StatusVerifyOnly"/> or <see cref="StatusRetired"/>.</summary>
    [JsonPropertyName("status")]
    public string Status { get; init; }

    /// <summary>When the key stops verifying (null for the current signing key).</summary>
    [JsonPropertyName("retires_at")]
    public DateTimeOffset? RetiresAt { get; init; }
}

/// <summary>The public keys hosts fetch from the orchestrator to validate tokens locally.</summary>
public sealed record TokenPublicKeySet
{
    /// <summary>Creates a key set.</summary>
    [JsonConstructor]
    public TokenPublicKeySet(long version, IReadOnlyList<TokenPublicKey> keys)
    {
        Version = version;
        Keys = keys;
    }

    /// <summary>Increases with every change; a host ignores a set older than the one it holds.</summary>
    [JsonPropertyName("version")]
    public long Version { get; init; }

    /// <summary>The keys.</summary>
    [JsonPropertyName("keys")]
    public IReadOnlyList<TokenPublicKey> Keys { get; init; }

    /// <summary>The JSON form (<c>{"version":n,"keys":[...]}</c>).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, SecurityJsonContext.Default.TokenPublicKeySet);

    /// <summary>Parses the JSON form; throws <see cref="DeCloudValidationException"/> naming what is wrong.</summary>
    public static TokenPublicKeySet FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        TokenPublicKeySet? set;
        try
        {
            set = JsonSerializer.Deserialize(json, SecurityJsonContext.Default.TokenPublicKeySet);
        }
        catch (JsonException e)
        {
            throw Validate.Fail("keySet", $"is not valid key-set JSON: {e.Message}");
        }

        if (set?.Keys is null)
        {
            throw Validate.Fail("keySet.keys", "is missing.");
        }

        return set;
    }
}

/// <summary>Source-generated JSON for the security types (trimming and AOT safe).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TokenPublicKeySet))]
[JsonSerializable(typeof(TokenRevocationUpdate))]
[JsonSerializable(typeof(TokenFooter))]
internal sealed partial class SecurityJsonContext : JsonSerializerContext;
