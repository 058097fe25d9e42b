using System.Globalization;
using System.Text.RegularExpressions;

namespace DeCloud.Core.Security.Siwe;

/// <summary>The character classes and productions of the EIP-4361 ABNF (which borrows RFC 3986 and RFC 3339).</summary>
internal static partial class SiweGrammar
{
    public static bool IsUnreserved(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~';

    public static bool IsSubDelim(char c) => c is '!' or '$' or '&' or '\'' or '(' or ')' or '*' or '+' or ',' or ';' or '=';

    public static bool IsGenDelim(char c) => c is ':' or '/' or '?' or '#' or '[' or ']' or '@';

    /// <summary>statement = *( reserved / unreserved / " " ).</summary>
    public static bool IsStatement(string s)
    {
        foreach (var c in s)
        {
            if (!(IsUnreserved(c) || IsSubDelim(c) || IsGenDelim(c) || c == ' '))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).</summary>
    public static bool IsScheme(ReadOnlySpan<char> s)
    {
        if (s.IsEmpty || !char.IsAsciiLetter(s[0]))
        {
            return false;
        }

        foreach (var c in s[1..])
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>nonce = 8*( ALPHA / DIGIT ) (we also cap it at 128).</summary>
    public static bool IsNonce(string s)
    {
        if (s.Length is < 8 or > 128)
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!char.IsAsciiLetterOrDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>request-id = *pchar.</summary>
    public static bool IsRequestId(string s) => IsPcharRun(s, extra: static _ => false);

    /// <summary>authority = [ userinfo "@" ] host [ ":" port ] with a non-empty host.</summary>
    public static bool IsAuthority(ReadOnlySpan<char> s, bool allowEmptyHost = false)
    {
        var at = s.LastIndexOf('@');
        if (at >= 0)
        {
            if (!IsPcharRun(s[..at], extra: static c => c == ':', allowAt: false))
            {
                return false;
            }

            s = s[(at + 1)..];
        }

        ReadOnlySpan<char> host;
        ReadOnlySpan<char> port = default;
        if (s.StartsWith('['))
        {
            var close = s.IndexOf(']');
            if (close < 0)
            {
                return false;
            }

            var literal = s[1..close];
            if (literal.IsEmpty || !literal.Contains(':'))
            {
                return false;
            }

            foreach (var c in literal)
            {
                if (!(char.IsAsciiHexDigit(c) || c is ':' or '.'))
                {
                    return false;
                }
            }

            var after = s[(close + 1)..];
            if (!after.IsEmpty)
            {
                if (after[0] != ':')
                {
                    return false;
                }

                port = after[1..];
            }

            host = s[..(close + 1)];
        }
        else
        {
            var colon = s.LastIndexOf(':');
            host = colon >= 0 ? s[..colon] : s;
            if (colon >= 0)
            {
                port = s[(colon + 1)..];
            }

            if (!IsPcharRun(host, extra: static _ => false, allowAt: false, allowColon: false))
            {
                return false;
            }
        }

        foreach (var c in port)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return allowEmptyHost || !host.IsEmpty;
    }

    /// <summary>URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ] (RFC 3986, absolute).</summary>
    public static bool IsUri(string s)
    {
        var colon = s.IndexOf(':');
        if (colon <= 0 || !IsScheme(s.AsSpan(0, colon)))
        {
            return false;
        }

        var rest = s.AsSpan(colon + 1);
        var hash = rest.IndexOf('#');
        if (hash >= 0 && (rest[(hash + 1)..].Contains('#') || !IsQueryOrFragment(rest[(hash + 1)..])))
        {
            return false;
        }

        var beforeFragment = hash >= 0 ? rest[..hash] : rest;
        var question = beforeFragment.IndexOf('?');
        if (question >= 0 && !IsQueryOrFragment(beforeFragment[(question + 1)..]))
        {
            return false;
        }

        var hier = question >= 0 ? beforeFragment[..question] : beforeFragment;
        if (hier.StartsWith("//"))
        {
            var afterSlashes = hier[2..];
            var slash = afterSlashes.IndexOf('/');
            var authority = slash >= 0 ? afterSlashes[..slash] : afterSlashes;
            if (!IsAuthority(authority, allowEmptyHost: true))
            {
                return false;
            }

            hier = slash >= 0 ? afterSlashes[slash..] : default;
        }

        return IsPcharRun(hier, extra: static c => c == '/');
    }

    /// <summary>date-time per RFC 3339 (an offset is required), parsed into an instant.</summary>
    public static bool TryParseDateTime(string s, out DateTimeOffset value)
    {
        value = default;
        return DateTimeRegex().IsMatch(s)
            && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out value);
    }

    /// <summary>The shortest RFC 3339 form of an instant in UTC: seconds, or milliseconds when it has any.</summary>
    public static string FormatDateTime(DateTimeOffset value)
    {
        var utc = value.ToUniversalTime();
        return utc.Millisecond == 0 && utc.Ticks % TimeSpan.TicksPerMillisecond == 0
            ? utc.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'Z'", CultureInfo.InvariantCulture)
            : utc.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", CultureInfo.InvariantCulture);
    }

    private static bool IsQueryOrFragment(ReadOnlySpan<char> s) => IsPcharRun(s, extra: static c => c is '/' or '?');

    // *( unreserved / pct-encoded / sub-delims / ":" / "@" / extra )
    private static bool IsPcharRun(ReadOnlySpan<char> s, Func<char, bool> extra, bool allowAt = true, bool allowColon = true)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '%')
            {
                if (i + 2 >= s.Length || !char.IsAsciiHexDigit(s[i + 1]) || !char.IsAsciiHexDigit(s[i + 2]))
                {
                    return false;
                }

                i += 2;
                continue;
            }

            if (!(IsUnreserved(c) || IsSubDelim(c) || (allowColon && c == ':') || (allowAt && c == '@') || extra(c)))
            {
                return false;
            }
        }

        return true;
    }

    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?(Z|[+-][0-9]{2}:[0-9]{2})$", RegexOptions.CultureInvariant)]
    private static partial Regex DateTimeRegex();
}
