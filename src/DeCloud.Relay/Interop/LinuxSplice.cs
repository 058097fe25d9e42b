using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DeCloud.Relay.Interop;

/// <summary>
/// Source-generated bindings to the Linux calls of the zero-copy pump: <c>splice(2)</c>, <c>pipe2(2)</c>,
/// <c>fcntl(2)</c>, <c>read(2)</c>, <c>close(2)</c>. Handles are passed as <see cref="SafeHandle"/>s, so the marshaller
/// holds a reference (DangerousAddRef/Release) for the duration of each call and a concurrent dispose cannot close or
/// reuse a descriptor under it. Constants are the asm-generic / x86-64 values (the same on x64 and arm64).
/// </summary>
internal static partial class LinuxSplice
{
    public const uint SpliceMove = 1;
    public const uint SpliceNonBlock = 2;

    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EInval = 22;
    public const int ENoSys = 38;
    public const int EOpNotSupp = 95;

    private const string Libc = "libc";
    private const int OCloexec = 0x80000;
    private const int ONonBlock = 0x800;
    private const int FGetFl = 3;
    private const int FSetFl = 4;
    private const int FSetPipeSz = 1031;
    private const int FGetPipeSz = 1032;

    /// <summary>Whether this platform has the calls and the constants above.</summary>
    public static bool IsSupported { get; } = OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>Moves up to <paramref name="length"/> bytes from <paramref name="input"/> to <paramref name="output"/>; one side is a pipe.</summary>
    /// <returns>Bytes moved, 0 at the end of input, or -1 with <paramref name="errno"/> set.</returns>
    public static nint Splice(SafeHandle input, SafeHandle output, int length, out int errno)
    {
        nint moved;
        do
        {
            moved = splice(input, 0, output, 0, (nuint)length, SpliceMove | SpliceNonBlock);
            errno = moved < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        while (errno == EIntr);

        return moved;
    }

    /// <summary>Reads from a pipe into <paramref name="buffer"/>.</summary>
    /// <returns>Bytes read, or -1 with <paramref name="errno"/> set.</returns>
    public static int Read(SafeHandle pipe, Span<byte> buffer, out int errno)
    {
        nint read;
        do
        {
            read = read_(pipe, ref MemoryMarshal.GetReference(buffer), (nuint)buffer.Length);
            errno = read < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        while (errno == EIntr);

        return (int)read;
    }

    /// <summary>Opens a non-blocking, close-on-exec pipe of about <paramref name="size"/> bytes; returns false with errno on failure.</summary>
    public static bool TryCreatePipe(int size, out SafeFileDescriptor readEnd, out SafeFileDescriptor writeEnd, out int actualSize, out int errno)
    {
        Span<int> fds = stackalloc int[2];
        actualSize = 0;
        if (pipe2(fds, ONonBlock | OCloexec) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            readEnd = writeEnd = new SafeFileDescriptor(-1);
            return false;
        }

        readEnd = new SafeFileDescriptor(fds[0]);
        writeEnd = new SafeFileDescriptor(fds[1]);
        // The kernel rounds up to a power-of-two number of pages; unprivileged processes are capped at
        // /proc/sys/fs/pipe-max-size (and past pipe-user-pages-soft get small pipes). Failing to grow keeps the pipe
        // as it is, which still works, only with more calls per megabyte.
        actualSize = fcntl(writeEnd, FSetPipeSz, size);
        if (actualSize <= 0)
        {
            actualSize = Math.Max(fcntl(writeEnd, FGetPipeSz, 0), Environment.SystemPageSize);
        }

        errno = 0;
        return true;
    }

    /// <summary>Makes <paramref name="socket"/> non-blocking if it is not (splice on a blocking socket would block its thread).</summary>
    public static bool TryEnsureNonBlocking(SafeHandle socket)
    {
        var flags = fcntl(socket, FGetFl, 0);
        if (flags < 0)
        {
            return false;
        }

        return (flags & ONonBlock) != 0 || fcntl(socket, FSetFl, flags | ONonBlock) == 0;
    }

    [LibraryImport(Libc, EntryPoint = "splice", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial nint splice(SafeHandle fdIn, nint offIn, SafeHandle fdOut, nint offOut, nuint length, uint flags);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial nint read_(SafeHandle fd, ref byte buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "pipe2", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int pipe2(Span<int> fds, int flags);

    // fcntl is variadic in C; with integer arguments the x64 and arm64 Linux calling conventions match a fixed signature.
    [LibraryImport(Libc, EntryPoint = "fcntl", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int fcntl(SafeHandle fd, int command, int argument);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int close(nint fd);
}

/// <summary>A file descriptor this process owns (a pipe end), closed exactly once when released.</summary>
internal sealed class SafeFileDescriptor : SafeHandleMinusOneIsInvalid
{
    public SafeFileDescriptor(int fd)
        : base(ownsHandle: true)
    {
        SetHandle(fd);
    }

    protected override bool ReleaseHandle() => LinuxSplice.close(handle) == 0;
}
