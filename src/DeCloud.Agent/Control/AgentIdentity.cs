using System.Security.Cryptography;
using DeCloud.Core.Model;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Options;
using Nethereum.Signer;

namespace DeCloud.Agent.Control;

/// <summary>The node's identity: operator wallet key, machine id, node id; builds signed registrations.</summary>
internal sealed class AgentIdentity
{
    private readonly EthECKey _key;
    private readonly EthereumMessageSigner _signer = new();

    public AgentIdentity(IOptions<AgentOptions> options)
    {
        var o = options.Value;
        var hex = (o.WalletPrivateKey ?? ReadKeyFile(o.WalletKeyFile!)).Trim();
        if (hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            hex = hex[2..];
        }

        if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new InvalidOperationException($"{nameof(AgentOptions.WalletKeyFile)}: the wallet key must be 64 hex characters (a secp256k1 private key).");
        }

        _key = new EthECKey(hex);
        Wallet = WalletAddress.Parse(_key.GetPublicAddress());
        MachineId = string.IsNullOrWhiteSpace(o.MachineId) ? ReadMachineId() : o.MachineId.Trim();
        NodeId = NodeId.FromMachine(MachineId, Wallet);
    }

    public WalletAddress Wallet { get; }

    public string MachineId { get; }

    public NodeId NodeId { get; }

    /// <summary>A fresh, signed registration.</summary>
    public Register CreateRegister(AgentOptions o, Capacity capacity, AgentHardware hardware, ulong lastExecutedSequence, string relayEndpoint, DateTimeOffset now)
    {
        var r = new Register
        {
            NodeId = NodeId.Value,
            OperatorWallet = Wallet.ToString(),
            MachineId = MachineId,
            IssuedAtUnixMs = now.ToUnixTimeMilliseconds(),
            Nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            Capacity = capacity,
            Region = o.Region,
            Architecture = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "aarch64" : "x86_64",
            BehindNat = o.BehindNat,
            PublicHost = o.BehindNat ? string.Empty : o.PublicHost,
            AgentVersion = typeof(AgentIdentity).Assembly.GetName().Version?.ToString() ?? "0",
            LastExecutedSequence = lastExecutedSequence,
            RelayCapable = o.RelayCapable,
            RelayEndpoint = o.RelayCapable ? relayEndpoint : string.Empty,
            CpuCores = hardware.CpuCores,
            CpuModel = hardware.CpuModel,
            BenchmarkScore = hardware.BenchmarkScore,
            PublicEndpoint = o.BehindNat ? string.Empty : PublicEndpoint(o.PublicHost, o.PublicPort),
        };
        if (o.Pricing.IsSet)
        {
            r.Pricing = new RegisterPricing
            {
                ComputePointHour = AgentPricingOptions.Text(o.Pricing.ComputePointHour),
                MemoryGibHour = AgentPricingOptions.Text(o.Pricing.MemoryGiBHour),
                StorageGibHour = AgentPricingOptions.Text(o.Pricing.StorageGiBHour),
                GpuHour = AgentPricingOptions.Text(o.Pricing.GpuHour),
            };
        }

        r.Tags.Add(o.Tags);
        r.Signature = _signer.EncodeUTF8AndSign(RegistrationText.For(r), _key);
        return r;
    }

    /// <summary><c>host:port</c>, with an IPv6 host in brackets.</summary>
    internal static string PublicEndpoint(string host, int port) =>
        (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]" : host) + ":" + port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An EIP-191 <c>personal_sign</c> of <paramref name="text"/> by the operator wallet (the relay-token proof of possession).</summary>
    public string SignText(string text) => _signer.EncodeUTF8AndSign(text, _key);

    private static string ReadKeyFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"{nameof(AgentOptions.WalletKeyFile)} '{path}' cannot be read: {ex.Message}", ex);
        }
    }

    private static string ReadMachineId()
    {
        foreach (var p in new[] { "/etc/machine-id", "/var/lib/dbus/machine-id" })
        {
            if (File.Exists(p))
            {
                var id = File.ReadAllText(p).Trim();
                if (id.Length > 0)
                {
                    return id;
                }
            }
        }

        throw new InvalidOperationException($"{nameof(AgentOptions.MachineId)} is not set and /etc/machine-id is missing.");
    }
}
