using DeCloud.Testing;

namespace DeCloud.Core.Tests.Security;

/// <summary><see cref="TimeBox"/> for the ValueTask-returning security APIs.</summary>
internal static class ValueTaskTimeBox
{
    public static Task<T> Within<T>(this ValueTask<T> task, TimeSpan? timeout = null) => task.AsTask().Within(timeout);

    public static Task Within(this ValueTask task, TimeSpan? timeout = null) => task.AsTask().Within(timeout);
}
