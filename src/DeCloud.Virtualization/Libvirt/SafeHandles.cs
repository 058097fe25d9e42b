using System.Runtime.InteropServices;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>A <c>virConnectPtr</c>; released with <c>virConnectClose</c>.</summary>
internal sealed class SafeConnectHandle : SafeHandle
{
    public SafeConnectHandle()
        : base(0, ownsHandle: true)
    {
    }

    internal SafeConnectHandle(nint handle)
        : base(0, ownsHandle: true) => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => NativeMethods.virConnectClose(handle) >= 0;
}

/// <summary>A <c>virDomainPtr</c>; released with <c>virDomainFree</c>.</summary>
internal sealed class SafeDomainHandle : SafeHandle
{
    public SafeDomainHandle()
        : base(0, ownsHandle: true)
    {
    }

    internal SafeDomainHandle(nint handle)
        : base(0, ownsHandle: true) => SetHandle(handle);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => NativeMethods.virDomainFree(handle) == 0;
}
