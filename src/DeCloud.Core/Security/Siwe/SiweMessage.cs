using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using DeCloud.Core.Model;

namespace DeCloud.Core.Security.Siwe;

/// <summary>
/// A Sign-In with Ethereum message (EIP-4361). <see cref="TryParse(string?, out SiweMessage?, out string)"/> follows the
/// EIP's ABNF strictly (field order, EIP-55 address, RFC 3986 URIs, RFC 3339 times, 8+ alphanumeric
/// nonce); <see cref="Build"/> writes the exact text a wallet signs.
/// </summary>
public sealed class SiweMessage
{
    /// <summary>Messages longer than this many characters are refused unparsed.</summary>
    public const int MaxLength = 16 * 1024;

    private const string Preamble = " wants you to sign in with your Ethereum account:";

    private string? _issuedAtText;
    private string? _expirationText;
    private string? _notBeforeText;

    /// <summary>The optional URI scheme before the domain (e.g. <c>https</c>).</summary>
    public string? Scheme { get; init; }

    /// <summary>The RFC 3986 authority asking for the sign-in.</summary>
    public required string Domain { get; init; }

    /// <summary>The signing account.</summary>
    public required WalletAddress Address { get; init; }

    /// <summary>A human-readable assertion (one line), or null.</summary>
    public string? Statement { get; init; }

    /// <summary>The RFC 3986 URI the sign-in is for.</summary>
    public required string Uri { get; init; }

    /// <summary>Always <c>1</c>.</summary>
    public string Version { get; init; } = "1";

    /// <summary>The EIP-155 chain id.</summary>
    public required long ChainId { get; init; }

    /// <summary>The server-issued nonce (at least 8 letters or digits).</summary>
    public required string Nonce { get; init; }

    /// <summary>When the message was made.</summary>
    public required DateTimeOffset IssuedAt { get; init; }

    /// <summary>When the sign-in stops being valid, or null.</summary>
    public DateTimeOffset? ExpirationTime { get; init; }

    /// <summary>When the sign-in becomes valid, or null.</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>A system-specific request id, or null.</summary>
    public string? RequestId { get; init; }

    /// <summary>Resources (RFC 3986 URIs) the sign-in covers.</summary>
    public IReadOnlyList<string> Resources { get; init; } = [];

    /// <summary>Parses a message; throws <see cref="DeCloudValidationException"/> naming the first offending field.</summary>
    public static SiweMessage Parse(string message) =>
        TryParse(message, out var m, out var error) ? m : throw Validate.Fail("siweMessage", error);

