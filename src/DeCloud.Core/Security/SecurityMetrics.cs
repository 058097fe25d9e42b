using System.Diagnostics.Metrics;

namespace DeCloud.Core.Security;

/// <summary>Counters of the security component (meter <c>DeCloud.Core.Security</c>).</summary>
internal static class SecurityMetrics
{
    public const string MeterName = "DeCloud.Core.Security";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> Validations = Meter.CreateCounter<long>(
        "decloud.security.token.validations", "{token}", "Token validations, tagged with the resulting status.");

    private static readonly Counter<long> Decisions = Meter.CreateCounter<long>(
        "decloud.security.authorization.decisions", "{decision}", "Host-side authorization decisions, tagged with outcome and source.");

    private static readonly Counter<long> SignIns = Meter.CreateCounter<long>(
        "decloud.security.siwe.signins", "{signin}", "Sign-In with Ethereum attempts, tagged with the result.");

    private static readonly Counter<long> AuditDropped = Meter.CreateCounter<long>(
        "decloud.security.audit.dropped", "{entry}", "Audit entries dropped because the durable audit queue was full.");

    public static void TokenValidated(TokenStatus status)
    {
        if (Validations.Enabled)
        {
            Validations.Add(1, new KeyValuePair<string, object?>("status", TokenStatusName(status)));
        }
    }

    public static void Decided(AuthorizationOutcome outcome, string source)
    {
        if (Decisions.Enabled)
        {
            Decisions.Add(1, new KeyValuePair<string, object?>("outcome", outcome == AuthorizationOutcome.Allow ? "allow" : "deny"),
                new KeyValuePair<string, object?>("source", source));
        }
    }

    public static void SignIn(string result)
    {
        if (SignIns.Enabled)
        {
            SignIns.Add(1, new KeyValuePair<string, object?>("result", result));
        }
    }

    public static void Dropped() => AuditDropped.Add(1);

    private static string TokenStatusName(TokenStatus status) => status switch
    {
        TokenStatus.Valid => "valid",
        TokenStatus.BadSignature => "bad_signature",
        TokenStatus.Expired => "expired",
        TokenStatus.Revoked or TokenStatus.SubjectRevoked => "revoked",
        TokenStatus.UnknownKey or TokenStatus.RetiredKey => "key",
        TokenStatus.NotGranted => "not_granted",
        _ => "invalid",
    };
}
