using System.Globalization;
using System.Runtime.InteropServices;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>
/// An error reported by libvirt, with libvirt's numeric <see cref="Code"/> (<c>virErrorNumber</c>),
/// the subsystem <see cref="ErrorDomain"/> (<c>virErrorDomain</c>) and its message.
/// </summary>
public sealed class LibvirtException : VirtualizationException
{
    /// <summary><c>VIR_ERR_NO_DOMAIN</c>: the domain does not exist (or vanished).</summary>
    public const int NoDomain = 42;

    /// <summary><c>VIR_ERR_OPERATION_INVALID</c>: the operation is not valid in the domain's current state.</summary>
    public const int OperationInvalid = 55;

    /// <summary><c>VIR_ERR_INVALID_ARG</c>: an argument was rejected.</summary>
    public const int InvalidArgument = 8;

    /// <summary><c>VIR_ERR_XML_ERROR</c>: the XML document was malformed or rejected.</summary>
    public const int XmlError = 27;

    /// <summary><c>VIR_ERR_XML_DETAIL</c>: the XML was well-formed but a detail was wrong (parser message included).</summary>
    public const int XmlDetail = 35;

    /// <summary><c>VIR_ERR_AGENT_UNRESPONSIVE</c>: the guest agent did not answer.</summary>
    public const int AgentUnresponsive = 86;

    internal LibvirtException(string operation, int code, int errorDomain, string libvirtMessage)
        : base(string.Create(CultureInfo.InvariantCulture, $"libvirt {operation} failed (code {code}, domain {errorDomain}): {libvirtMessage}"))
    {
        Operation = operation;
        Code = code;
        ErrorDomain = errorDomain;
        LibvirtMessage = libvirtMessage;
    }

    /// <summary>The binding call that failed, e.g. <c>virDomainCreate</c>.</summary>
    public string Operation { get; }

    /// <summary>libvirt's <c>virErrorNumber</c>.</summary>
    public int Code { get; }

    /// <summary>libvirt's <c>virErrorDomain</c>: which subsystem raised the error.</summary>
    public int ErrorDomain { get; }

    /// <summary>libvirt's own message text.</summary>
    public string LibvirtMessage { get; }

    /// <summary>True when the domain does not exist (never defined, undefined, or vanished).</summary>
    public bool IsDomainNotFound => Code == NoDomain;

    /// <summary>True when libvirt rejected an XML document.</summary>
    public bool IsXmlError => Code is XmlError or XmlDetail;

    /// <summary>Builds an exception from libvirt's thread-local last error and resets it.</summary>
    internal static unsafe LibvirtException FromLastError(string operation)
    {
        var error = NativeMethods.virGetLastError();
        LibvirtException result;
        if (error is null)
        {
            result = new LibvirtException(operation, 1, 0, "unknown error (libvirt reported no details)");
        }
        else
        {
            var message = Marshal.PtrToStringUTF8(error->Message) ?? "no message";
            result = new LibvirtException(operation, error->Code, error->Domain, message);
        }

        NativeMethods.virResetLastError();
        return result;
    }
}
