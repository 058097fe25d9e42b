using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace DeCloud.Core.Model;

/// <summary>
/// A node's identity: the lower-case hex SHA-256 of its machine id and its operator's wallet address,
/// so a node keeps its identity across reinstalls of the agent.
/// </summary>
public readonly record struct NodeId : ISpanParsable<NodeId>
{
    private const int HexLength = 64;
    private readonly string? _value;

    private NodeId(string value) => _value = value;

    /// <summary>The 64-character lower-case hex form.</summary>
    public string Value => _value ?? throw new InvalidOperationException("A default NodeId has no value.");

    /// <summary>True for <c>default(NodeId)</c>.</summary>
    public bool IsEmpty => _value is null;

    /// <summary>
    /// Derives the id: SHA-256 over UTF-8 of <c>machineId</c> (trimmed) followed by the wallet address
    /// in lower-case hex with its <c>0x</c> prefix.
    /// </summary>
    public static NodeId FromMachine(string machineId, WalletAddress operatorWallet)
    {
        if (string.IsNullOrWhiteSpace(machineId))
        {
            throw Validate.Fail("machineId", "must not be empty (use the contents of /etc/machine-id).");
        }

        if (operatorWallet.IsEmpty)
        {
            throw Validate.Fail("operatorWallet", "must be a wallet address.");
        }

        var input = Encoding.UTF8.GetBytes(machineId.Trim() + operatorWallet.ToLowerHex());
        return new NodeId(Convert.ToHexStringLower(SHA256.HashData(input)));
    }

    /// <summary>Parses a 64-character hex id (either case); throws <see cref="DeCloudValidationException"/>.</summary>
    public static NodeId Parse(string s) => Parse(s, null);

    /// <inheritdoc />
    public static NodeId Parse(string s, IFormatProvider? provider) =>
        TryParse(s, provider, out var id) ? id : throw Validate.Fail("nodeId", $"'{Truncate(s)}' is not a node id; expected 64 hex characters.");

    /// <inheritdoc />
    public static NodeId Parse(ReadOnlySpan<char> s, IFormatProvider? provider) =>
        TryParse(s, provider, out var id) ? id : throw Validate.Fail("nodeId", $"'{Truncate(s.ToString())}' is not a node id; expected 64 hex characters.");

    /// <inheritdoc />
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out NodeId result) =>
        TryParse(s.AsSpan(), provider, out result);

    /// <inheritdoc />
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out NodeId result)
    {
        result = default;
        if (s.Length != HexLength)
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        result = new NodeId(s.ToString().ToLowerInvariant());
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => _value ?? string.Empty;

    private static string Truncate(string? s) => s is null ? "null" : s.Length <= 80 ? s : s[..80] + "...";
}
