using System.Net.Sockets;
using System.Runtime.InteropServices;
using DeCloud.Testing;

namespace DeCloud.Virtualization.Tests.Fixtures;

/// <summary>Network namespaces for tests (prefix dcv-), and sockets created inside them via setns(2) on a helper thread.</summary>
internal static partial class NetworkNamespace
{
    private const int CloneNewNet = 0x40000000;

    public static void Require()
    {
        RealDependency.RequireRoot("network namespaces");
        RealDependency.RequireExecutable("ip");
        RealDependency.RequireExecutable("tc");
    }

    public static async Task CreateAsync(string name)
    {
        await ProcessRunner.RunAsync("ip", ["netns", "del", name]);
        (await ProcessRunner.RunAsync("ip", ["netns", "add", name])).EnsureSuccess($"ip netns add {name}");
        (await ProcessRunner.RunAsync("ip", ["-n", name, "link", "set", "lo", "up"])).EnsureSuccess("lo up");
    }

    public static Task DeleteAsync(string name) => ProcessRunner.RunAsync("ip", ["netns", "del", name]);

    public static async Task ExecAsync(string ns, params string[] command) =>
        (await ProcessRunner.RunAsync("ip", ["netns", "exec", ns, .. command])).EnsureSuccess(string.Join(' ', command));

    /// <summary>Runs <paramref name="create"/> on a thread that has entered <paramref name="ns"/>; sockets it creates belong to that namespace.</summary>
    public static T InNamespace<T>(string ns, Func<T> create)
    {
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var fd = File.OpenHandle($"/var/run/netns/{ns}");
                if (setns(fd.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns({ns}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                result = create();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        });
        thread.Start();
        thread.Join();
        return error is null ? result! : throw new InvalidOperationException($"in namespace {ns}: {error.Message}", error);
    }

    public static Socket Listen(string ns, System.Net.IPAddress address) => InNamespace(ns, () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new System.Net.IPEndPoint(address, 0));
        s.Listen(1);
        return s;
    });

    public static Socket NewSocket(string ns) => InNamespace(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);
}
