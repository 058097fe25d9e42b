using System.Globalization;
using System.Text;
using DeCloud.Protocol.V1;

namespace DeCloud.Protocol;

/// <summary>
/// The exact text an operator wallet signs (EIP-191 <c>personal_sign</c>) to register a node, so the
/// agent and the orchestrator build byte-identical input. Every field that matters for trust is
/// included: node id, wallet, machine id, issue time, nonce, NAT flag, capacity, hardware, public
/// endpoint and prices.
/// </summary>
public static class RegistrationText
{
    /// <summary>The first line of every registration text; changes with the protocol version.</summary>
    public const string Header = "DeCloud node registration v2";

    /// <summary>Builds the text to sign for <paramref name="register"/> (its signature field is ignored).</summary>
    public static string For(Register register)
    {
        ArgumentNullException.ThrowIfNull(register);
        var c = register.Capacity ?? new Capacity();
        var sb = new StringBuilder(256);
        sb.Append(Header).Append('\n');
        Line(sb, "node", register.NodeId);
        Line(sb, "wallet", register.OperatorWallet.ToLowerInvariant());
        Line(sb, "machine", register.MachineId);
        Line(sb, "issued", register.IssuedAtUnixMs.ToString(CultureInfo.InvariantCulture));
        Line(sb, "nonce", register.Nonce);
        Line(sb, "nat", register.BehindNat ? "true" : "false");
        Line(sb, "relay", register.RelayCapable ? "yes " + register.RelayEndpoint : "no");
        Line(sb, "capacity", string.Create(CultureInfo.InvariantCulture,
            $"{c.ComputePoints}cp/{c.MemoryMib}MiB/{c.StorageGib}GiB/{c.Gpus}gpu"));
        Line(sb, "hardware", string.Create(CultureInfo.InvariantCulture, $"{register.CpuCores} x {register.CpuModel}, score {register.BenchmarkScore:R}"));
        Line(sb, "endpoint", register.PublicEndpoint);
        var p = register.Pricing;
        Line(sb, "pricing", p is null ? "default" : $"{p.ComputePointHour}/cp {p.MemoryGibHour}/GiB {p.StorageGibHour}/GiB-storage {p.GpuHour}/gpu");
        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string key, string value) =>
        sb.Append(key).Append(": ").Append(value.Replace('\n', ' ')).Append('\n');
}
