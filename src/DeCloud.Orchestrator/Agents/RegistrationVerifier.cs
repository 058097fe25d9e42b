using System.Collections.Concurrent;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using Nethereum.Signer;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// Checks a <see cref="Register"/> message: well-formed fields, a node id derived from machine id and
/// operator wallet, an issue time within the allowed skew, an unused nonce, and an EIP-191 signature by
/// the operator wallet over <see cref="RegistrationText"/>.
/// </summary>
internal sealed class RegistrationVerifier(TimeProvider time, TimeSpan clockSkew)
{
    private readonly ConcurrentDictionary<string, long> _seenNonces = new(StringComparer.Ordinal);
    private readonly EthereumMessageSigner _signer = new();

    /// <summary>The verified registration, or an error naming the bad field.</summary>
    public (NodeRecord? Node, string? Error) Verify(Register r)
    {
        if (!WalletAddress.TryParse(r.OperatorWallet, out var wallet, out var walletError))
        {
            return (null, $"operator_wallet: {walletError}");
        }

        if (string.IsNullOrWhiteSpace(r.MachineId) || r.MachineId.Length > 256)
        {
            return (null, "machine_id must be 1-256 characters.");
        }

        if (!NodeId.TryParse(r.NodeId, null, out var nodeId) || nodeId != NodeId.FromMachine(r.MachineId, wallet))
        {
            return (null, $"node_id '{Cut(r.NodeId)}' is not SHA-256(machine_id + operator_wallet).");
        }

        if (r.Nonce.Length is < 16 or > 64)
        {
            return (null, "nonce must be 16-64 characters.");
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        if (Math.Abs(now - r.IssuedAtUnixMs) > clockSkew.TotalMilliseconds)
        {
            return (null, $"issued_at_unix_ms {r.IssuedAtUnixMs} is more than {clockSkew} away from the orchestrator's clock ({now}).");
        }

        if (r.Capacity is null)
        {
            return (null, "capacity is missing.");
        }

        Resources capacity;
        string region;
        IReadOnlySet<string> tags;
        string arch;
        try
        {
            var c = r.Capacity;
            capacity = new Resources(c.ComputePoints, c.MemoryMib, c.StorageGib, c.Gpus, string.IsNullOrEmpty(c.GpuModel) ? null : c.GpuModel);
            capacity.ValidateCapacity();
            region = Labels.Region(string.IsNullOrEmpty(r.Region) ? "default" : r.Region);
            tags = Labels.Tags(r.Tags);
            arch = CpuArchitectures.Parse(string.IsNullOrEmpty(r.Architecture) ? "x86_64" : r.Architecture).ToName();
        }
        catch (DeCloudValidationException ex)
        {
            return (null, ex.Message);
        }

        string recovered;
        try
        {
            recovered = _signer.EncodeUTF8AndEcRecover(RegistrationText.For(r), r.Signature);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            return (null, $"signature is not a 65-byte hex signature: {ex.Message}");
        }

        if (!WalletAddress.TryParse(recovered, out var signer) || signer != wallet)
        {
            return (null, "signature was not made by operator_wallet over the registration text.");
        }

        // A nonce is accepted once within the skew window (replay protection).
        var cutoff = now - (long)(2 * clockSkew.TotalMilliseconds);
        foreach (var kv in _seenNonces)
        {
            if (kv.Value < cutoff)
            {
                _seenNonces.TryRemove(kv);
            }
        }

        if (!_seenNonces.TryAdd(r.Nonce, now))
        {
            return (null, "nonce was already used; sign a fresh registration.");
        }

        var at = time.GetUtcNow();
        return (new NodeRecord(nodeId, wallet, r.MachineId.Trim(), region, [.. tags], arch, r.BehindNat, r.PublicHost ?? string.Empty,
            r.RelayCapable, r.RelayEndpoint ?? string.Empty, capacity, default, true, at, at, null), null);
    }

    private static string Cut(string s) => s.Length <= 80 ? s : s[..80] + "...";
}
