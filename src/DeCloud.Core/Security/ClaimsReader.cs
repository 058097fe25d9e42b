using System.Text.Json;

namespace DeCloud.Core.Security;

/// <summary>The claims of a DeCloud token as spans into the verified payload (no allocation).</summary>
internal ref struct RawClaims
{
    public ReadOnlySpan<byte> Issuer;
    public ReadOnlySpan<byte> Subject;
    public ReadOnlySpan<byte> Audience;
    public ReadOnlySpan<byte> Kind;
    public ReadOnlySpan<byte> Vm;
    public ReadOnlySpan<byte> Project;
    public ReadOnlySpan<byte> TokenId;
    public ReadOnlySpan<byte> Wallet;
    public ReadOnlySpan<byte> Role;
    public ReadOnlySpan<byte> Volume;
    public ReadOnlySpan<byte> Move;
    public TokenScopes Scopes;
    public DateTimeOffset IssuedAt;
    public DateTimeOffset NotBefore;
    public DateTimeOffset ExpiresAt;
    public int Seen;
}

/// <summary>
/// Reads the claims JSON with <see cref="Utf8JsonReader"/>: a single object, each known claim at
/// most once, string claims unescaped, times as ISO 8601 (as PASETO's registered claims), unknown
/// claims skipped. Runs only on payloads whose signature has verified.
/// </summary>
internal static class ClaimsReader
{
    public const int Iss = 1, Sub = 2, Aud = 4, Kind = 8, Vm = 16, Prj = 32, Scp = 64, Iat = 128, Nbf = 256, Exp = 512, Jti = 1024, Wal = 2048, Rol = 4096, Vol = 8192, Mov = 16384;
    public const int Required = Iss | Sub | Aud | Kind | Iat | Nbf | Exp | Jti;

    private static readonly JsonReaderOptions Options = new() { MaxDepth = 4, CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false };

    public static bool TryRead(ReadOnlySpan<byte> json, out RawClaims claims)
    {
        claims = default;
        try
        {
            return TryReadCore(json, ref claims);
        }
        catch (JsonException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool TryReadCore(ReadOnlySpan<byte> json, ref RawClaims c)
    {
        var reader = new Utf8JsonReader(json, Options);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                return !reader.Read() && (c.Seen & Required) == Required;
            }

            if (reader.TokenType != JsonTokenType.PropertyName || reader.ValueIsEscaped)
            {
                return false;
            }

            var bit = Bit(reader.ValueSpan);
            if ((c.Seen & bit) != 0)
            {
                return false; // duplicate claim
            }

            c.Seen |= bit;
            if (!reader.Read())
            {
                return false;
            }

            switch (bit)
            {
                case 0:
                    if (!reader.TrySkip())
                    {
                        return false;
                    }

                    break;
                case Iat:
                case Nbf:
                case Exp:
                    if (reader.TokenType != JsonTokenType.String || !reader.TryGetDateTimeOffset(out var t))
                    {
                        return false;
                    }

                    if (bit == Iat) { c.IssuedAt = t; } else if (bit == Nbf) { c.NotBefore = t; } else { c.ExpiresAt = t; }
                    break;
                case Scp:
                    if (!ReadScopes(ref reader, out c.Scopes))
                    {
                        return false;
                    }

                    break;
                default:
                    if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.ValueSpan.IsEmpty)
                    {
                        return false;
                    }

                    Assign(ref c, bit, reader.ValueSpan);
                    break;
            }
        }

        return false;
    }

    private static bool ReadScopes(ref Utf8JsonReader reader, out TokenScopes scopes)
    {
        scopes = TokenScopes.None;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return false;
        }

        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndArray)
            {
                return scopes != TokenScopes.None;
            }

            if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped)
            {
                return false;
            }

            var s = TokenScopeNames.FromUtf8(reader.ValueSpan);
            if (s == TokenScopes.None || (scopes & s) != 0)
            {
                return false; // unknown or repeated scope
            }

            scopes |= s;
        }

        return false;
    }

    private static void Assign(ref RawClaims c, int bit, ReadOnlySpan<byte> value)
    {
        switch (bit)
        {
            case Iss: c.Issuer = value; break;
            case Sub: c.Subject = value; break;
            case Aud: c.Audience = value; break;
            case Kind: c.Kind = value; break;
            case Vm: c.Vm = value; break;
            case Prj: c.Project = value; break;
            case Jti: c.TokenId = value; break;
            case Wal: c.Wallet = value; break;
            case Rol: c.Role = value; break;
            case Vol: c.Volume = value; break;
            case Mov: c.Move = value; break;
        }
    }

    private static int Bit(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when name.SequenceEqual("vm"u8) => Vm,
        3 => name switch
        {
            _ when name.SequenceEqual("iss"u8) => Iss,
            _ when name.SequenceEqual("sub"u8) => Sub,
            _ when name.SequenceEqual("aud"u8) => Aud,
            _ when name.SequenceEqual("prj"u8) => Prj,
            _ when name.SequenceEqual("scp"u8) => Scp,
            _ when name.SequenceEqual("iat"u8) => Iat,
            _ when name.SequenceEqual("nbf"u8) => Nbf,
            _ when name.SequenceEqual("exp"u8) => Exp,
            _ when name.SequenceEqual("jti"u8) => Jti,
            _ when name.SequenceEqual("wal"u8) => Wal,
            _ when name.SequenceEqual("rol"u8) => Rol,
            _ when name.SequenceEqual("vol"u8) => Vol,
            _ when name.SequenceEqual("mov"u8) => Mov,
            _ => 0,
        },
        4 when name.SequenceEqual("kind"u8) => Kind,
        _ => 0,
    };
}
