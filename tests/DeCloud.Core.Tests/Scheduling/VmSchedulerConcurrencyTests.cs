using System.Collections.Concurrent;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Testing;

namespace DeCloud.Core.Tests.Scheduling;

public sealed class VmSchedulerConcurrencyTests
{
    /// <summary>
    /// Eight callers share one scheduler: 500,000 placements and 500,000 releases in total, each caller keeping
    /// a window of live placements. Then every node's allocation must equal the sum of the placements the
    /// callers recorded on it, and no node is overcommitted.
    /// </summary>
    [Fact]
    public async Task PlaceAndRelease_ManyParallelCallers_InventoryMatchesRecordedPlacementsNodeByNode()
    {
        const int callers = 8;
        const int placementsPerCaller = 62_500;
        var rng = new Random(11);
        var inventory = new NodeInventory();
        for (var i = 0; i < 500; i++)
        {
            inventory.Upsert(Fleets.Node(rng, i) with { IsOnline = true });
        }

        var scheduler = new VmScheduler(inventory);
        var recorded = new ConcurrentDictionary<ReservationId, (NodeId Node, ResourceAmounts Amounts)>();
        var placed = 0L;
        var released = 0L;

        var tasks = Enumerable.Range(0, callers).Select(c => Task.Run(() =>
        {
            var local = new Random(c);
            var requests = Enumerable.Range(0, 32).Select(_ => new PlacementRequest
            {
                VmId = VmId.New(),
                Resources = new Resources(local.Next(1, 4), local.Next(1, 5) * 512L, local.Next(1, 20)),
                QualityTier = (QualityTier)local.Next(4),
                Region = local.Next(2) == 0 ? Fleets.Regions[local.Next(3)] : null,
            }).ToArray();
            var window = new ReservationId[64];
            var done = 0;
            for (var i = 0; done < placementsPerCaller; i++)
            {
                var slot = i % window.Length;
                if (!window[slot].IsEmpty)
                {
                    Assert.True(recorded.TryRemove(window[slot], out _));
                    Assert.True(scheduler.Release(window[slot]));
                    Interlocked.Increment(ref released);
                    window[slot] = default;
                }

                var request = requests[i % requests.Length];
                var r = scheduler.Place(request);
                if (r.Succeeded)
                {
                    Assert.True(recorded.TryAdd(r.Reservation, (r.Node, ResourceAmounts.Of(request.Resources, request.QualityTier))));
                    window[slot] = r.Reservation;
                    done++;
                    Interlocked.Increment(ref placed);
                }
            }
        })).ToArray();

        await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(3), "the parallel callers");

        Assert.Equal(callers * (long)placementsPerCaller, Interlocked.Read(ref placed));
        Assert.True(placed + released >= 990_000, $"{placed} placements and {released} releases");
        var expected = recorded.Values.GroupBy(x => x.Node).ToDictionary(g => g.Key, g => g.Aggregate(default(ResourceAmounts), (a, x) => a + x.Amounts));
        foreach (var node in inventory.GetNodeIds())
        {
            var usage = inventory.GetUsage(node);
            Assert.Equal(expected.GetValueOrDefault(node), usage.Allocated);
            Assert.Equal(default, usage.Held);
            Assert.Equal(usage.Capacity, usage.Free + usage.Allocated);
            Assert.True(usage.Free.CpuTwelfths >= 0 && usage.Free.MemoryMiB >= 0 && usage.Free.StorageGiB >= 0, $"node {node} is overcommitted: {usage}");
            Assert.Equal(inventory.GetReservations(node).Count, usage.Reservations);
        }
    }
}
