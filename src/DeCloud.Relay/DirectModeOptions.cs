using System.Net;

namespace DeCloud.Relay;

/// <summary>Settings of a <see cref="DirectDnatForwarder"/> (nodes with a public address). Validated at start.</summary>
public sealed class DirectModeOptions
{
    /// <summary>Prefix of the iptables chains this forwarder owns (<c>PREFIX-DNAT</c>, <c>PREFIX-FWD</c>). Default "DCR".</summary>
    public string ChainPrefix { get; set; } = "DCR";

    /// <summary>The iptables command and leading arguments. Default <c>iptables -w</c>.</summary>
    public IList<string> IptablesCommand { get; } = new List<string> { "iptables", "-w" };

    /// <summary>Only traffic to this address is forwarded. Null: any local address.</summary>
    public IPAddress? PublicAddress { get; set; }

    /// <summary>The host reported in <see cref="RelayMapping.PublicHost"/>. Default: <see cref="PublicAddress"/> or "0.0.0.0".</summary>
    public string? PublicHost { get; set; }

    /// <summary>First public port handed out. Default 40000.</summary>
    public int PortRangeStart { get; set; } = 40000;

    /// <summary>Last public port handed out. Default 65535.</summary>
    public int PortRangeEnd { get; set; } = 65535;

    /// <summary>Ports inside the range that are never handed out.</summary>
    public ICollection<int> ExcludedPorts { get; } = new List<int>();

    /// <summary>SQLite file keeping the mappings, re-applied at start. Null keeps them in memory.</summary>
    public string? DatabasePath { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid property.</summary>
    public void Validate()
    {
        RelayServerOptions.Check(!string.IsNullOrEmpty(ChainPrefix) && ChainPrefix.Length <= 20 && ChainPrefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'),
            nameof(ChainPrefix), $"is '{ChainPrefix}'; use 1-20 letters, digits, '_' or '-'");
        RelayServerOptions.Check(IptablesCommand.Count > 0 && !string.IsNullOrEmpty(IptablesCommand[0]), nameof(IptablesCommand), "must name the iptables executable");
        RelayServerOptions.Check(PublicAddress is null || PublicAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork, nameof(PublicAddress), "must be an IPv4 address (iptables)");
        RelayServerOptions.Check(PortRangeStart is >= 1 and <= 65535, nameof(PortRangeStart), $"is {PortRangeStart}; use 1-65535");
        RelayServerOptions.Check(PortRangeEnd is >= 1 and <= 65535 && PortRangeEnd >= PortRangeStart, nameof(PortRangeEnd), $"is {PortRangeEnd}; use {PortRangeStart}-65535");
    }
}
