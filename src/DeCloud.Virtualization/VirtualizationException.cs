namespace DeCloud.Virtualization;

/// <summary>
/// The base of every error this package raises on purpose. Callers catch this to handle any
/// virtualization failure; the subclasses carry the details (<see cref="Libvirt.LibvirtException"/>
/// for libvirt's own errors, <see cref="Readiness.GuestAgentException"/> for the guest agent,
/// <see cref="Qos.ShapingException"/> for the tc shaper).
/// </summary>
public abstract class VirtualizationException : Exception
{
    private protected VirtualizationException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
