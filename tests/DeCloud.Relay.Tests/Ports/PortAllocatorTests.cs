using CsCheck;
using DeCloud.Relay.Ports;

namespace DeCloud.Relay.Tests.Ports;

public sealed class PortAllocatorTests
{
    private static PortAllocator CreateSut(int first = 40000, int last = 40009, int[]? excluded = null, int quota = 100) =>
        new(first, last, excluded ?? [], quota);

    [Fact]
    public void TryAllocate_Preferred_FreeAndInRange_GetsIt()
    {
        var sut = CreateSut();
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 40005, out var port));
        Assert.Equal(40005, port);
    }

    [Fact]
    public void TryAllocate_PreferredOutsideRangeOrExcluded_GetsAnotherPort()
    {
        var sut = CreateSut(excluded: [40003]);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 80, out var port));
        Assert.InRange(port, 40000, 40009);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 40003, out port));
        Assert.NotEqual(40003, port);
    }

    [Fact]
    public void TryAllocate_TcpAndUdpSpaces_AreSeparate()
    {
        var sut = CreateSut(first: 40000, last: 40000);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 0, out var tcp));
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("b", RelayProtocol.Udp, 0, out var udp));
        Assert.Equal(tcp, udp);
        Assert.Equal(AllocationStatus.RangeExhausted, sut.TryAllocate("c", RelayProtocol.Tcp, 0, out _));
        Assert.Equal(AllocationStatus.RangeExhausted, sut.TryAllocate("c", RelayProtocol.TcpAndUdp, 0, out _));
    }

    [Fact]
    public void TryAllocate_Both_NeedsThePortFreeInBothSpaces()
    {
        var sut = CreateSut(first: 40000, last: 40001);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Udp, 40000, out _));
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("b", RelayProtocol.TcpAndUdp, 0, out var port));
        Assert.Equal(40001, port);
    }

    [Fact]
    public void TryAllocate_OverQuota_RefusedUntilReleased()
    {
        var sut = CreateSut(quota: 2);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 0, out var first));
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Udp, 0, out _));
        Assert.Equal(AllocationStatus.QuotaExceeded, sut.TryAllocate("a", RelayProtocol.Tcp, 0, out _));
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("b", RelayProtocol.Tcp, 0, out _));
        sut.Release("a", RelayProtocol.Tcp, first);
        Assert.Equal(1, sut.CountFor("a"));
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, first, out var again));
        Assert.Equal(first, again);
    }

    [Fact]
    public void Release_ByAnotherNode_DoesNotFreeThePort()
    {
        var sut = CreateSut(first: 40000, last: 40000);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 0, out var port));
        sut.Release("b", RelayProtocol.Tcp, port);
        Assert.Equal(AllocationStatus.RangeExhausted, sut.TryAllocate("b", RelayProtocol.Tcp, 0, out _));
    }

    [Fact]
    public void MarkBusy_PortIsNeverHandedOutAgain()
    {
        var sut = CreateSut(first: 40000, last: 40001);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 40000, out _));
        sut.MarkBusy("a", RelayProtocol.Tcp, 40000);
        Assert.Equal(AllocationStatus.Allocated, sut.TryAllocate("a", RelayProtocol.Tcp, 40000, out var port));
        Assert.Equal(40001, port);
        Assert.Equal(AllocationStatus.RangeExhausted, sut.TryAllocate("a", RelayProtocol.Tcp, 0, out _));
    }

    [Fact]
    public void TryReserve_TakenOrOutside_Refused()
    {
        var sut = CreateSut();
        Assert.Equal(AllocationStatus.Allocated, sut.TryReserve("a", RelayProtocol.Tcp, 40001));
        Assert.Equal(AllocationStatus.PortTaken, sut.TryReserve("b", RelayProtocol.TcpAndUdp, 40001));
        Assert.Equal(AllocationStatus.PortTaken, sut.TryReserve("b", RelayProtocol.Tcp, 39999));
    }

    [Fact]
    public void Constructor_InvalidRange_ThrowsNamingTheRange()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new PortAllocator(50000, 40000, [], 1));
        Assert.Contains("50000-40000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryAllocate_RandomOperations_NeverHandsOutAPortTwiceAndRespectsQuota()
    {
        var op = Gen.Select(Gen.Int[0, 3], Gen.Int[0, 2], Gen.Int[1, 3], Gen.Int[39998, 40012]);
        op.Array[1, 80].Sample(ops =>
        {
            var sut = CreateSut(excluded: [40004], quota: 4);
            var held = new Dictionary<(bool Udp, int Port), string>();
            var nodes = new[] { "a", "b", "c" };
            foreach (var (kind, nodeIndex, protocol, preferred) in ops)
            {
                var node = nodes[nodeIndex];
                var proto = (RelayProtocol)protocol;
                if (kind < 3)
                {
                    if (sut.TryAllocate(node, proto, preferred, out var port) == AllocationStatus.Allocated)
                    {
                        Assert.InRange(port, 40000, 40009);
                        Assert.NotEqual(40004, port);
                        if (proto != RelayProtocol.Udp)
                        {
                            Assert.True(held.TryAdd((false, port), node), $"tcp {port} handed out twice");
                        }

                        if (proto != RelayProtocol.Tcp)
                        {
                            Assert.True(held.TryAdd((true, port), node), $"udp {port} handed out twice");
                        }
                    }
                }
                else
                {
                    var mine = held.Where(h => h.Value == node).Select(h => h.Key).FirstOrDefault();
                    if (mine != default)
                    {
                        var other = (!mine.Udp, mine.Port);
                        var both = held.TryGetValue(other, out var otherOwner) && otherOwner == node;
                        var releaseProtocol = both ? RelayProtocol.TcpAndUdp : mine.Udp ? RelayProtocol.Udp : RelayProtocol.Tcp;
                        sut.Release(node, releaseProtocol, mine.Port);
                        held.Remove(mine);
                        if (both)
                        {
                            held.Remove(other);
                        }
                    }
                }

                Assert.True(sut.CountFor(node) <= 4);
            }
        }, iter: 3_000);
    }
}
