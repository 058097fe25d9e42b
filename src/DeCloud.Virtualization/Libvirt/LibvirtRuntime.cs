using System.Runtime.InteropServices;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>
/// Process-wide libvirt setup, done once: a silent error handler (libvirt's default prints every
/// error to stderr; we turn errors into <see cref="LibvirtException"/> instead) and libvirt's default
/// event loop, registered before the first connection opens and run on one dedicated background thread.
/// </summary>
internal static unsafe class LibvirtRuntime
{
    private static readonly Lock Gate = new();
    private static bool initialized;
    private static Thread? loopThread;

    /// <summary>The thread that runs libvirt's event loop (callbacks arrive on it).</summary>
    internal static Thread? EventLoopThread => loopThread;

    internal static void EnsureInitialized()
    {
        if (Volatile.Read(ref initialized))
        {
            return;
        }

        lock (Gate)
        {
            if (initialized)
            {
                return;
            }

            NativeMethods.virSetErrorFunc(0, &SilentErrorHandler);
            if (NativeMethods.virEventRegisterDefaultImpl() < 0)
            {
                throw LibvirtException.FromLastError("virEventRegisterDefaultImpl");
            }

            loopThread = new Thread(RunLoop)
            {
                IsBackground = true,
                Name = "libvirt event loop",
            };
            loopThread.Start();
            Volatile.Write(ref initialized, true);
        }
    }

    private static void RunLoop()
    {
        // libvirt's default loop cannot be unregistered; it lives as long as the process, like libvirt's own
        // clients (virsh, libvirt-python). It blocks in poll() when idle, so it costs nothing.
        while (true)
        {
            if (NativeMethods.virEventRunDefaultImpl() < 0)
            {
                NativeMethods.virResetLastError();
            }
        }
    }

    [UnmanagedCallersOnly]
    private static void SilentErrorHandler(nint userData, nint error)
    {
        // Deliberately empty: errors are read with virGetLastError on the calling thread.
    }
}
