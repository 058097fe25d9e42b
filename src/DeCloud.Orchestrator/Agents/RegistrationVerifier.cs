using System.Collections.Concurrent;
using System.Globalization;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Security.Siwe;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// Checks a <see cref="Register"/> message: well-formed fields, a node id derived from machine id and
/// operator wallet, an issue time within the allowed skew, an unused nonce, and an EIP-191 signature by
/// the operator wallet over <see cref="RegistrationText"/>.
/// </summary>
/// <summary>A registration that passed every check: the registry's registration (its pricing is what the agent offered,
/// or zero), the offered prices, and the agent details the registry does not hold.</summary>
internal sealed record VerifiedRegistration(NodeRegistration Registration, NodePricing? OfferedPricing, AgentDetails Agent);

internal sealed class RegistrationVerifier(TimeProvider time, TimeSpan clockSkew, double baselineScorePerPoint)
{
    private readonly double _baselineScorePerPoint = baselineScorePerPoint;
    private readonly ConcurrentDictionary<string, long> _seenNonces = new(StringComparer.Ordinal);

    /// <summary>The verified registration, or an error naming the bad field.</summary>
    public (VerifiedRegistration? Node, string? Error) Verify(Register r)
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

        NodeRegistration registration;
        NodePricing? offered;
        try
        {
            var c = r.Capacity;
            var capacity = new Resources(c.ComputePoints, c.MemoryMib, c.StorageGib, c.Gpus, string.IsNullOrEmpty(c.GpuModel) ? null : c.GpuModel);
            capacity.ValidateCapacity();
            if (r.BenchmarkScore < 0 || !double.IsFinite(r.BenchmarkScore))
            {
                return (null, $"benchmark_score {r.BenchmarkScore} must be a non-negative finite number.");
            }

            // An agent that sends no score declares its compute points; the registry derives points from the score.
            var score = r.BenchmarkScore > 0 ? r.BenchmarkScore : capacity.ComputePoints * _baselineScorePerPoint;
            offered = null;
            if (r.Pricing is { } p)
            {
                var (parsed, pricingError) = ParsePricing(p);
                if (parsed is null)
                {
                    return (null, pricingError);
                }

                offered = parsed;
            }

            var gpus = capacity.Gpus > 0 ? Enumerable.Repeat(capacity.GpuModel ?? "gpu", capacity.Gpus).ToArray() : [];
            registration = new NodeRegistration(
                nodeId, wallet, new NodeHardware(r.CpuCores, r.CpuModel ?? string.Empty, score, capacity.MemoryMiB, capacity.StorageGiB, gpus),
                CpuArchitectures.Parse(string.IsNullOrEmpty(r.Architecture) ? "x86_64" : r.Architecture),
                string.IsNullOrEmpty(r.Region) ? "default" : r.Region, [.. r.Tags], null,
                offered ?? new NodePricing(0, 0, 0),
                r.BehindNat ? NodeConnectivity.BehindNat : NodeConnectivity.Public,
                r.BehindNat ? null : string.IsNullOrEmpty(r.PublicEndpoint) ? null : r.PublicEndpoint,
                string.IsNullOrEmpty(r.AgentVersion) ? "0" : r.AgentVersion).Normalize();
        }
        catch (DeCloudValidationException ex)
        {
            return (null, ex.Message);
        }

        if (!PersonalSign.TryRecoverSigner(RegistrationText.For(r), r.Signature, out var signer, out var signatureError))
        {
            return (null, $"signature is unusable: {signatureError}");
        }

        if (signer != wallet)
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

        return (new VerifiedRegistration(registration, offered, new AgentDetails(r.MachineId.Trim(), r.RelayCapable, r.RelayEndpoint ?? string.Empty)), null);
    }

    private static (NodePricing? Pricing, string? Error) ParsePricing(RegisterPricing p)
    {
        var texts = new[] { (p.ComputePointHour, "compute_point_hour"), (p.MemoryGibHour, "memory_gib_hour"), (p.StorageGibHour, "storage_gib_hour"), (p.GpuHour, "gpu_hour") };
        var rates = new decimal[texts.Length];
        for (var i = 0; i < texts.Length; i++)
        {
            var (text, field) = texts[i];
            if (string.IsNullOrEmpty(text))
            {
                continue;
            }

            if (text.Length > 32 || !decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out rates[i]))
            {
                return (null, $"pricing.{field}: '{Cut(text)}' is not a decimal USDC rate such as 0.012.");
            }
        }

        return (new NodePricing(rates[0], rates[1], rates[2], rates[3]), null);
    }

    private static string Cut(string s) => s.Length <= 80 ? s : s[..80] + "...";
}