    /// <summary>Parses a message, with the reason when it is not valid EIP-4361.</summary>
    public static bool TryParse([NotNullWhen(true)] string? message, [NotNullWhen(true)] out SiweMessage? result, out string error)
    {
        result = null;
        if (message is null || message.Length == 0)
        {
            error = "the message is empty.";
            return false;
        }

        if (message.Length > MaxLength)
        {
            error = $"the message is {message.Length} characters long; at most {MaxLength} are accepted.";
            return false;
        }

        if (message.Contains('\r'))
        {
            error = "lines must end with LF only; the message contains CR.";
            return false;
        }

        var lines = message.Split('\n');
        var p = new LineCursor(lines);
        error = string.Empty;

        // [ scheme "://" ] domain " wants you to sign in with your Ethereum account:"
        var first = lines[0];
        if (!first.EndsWith(Preamble, StringComparison.Ordinal))
        {
            error = "line 1 must end with ' wants you to sign in with your Ethereum account:'.";
            return false;
        }

        var origin = first[..^Preamble.Length];
        string? scheme = null;
        var sep = origin.IndexOf("://", StringComparison.Ordinal);
        if (sep >= 0)
        {
            scheme = origin[..sep];
            origin = origin[(sep + 3)..];
            if (!SiweGrammar.IsScheme(scheme))
            {
                error = $"scheme '{scheme}' is not an RFC 3986 scheme.";
                return false;
            }
        }

        if (!SiweGrammar.IsAuthority(origin))
        {
            error = origin.Length == 0 ? "domain is missing." : $"domain '{origin}' is not an RFC 3986 authority.";
            return false;
        }

        p.Next();
        var addressText = p.Take();
        if (string.IsNullOrEmpty(addressText))
        {
            error = "address is missing.";
            return false;
        }

        if (!WalletAddress.TryParse(addressText, out var address, out var addressError))
        {
            error = $"address: {addressError}";
            return false;
        }

        if (!string.Equals(address.ToChecksumHex(), addressText, StringComparison.Ordinal))
        {
            error = $"address '{addressText}' is not in its EIP-55 checksummed form {address.ToChecksumHex()}.";
            return false;
        }

        if (p.Take() != string.Empty)
        {
            error = "a blank line must follow the address.";
            return false;
        }

        string? statement = null;
        var line = p.Take();
        if (line is null)
        {
            error = "the message ends after the address.";
            return false;
        }

        if (line.Length > 0)
        {
            if (!SiweGrammar.IsStatement(line))
            {
                error = "statement contains a character outside RFC 3986 reserved/unreserved characters and space.";
                return false;
            }

            statement = line;
            if (p.Take() != string.Empty)
            {
                error = "a blank line must follow the statement (a statement is one line).";
                return false;
            }
        }

        long chainId = 0;
        if (!p.Field("URI: ", out var uri, ref error) || !Check(SiweGrammar.IsUri(uri), $"URI '{uri}' is not an RFC 3986 URI.", ref error)
            || !p.Field("Version: ", out var version, ref error) || !Check(version == "1", $"version '{version}' is not 1.", ref error)
            || !p.Field("Chain ID: ", out var chainText, ref error)
            || !Check(chainText.Length > 0 && chainText.All(char.IsAsciiDigit) && long.TryParse(chainText, NumberStyles.None, CultureInfo.InvariantCulture, out chainId),
                $"chain id '{chainText}' is not a decimal number.", ref error)
            || !p.Field("Nonce: ", out var nonce, ref error) || !Check(SiweGrammar.IsNonce(nonce), $"nonce '{nonce}' is not 8 to 128 letters or digits.", ref error)
            || !p.Field("Issued At: ", out var issuedText, ref error)
            || !Check(SiweGrammar.TryParseDateTime(issuedText, out var issuedAt), $"issued-at '{issuedText}' is not an RFC 3339 date-time.", ref error))
        {
            return false;
        }

        DateTimeOffset? expiration = null, notBefore = null;
        string? expirationText = null, notBeforeText = null, requestId = null;
        if (p.Optional("Expiration Time: ", out var expirationLine))
        {
            expirationText = expirationLine;
            if (!SiweGrammar.TryParseDateTime(expirationText, out var e))
            {
                error = $"expiration-time '{expirationText}' is not an RFC 3339 date-time.";
                return false;
            }

            expiration = e;
        }

        if (p.Optional("Not Before: ", out var notBeforeLine))
        {
            notBeforeText = notBeforeLine;
            if (!SiweGrammar.TryParseDateTime(notBeforeText, out var n))
            {
                error = $"not-before '{notBeforeText}' is not an RFC 3339 date-time.";
                return false;
            }

            notBefore = n;
        }

        if (p.Optional("Request ID: ", out var requestLine))
        {
            requestId = requestLine;
            if (!SiweGrammar.IsRequestId(requestId))
            {
                error = $"request-id '{requestId}' contains a character outside RFC 3986 pchar.";
                return false;
            }
        }

        var resources = new List<string>();
        if (p.Peek() == "Resources:")
        {
            p.Next();
            while (p.Peek() is { } r && r.StartsWith("- ", StringComparison.Ordinal))
            {
                var resource = r[2..];
                if (!SiweGrammar.IsUri(resource))
                {
                    error = $"resource '{resource}' is not an RFC 3986 URI.";
                    return false;
                }

                resources.Add(resource);
                p.Next();
            }
        }

        if (p.Peek() is { } extra)
        {
            error = $"unexpected line {p.Index + 1} '{Shorten(extra)}' (fields out of order, unknown, or a trailing newline).";
            return false;
        }

        result = new SiweMessage
        {
            Scheme = scheme,
            Domain = origin,
            Address = address,
            Statement = statement,
            Uri = uri,
            Version = version,
            ChainId = chainId,
            Nonce = nonce,
            IssuedAt = issuedAt,
            ExpirationTime = expiration,
            NotBefore = notBefore,
            RequestId = requestId,
            Resources = resources,
            _issuedAtText = issuedText,
            _expirationText = expirationText,
            _notBeforeText = notBeforeText,
        };
        return true;
    }

