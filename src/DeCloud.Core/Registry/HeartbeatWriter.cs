using System.Threading.Channels;

namespace DeCloud.Core.Registry;

/// <summary>
/// Group commit for status rows: callers enqueue, one loop writes whatever has queued up (up to the
/// batch size) in one transaction, then completes every caller of that batch. A caller's task
/// completes when its row is committed, or fails with the batch's error.
/// </summary>
internal sealed class HeartbeatWriter : IAsyncDisposable
{
    private readonly INodeStore _store;
    private readonly int _maxBatch;
    private readonly Channel<(NodeStatusUpdate Update, TaskCompletionSource Done)> _queue =
        Channel.CreateUnbounded<(NodeStatusUpdate, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });

    private readonly Task _loop;

    public HeartbeatWriter(INodeStore store, int maxBatch)
    {
        _store = store;
        _maxBatch = maxBatch;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Number of batches committed (for tests and metrics).</summary>
    public long Batches { get; private set; }

    /// <summary>Queues <paramref name="update"/>; the task completes when it is durable. Never blocks.</summary>
    public Task Enqueue(NodeStatusUpdate update)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((update, done)))
        {
            throw new ObjectDisposedException(nameof(NodeRegistry), "The node registry was disposed.");
        }

        return done.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private async Task LoopAsync()
    {
        var batch = new List<(NodeStatusUpdate Update, TaskCompletionSource Done)>(_maxBatch);
        var updates = new List<NodeStatusUpdate>(_maxBatch);
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            updates.Clear();
            while (batch.Count < _maxBatch && reader.TryRead(out var item))
            {
                batch.Add(item);
                updates.Add(item.Update);
            }

            try
            {
                await _store.SaveStatusBatchAsync(updates).ConfigureAwait(false);
                Batches++;
                foreach (var item in batch)
                {
                    item.Done.TrySetResult();
                }
            }
            catch (Exception ex)
            {
                foreach (var item in batch)
                {
                    item.Done.TrySetException(ex);
                }
            }
        }
    }
}
