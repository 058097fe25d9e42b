using CsCheck;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Scheduling;

public sealed class VmSchedulerOracleTests
{
    private static (NodeInventory Inventory, VmScheduler Scheduler, Oracle Oracle, List<NodeSnapshot> Nodes) CreateSut(Random rng, int nodes, SchedulerOptions? options = null)
    {
        var inventory = new NodeInventory(new FakeTimeProvider());
        var scheduler = new VmScheduler(inventory, options);
        var oracle = new Oracle();
        var list = new List<NodeSnapshot>();
        for (var i = 0; i < nodes; i++)
        {
            var n = Fleets.Node(rng, i);
            inventory.Upsert(n);
            oracle.Add(n);
            list.Add(n);
        }

        return (inventory, scheduler, oracle, list);
    }

    [Fact]
    public void Place_RandomFleetsAndRequests_AgreesWithBruteForceOracle()
    {
        Gen.Int.Sample(seed =>
        {
            var rng = new Random(seed);
            var (inventory, scheduler, oracle, nodes) = CreateSut(rng, rng.Next(0, 120), new SchedulerOptions { CandidatesToScore = rng.Next(1, 9) });
            for (var step = 0; step < 150; step++)
            {
                var request = Fleets.Request(rng, nodes);
                var expected = oracle.CountFitting(request);
                var mode = rng.Next(3) == 0 ? PlacementMode.DryRun : PlacementMode.Commit;
                var result = scheduler.Place(request, mode);
                if (result.Succeeded)
                {
                    var chosen = nodes.Single(n => n.Id == result.Node);
                    Assert.True(oracle.Fits(chosen, request), $"seed {seed}: placed on a node that fails a hard filter");
                    if (mode == PlacementMode.Commit)
                    {
                        oracle.Record(result.Reservation, result.Node, request);
                    }
                }
                else
                {
                    Assert.True(expected == 0, $"seed {seed}: refused although {expected} nodes fit: {result.Refusal}");
                    var refusal = result.Refusal!;
                    Assert.Equal(nodes.Count, refusal.InventorySize);
                    Assert.Equal(nodes.Count, refusal.RejectedTotal);
                    Assert.False(string.IsNullOrWhiteSpace(refusal.Summary));
                }

                if (rng.Next(4) == 0 && oracle.Live.Count > 0)
                {
                    var id = oracle.Live.ElementAt(rng.Next(oracle.Live.Count));
                    Assert.True(scheduler.Release(id));
                    oracle.Forget(id);
                }
            }

            oracle.AssertMatches(inventory);
        }, iter: 60, threads: 1);
    }

    [Fact]
    public void PlaceFullScan_RandomRequests_AgreesWithIndexedOnFeasibility()
    {
        Gen.Int.Sample(seed =>
        {
            var rng = new Random(seed);
            var (_, scheduler, oracle, nodes) = CreateSut(rng, rng.Next(1, 80));
            for (var step = 0; step < 100; step++)
            {
                var request = Fleets.Request(rng, nodes);
                var indexed = scheduler.Place(request, PlacementMode.DryRun);
                var naive = scheduler.PlaceFullScan(request, PlacementMode.DryRun);
                Assert.Equal(naive.Succeeded, indexed.Succeeded);
                Assert.Equal(oracle.CountFitting(request) > 0, naive.Succeeded);
                var committed = scheduler.Place(request);
                if (committed.Succeeded)
                {
                    oracle.Record(committed.Reservation, committed.Node, request);
                }
            }
        }, iter: 40, threads: 1);
    }

    [Fact]
    public void Place_AddingANode_NeverMakesAFeasibleRequestInfeasible()
    {
        Gen.Int.Sample(seed =>
        {
            var rng = new Random(seed);
            var (inventory, scheduler, _, nodes) = CreateSut(rng, rng.Next(1, 60));
            for (var i = 0; i < 40; i++)
            {
                scheduler.Place(Fleets.Request(rng));
            }

            var requests = Enumerable.Range(0, 60).Select(_ => Fleets.Request(rng, nodes)).ToList();
            var before = requests.Select(r => scheduler.Place(r, PlacementMode.DryRun).Succeeded).ToList();
            inventory.Upsert(Fleets.Node(rng, 10_000 + seed % 1000));
            for (var i = 0; i < requests.Count; i++)
            {
                if (before[i])
                {
                    Assert.True(scheduler.Place(requests[i], PlacementMode.DryRun).Succeeded, $"seed {seed}: request {i} became infeasible");
                }
            }
        }, iter: 60, threads: 1);
    }

    [Fact]
    public void Place_RandomOperations_NeverOvercommitsAndConservesCapacity()
    {
        Gen.Int.Sample(seed =>
        {
            var rng = new Random(seed);
            var time = new FakeTimeProvider();
            var inventory = new NodeInventory(time);
            var scheduler = new VmScheduler(inventory);
            var nodes = Enumerable.Range(0, rng.Next(1, 30)).Select(i => Fleets.Node(rng, i)).ToList();
            nodes.ForEach(inventory.Upsert);
            var reservations = new List<(ReservationId Id, NodeId Node, long Cpu, bool Held)>();
            for (var step = 0; step < 300; step++)
            {
                switch (rng.Next(6))
                {
                    case 0 or 1:
                        var r = Fleets.Request(rng);
                        var mode = rng.Next(2) == 0 ? PlacementMode.Hold : PlacementMode.Commit;
                        var res = scheduler.Place(r, mode, TimeSpan.FromSeconds(rng.Next(1, 60)));
                        if (res.Succeeded)
                        {
                            reservations.Add((res.Reservation, res.Node, Oracle.Twelfths(r), mode == PlacementMode.Hold));
                        }

                        break;
                    case 2 when reservations.Count > 0:
                        scheduler.Commit(reservations[rng.Next(reservations.Count)].Id);
                        break;
                    case 3 when reservations.Count > 0:
                        scheduler.Release(reservations[rng.Next(reservations.Count)].Id);
                        break;
                    case 4:
                        time.Advance(TimeSpan.FromSeconds(rng.Next(0, 20)));
                        break;
                    case 5:
                        inventory.SetOnline(nodes[rng.Next(nodes.Count)].Id, rng.Next(2) == 0);
                        break;
                }

                foreach (var n in nodes)
                {
                    var u = inventory.GetUsage(n.Id);
                    Assert.Equal(u.Capacity, u.Free + u.Held + u.Allocated);
                    Assert.True(u.Free.CpuTwelfths >= 0 && u.Free.MemoryMiB >= 0 && u.Free.StorageGiB >= 0 && u.Free.Gpus >= 0, $"seed {seed}: overcommitted {u}");
                    var live = inventory.GetReservations(n.Id);
                    Assert.Equal(u.Held.CpuTwelfths, live.Where(x => x.State == ReservationState.Held).Sum(x => x.Amounts.CpuTwelfths));
                    Assert.Equal(u.Allocated.CpuTwelfths, live.Where(x => x.State == ReservationState.Allocated).Sum(x => x.Amounts.CpuTwelfths));
                }
            }
        }, iter: 40, threads: 1);
    }
}