    /// <summary>
    /// Writes the EIP-4361 text to sign. A parsed message is reproduced exactly; times set in code are
    /// written in UTC. Throws <see cref="DeCloudValidationException"/> naming a field that breaks the grammar.
    /// </summary>
    public string Build()
    {
        if (Scheme is not null && !SiweGrammar.IsScheme(Scheme))
        {
            throw Validate.Fail(nameof(Scheme), $"'{Scheme}' is not an RFC 3986 scheme.");
        }

        Require(SiweGrammar.IsAuthority(Domain ?? string.Empty), nameof(Domain), $"'{Domain}' is not an RFC 3986 authority.");
        Require(!Address.IsEmpty, nameof(Address), "is required.");
        Require(Statement is null || (Statement.Length > 0 && SiweGrammar.IsStatement(Statement)), nameof(Statement),
            "must be one non-empty line of RFC 3986 reserved/unreserved characters and spaces.");
        Require(SiweGrammar.IsUri(Uri ?? string.Empty), nameof(Uri), $"'{Uri}' is not an RFC 3986 URI.");
        Require(Version == "1", nameof(Version), $"'{Version}' is not 1.");
        Require(ChainId >= 0, nameof(ChainId), $"{ChainId} is negative.");
        Require(SiweGrammar.IsNonce(Nonce ?? string.Empty), nameof(Nonce), $"'{Nonce}' is not 8 to 128 letters or digits.");
        Require(RequestId is null || SiweGrammar.IsRequestId(RequestId), nameof(RequestId), "contains a character outside RFC 3986 pchar.");
        foreach (var r in Resources)
        {
            Require(SiweGrammar.IsUri(r ?? string.Empty), nameof(Resources), $"'{r}' is not an RFC 3986 URI.");
        }

        var sb = new StringBuilder(256);
        if (Scheme is not null)
        {
            sb.Append(Scheme).Append("://");
        }

        sb.Append(Domain).Append(Preamble).Append('\n')
          .Append(Address.ToChecksumHex()).Append("\n\n");
        if (Statement is not null)
        {
            sb.Append(Statement).Append('\n');
        }

        sb.Append('\n')
          .Append("URI: ").Append(Uri).Append('\n')
          .Append("Version: ").Append(Version).Append('\n')
          .Append("Chain ID: ").Append(ChainId.ToString(CultureInfo.InvariantCulture)).Append('\n')
          .Append("Nonce: ").Append(Nonce).Append('\n')
          .Append("Issued At: ").Append(Text(_issuedAtText, IssuedAt));
        if (ExpirationTime is { } exp)
        {
            sb.Append("\nExpiration Time: ").Append(Text(_expirationText, exp));
        }

        if (NotBefore is { } nbf)
        {
            sb.Append("\nNot Before: ").Append(Text(_notBeforeText, nbf));
        }

        if (RequestId is not null)
        {
            sb.Append("\nRequest ID: ").Append(RequestId);
        }

        if (Resources.Count > 0)
        {
            sb.Append("\nResources:");
            foreach (var r in Resources)
            {
                sb.Append("\n- ").Append(r);
            }
        }

        return sb.ToString();
    }

    private static string Text(string? parsed, DateTimeOffset value) => parsed ?? SiweGrammar.FormatDateTime(value);

    private static void Require(bool ok, string field, string message)
    {
        if (!ok)
        {
            throw Validate.Fail(field, message);
        }
    }

    private static bool Check(bool ok, string message, ref string error)
    {
        if (!ok)
        {
            error = message;
        }

        return ok;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";

    private sealed class LineCursor(string[] lines)
    {
        public int Index { get; private set; }

        public void Next() => Index++;

        public string? Peek() => Index < lines.Length ? lines[Index] : null;

        public string? Take() => Index < lines.Length ? lines[Index++] : null;

        public bool Field(string prefix, out string value, ref string error)
        {
            var line = Peek();
            if (line is null || !line.StartsWith(prefix, StringComparison.Ordinal))
            {
                value = string.Empty;
                error = $"expected '{prefix.TrimEnd()}' on line {Index + 1}" + (line is null ? " but the message ended." : $" but found '{Shorten(line)}'.");
                return false;
            }

            value = line[prefix.Length..];
            Index++;
            return true;
        }

        public bool Optional(string prefix, out string value)
        {
            var line = Peek();
            if (line is not null && line.StartsWith(prefix, StringComparison.Ordinal))
            {
                value = line[prefix.Length..];
                Index++;
                return true;
            }

            value = string.Empty;
            return false;
        }
    }
}
