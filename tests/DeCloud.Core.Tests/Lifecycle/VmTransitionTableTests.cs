using DeCloud.Core.Lifecycle;

namespace DeCloud.Core.Tests.Lifecycle;

public sealed class VmTransitionTableTests
{
    [Fact]
    public void IsDefined_EveryEnumValue_HasARow()
    {
        foreach (var state in Enum.GetValues<VmState>())
        {
            Assert.True(VmTransitionTable.IsDefined(state), $"{state} has no row in the table");
        }

        Assert.False(VmTransitionTable.IsDefined((VmState)99));
    }

    [Fact]
    public void IsTerminal_Deleted_OnlyDeleted()
    {
        Assert.Equal([VmState.Deleted], Enum.GetValues<VmState>().Where(VmTransitionTable.IsTerminal));
    }

    [Theory]
    [InlineData(VmState.Pending, VmState.Scheduled, true)]
    [InlineData(VmState.Running, VmState.Stopping, true)]
    [InlineData(VmState.Running, VmState.Unreachable, true)]
    [InlineData(VmState.Unreachable, VmState.Running, true)]
    [InlineData(VmState.Deleting, VmState.Deleted, true)]
    [InlineData(VmState.Failed, VmState.Pending, true)]
    [InlineData(VmState.Running, VmState.Pending, false)]
    [InlineData(VmState.Deleted, VmState.Pending, false)]
    [InlineData(VmState.Pending, VmState.Running, false)]
    [InlineData(VmState.Stopped, VmState.Running, false)]
    [InlineData(VmState.Running, VmState.Running, false)]
    public void IsAllowed_Pairs_MatchTheDocumentedTable(VmState from, VmState to, bool allowed) =>
        Assert.Equal(allowed, VmTransitionTable.IsAllowed(from, to));

    [Fact]
    public void NextStates_EveryNonTerminalState_CanReachDeleted()
    {
        foreach (var start in VmTransitionTable.States)
        {
            var seen = new HashSet<VmState> { start };
            var queue = new Queue<VmState>([start]);
            while (queue.TryDequeue(out var s))
            {
                foreach (var n in VmTransitionTable.NextStates(s).Where(seen.Add))
                {
                    queue.Enqueue(n);
                }
            }

            Assert.Contains(VmState.Deleted, seen);
        }
    }
}
