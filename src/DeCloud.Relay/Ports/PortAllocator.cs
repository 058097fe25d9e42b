namespace DeCloud.Relay.Ports;

/// <summary>Why an allocation failed.</summary>
internal enum AllocationStatus
{
    Allocated,
    QuotaExceeded,
    RangeExhausted,
    PortTaken,
}

/// <summary>
/// Hands out public ports from a range, with exclusions, separate TCP and UDP spaces and a per-node
/// quota. A port is never handed out twice; a port the OS reported busy is skipped until released.
/// Thread-safe.
/// </summary>
internal sealed class PortAllocator
{
    private readonly Lock _lock = new();
    private readonly HashSet<int> _excluded;
    private readonly Dictionary<int, string> _tcp = [];
    private readonly Dictionary<int, string> _udp = [];
    private readonly HashSet<(bool Udp, int Port)> _busy = [];
    private readonly Dictionary<string, int> _perNode = new(StringComparer.Ordinal);
    private int _cursor;

    public PortAllocator(int first, int last, IEnumerable<int> excluded, int maxPortsPerNode)
    {
        if (first < 1 || last > 65535 || first > last)
        {
            throw new ArgumentOutOfRangeException(nameof(first), $"The port range {first}-{last} is invalid; use 1 <= first <= last <= 65535.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPortsPerNode);
        First = first;
        Last = last;
        _excluded = [.. excluded];
        MaxPortsPerNode = maxPortsPerNode;
        _cursor = first;
    }

    public int First { get; }

    public int Last { get; }

    public int MaxPortsPerNode { get; }

    /// <summary>How many ports <paramref name="nodeId"/> holds (a TCP+UDP mapping counts once).</summary>
    public int CountFor(string nodeId)
    {
        lock (_lock)
        {
            return _perNode.GetValueOrDefault(nodeId);
        }
    }

    /// <summary>Allocates a port for <paramref name="protocol"/>: the preferred one if free, otherwise the next free one.</summary>
    public AllocationStatus TryAllocate(string nodeId, RelayProtocol protocol, int preferred, out int port)
    {
        port = 0;
        lock (_lock)
        {
            if (_perNode.GetValueOrDefault(nodeId) >= MaxPortsPerNode)
            {
                return AllocationStatus.QuotaExceeded;
            }

            if (preferred != 0 && IsFree(protocol, preferred))
            {
                port = preferred;
            }
            else
            {
                var size = Last - First + 1;
                for (var i = 0; i < size; i++)
                {
                    var candidate = First + ((_cursor - First + i) % size);
                    if (IsFree(protocol, candidate))
                    {
                        port = candidate;
                        _cursor = candidate + 1 > Last ? First : candidate + 1;
                        break;
                    }
                }

                if (port == 0)
                {
                    return AllocationStatus.RangeExhausted;
                }
            }

            Take(nodeId, protocol, port);
            return AllocationStatus.Allocated;
        }
    }

    /// <summary>Reserves a specific port (reconciling stored mappings); fails when it is outside the range, excluded or taken.</summary>
    public AllocationStatus TryReserve(string nodeId, RelayProtocol protocol, int port)
    {
        lock (_lock)
        {
            if (!IsFree(protocol, port))
            {
                return AllocationStatus.PortTaken;
            }

            if (_perNode.GetValueOrDefault(nodeId) >= MaxPortsPerNode)
            {
                return AllocationStatus.QuotaExceeded;
            }

            Take(nodeId, protocol, port);
            return AllocationStatus.Allocated;
        }
    }

    /// <summary>Releases a port held by <paramref name="nodeId"/>; other holders' ports are left alone.</summary>
    public void Release(string nodeId, RelayProtocol protocol, int port)
    {
        lock (_lock)
        {
            var released = false;
            if (protocol != RelayProtocol.Udp && _tcp.TryGetValue(port, out var tcpOwner) && tcpOwner == nodeId)
            {
                released |= _tcp.Remove(port);
            }

            if (protocol != RelayProtocol.Tcp && _udp.TryGetValue(port, out var udpOwner) && udpOwner == nodeId)
            {
                released |= _udp.Remove(port);
            }

            if (released && _perNode.TryGetValue(nodeId, out var count))
            {
                if (count <= 1)
                {
                    _perNode.Remove(nodeId);
                }
                else
                {
                    _perNode[nodeId] = count - 1;
                }
            }
        }
    }

    /// <summary>The OS said the port is in use by someone else: release it and skip it from now on.</summary>
    public void MarkBusy(string nodeId, RelayProtocol protocol, int port)
    {
        Release(nodeId, protocol, port);
        lock (_lock)
        {
            if (protocol != RelayProtocol.Udp)
            {
                _busy.Add((false, port));
            }

            if (protocol != RelayProtocol.Tcp)
            {
                _busy.Add((true, port));
            }
        }
    }

    private bool IsFree(RelayProtocol protocol, int port)
    {
        if (port < First || port > Last || _excluded.Contains(port))
        {
            return false;
        }

        var tcpFree = protocol == RelayProtocol.Udp || (!_tcp.ContainsKey(port) && !_busy.Contains((false, port)));
        var udpFree = protocol == RelayProtocol.Tcp || (!_udp.ContainsKey(port) && !_busy.Contains((true, port)));
        return tcpFree && udpFree;
    }

    private void Take(string nodeId, RelayProtocol protocol, int port)
    {
        if (protocol != RelayProtocol.Udp)
        {
            _tcp[port] = nodeId;
        }

        if (protocol != RelayProtocol.Tcp)
        {
            _udp[port] = nodeId;
        }

        _perNode[nodeId] = _perNode.GetValueOrDefault(nodeId) + 1;
    }
}
