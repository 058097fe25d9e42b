namespace DeCloud.Testing;

/// <summary>Time-boxes awaits in tests so a hang fails with a message instead of stalling the run.</summary>
public static class TimeBox
{
    /// <summary>The default bound for loopback operations.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

    /// <summary>The default bound for real parts (VM boot, Btrfs moves, chains): minutes, not seconds.</summary>
    public static readonly TimeSpan RealPart = TimeSpan.FromMinutes(5);

    /// <summary>Awaits <paramref name="task"/> for at most <paramref name="timeout"/>.</summary>
    public static async Task<T> Within<T>(this Task<T> task, TimeSpan? timeout = null, string? what = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        var bound = timeout ?? Default;
        try
        {
            return await task.WaitAsync(bound).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Timed out after {bound} waiting for {what ?? "the operation"}.");
        }
    }

    /// <summary>Awaits <paramref name="task"/> for at most <paramref name="timeout"/>.</summary>
    public static async Task Within(this Task task, TimeSpan? timeout = null, string? what = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        var bound = timeout ?? Default;
        try
        {
            await task.WaitAsync(bound).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Timed out after {bound} waiting for {what ?? "the operation"}.");
        }
    }
}
