using System.Runtime.InteropServices;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>
/// Source-generated bindings to <c>libvirt.so.0</c> and <c>libvirt-qemu.so.0</c>. Only the calls the
/// library uses are declared; signatures follow libvirt's public headers (9.x), with C <c>unsigned long</c>
/// as <see cref="CULong"/> so struct layouts stay correct on every LP64/LLP64 platform.
/// </summary>
internal static unsafe partial class NativeMethods
{
    internal const string Library = "libvirt.so.0";
    internal const string QemuLibrary = "libvirt-qemu.so.0";

    // ---- errors ----
    [LibraryImport(Library, EntryPoint = "virSetErrorFunc")]
    internal static partial void virSetErrorFunc(nint userData, delegate* unmanaged<nint, nint, void> handler);

    [LibraryImport(Library, EntryPoint = "virGetLastError")]
    internal static partial VirError* virGetLastError();

    [LibraryImport(Library, EntryPoint = "virResetLastError")]
    internal static partial void virResetLastError();

    // ---- connections ----
    [LibraryImport(Library, EntryPoint = "virConnectOpen", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint virConnectOpen(string? name);

    [LibraryImport(Library, EntryPoint = "virConnectClose")]
    internal static partial int virConnectClose(nint conn);

    [LibraryImport(Library, EntryPoint = "virConnectGetURI")]
    internal static partial nint virConnectGetURI(SafeConnectHandle conn);

    [LibraryImport(Library, EntryPoint = "virConnectGetLibVersion")]
    internal static partial int virConnectGetLibVersion(SafeConnectHandle conn, out CULong version);

    [LibraryImport(Library, EntryPoint = "virConnectListAllDomains")]
    internal static partial int virConnectListAllDomains(SafeConnectHandle conn, out nint* domains, uint flags);

    [LibraryImport(Library, EntryPoint = "virConnectIsAlive")]
    internal static partial int virConnectIsAlive(SafeConnectHandle conn);

    // ---- domains ----
    [LibraryImport(Library, EntryPoint = "virDomainDefineXML", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint virDomainDefineXML(SafeConnectHandle conn, string xml);

    [LibraryImport(Library, EntryPoint = "virDomainLookupByName", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint virDomainLookupByName(SafeConnectHandle conn, string name);

    [LibraryImport(Library, EntryPoint = "virDomainLookupByUUIDString", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint virDomainLookupByUUIDString(SafeConnectHandle conn, string uuid);

    [LibraryImport(Library, EntryPoint = "virDomainFree")]
    internal static partial int virDomainFree(nint domain);

    [LibraryImport(Library, EntryPoint = "virDomainRef")]
    internal static partial int virDomainRef(nint domain);

    [LibraryImport(Library, EntryPoint = "virDomainUndefineFlags")]
    internal static partial int virDomainUndefineFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainCreate")]
    internal static partial int virDomainCreate(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainShutdownFlags")]
    internal static partial int virDomainShutdownFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainDestroy")]
    internal static partial int virDomainDestroy(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainReboot")]
    internal static partial int virDomainReboot(SafeDomainHandle domain, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainSuspend")]
    internal static partial int virDomainSuspend(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainResume")]
    internal static partial int virDomainResume(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainGetName")]
    internal static partial nint virDomainGetName(nint domain);

    [LibraryImport(Library, EntryPoint = "virDomainGetUUIDString")]
    internal static partial int virDomainGetUUIDString(nint domain, byte* buffer);

    [LibraryImport(Library, EntryPoint = "virDomainGetID")]
    internal static partial uint virDomainGetID(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainGetState")]
    internal static partial int virDomainGetState(SafeDomainHandle domain, out int state, out int reason, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainGetInfo")]
    internal static partial int virDomainGetInfo(SafeDomainHandle domain, out VirDomainInfo info);

    [LibraryImport(Library, EntryPoint = "virDomainGetXMLDesc")]
    internal static partial nint virDomainGetXMLDesc(SafeDomainHandle domain, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainIsActive")]
    internal static partial int virDomainIsActive(SafeDomainHandle domain);

    [LibraryImport(Library, EntryPoint = "virDomainSetInterfaceParameters", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainSetInterfaceParameters(SafeDomainHandle domain, string device, VirTypedParameter* parameters, int count, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainGetInterfaceParameters", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainGetInterfaceParameters(SafeDomainHandle domain, string device, VirTypedParameter* parameters, ref int count, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainSetSchedulerParametersFlags")]
    internal static partial int virDomainSetSchedulerParametersFlags(SafeDomainHandle domain, VirTypedParameter* parameters, int count, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainGetSchedulerType")]
    internal static partial nint virDomainGetSchedulerType(SafeDomainHandle domain, out int count);

    [LibraryImport(Library, EntryPoint = "virDomainGetSchedulerParametersFlags")]
    internal static partial int virDomainGetSchedulerParametersFlags(SafeDomainHandle domain, VirTypedParameter* parameters, ref int count, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainGetSchedulerParameters")]
    internal static partial int virDomainGetSchedulerParameters(SafeDomainHandle domain, VirTypedParameter* parameters, ref int count);

    [LibraryImport(Library, EntryPoint = "virTypedParamsClear")]
    internal static partial void virTypedParamsClear(VirTypedParameter* parameters, int count);

    // ---- events ----
    [LibraryImport(Library, EntryPoint = "virEventRegisterDefaultImpl")]
    internal static partial int virEventRegisterDefaultImpl();

    [LibraryImport(Library, EntryPoint = "virEventRunDefaultImpl")]
    internal static partial int virEventRunDefaultImpl();

    [LibraryImport(Library, EntryPoint = "virEventAddTimeout")]
    internal static partial int virEventAddTimeout(int timeout, delegate* unmanaged<int, nint, void> callback, nint opaque, nint free);

    [LibraryImport(Library, EntryPoint = "virEventRemoveTimeout")]
    internal static partial int virEventRemoveTimeout(int timer);

    [LibraryImport(Library, EntryPoint = "virConnectDomainEventRegisterAny")]
    internal static partial int virConnectDomainEventRegisterAny(SafeConnectHandle conn, nint domain, int eventId, nint callback, nint opaque, delegate* unmanaged<nint, void> free);

    [LibraryImport(Library, EntryPoint = "virConnectDomainEventDeregisterAny")]
    internal static partial int virConnectDomainEventDeregisterAny(SafeConnectHandle conn, int callbackId);

    // ---- qemu guest agent ----
    [LibraryImport(QemuLibrary, EntryPoint = "virDomainQemuAgentCommand", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint virDomainQemuAgentCommand(SafeDomainHandle domain, string command, int timeoutSeconds, uint flags);

    /// <summary>Reads a UTF-8 string that libvirt allocated and frees it with libc <c>free</c>.</summary>
    internal static string? TakeString(nint pointer)
    {
        if (pointer == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(pointer);
        }
        finally
        {
            NativeMemory.Free((void*)pointer);
        }
    }

    /// <summary>The UUID of a domain pointer (borrowed, not freed).</summary>
    internal static Guid GetUuid(nint domain)
    {
        var buffer = stackalloc byte[VirUuidStringBufferLength];
        return virDomainGetUUIDString(domain, buffer) == 0
            ? Guid.Parse(new ReadOnlySpan<byte>(buffer, VirUuidStringBufferLength - 1))
            : Guid.Empty;
    }

    internal const int VirUuidStringBufferLength = 37;
}

/// <summary><c>virError</c> from <c>virterror.h</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct VirError
{
    public int Code;
    public int Domain;
    public nint Message;
    public int Level;
    public nint Conn;
    public nint Dom;
    public nint Str1;
    public nint Str2;
    public nint Str3;
    public int Int1;
    public int Int2;
    public nint Net;
}

/// <summary><c>virDomainInfo</c>: note the C <c>unsigned long</c> members.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct VirDomainInfo
{
    public byte State;
    public CULong MaxMemKiB;
    public CULong MemoryKiB;
    public ushort VirtualCpuCount;
    public ulong CpuTimeNanoseconds;
}

/// <summary><c>virTypedParameter</c>: an 80-byte field name, a type tag and an 8-byte union (96 bytes on LP64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VirTypedParameter
{
    public const int FieldLength = 80;
    public const int TypeInt = 1;
    public const int TypeUInt = 2;
    public const int TypeLLong = 3;
    public const int TypeULLong = 4;
    public const int TypeDouble = 5;
    public const int TypeBoolean = 6;
    public const int TypeString = 7;

    public fixed byte Field[FieldLength];
    public int Type;
    public ulong Value;

    public string Name
    {
        get
        {
            fixed (byte* p = Field)
            {
                var span = new ReadOnlySpan<byte>(p, FieldLength);
                var end = span.IndexOf((byte)0);
                return System.Text.Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
            }
        }
    }

    public static VirTypedParameter Create(string name, int type, ulong value)
    {
        var p = new VirTypedParameter { Type = type, Value = value };
        var bytes = System.Text.Encoding.UTF8.GetBytes(name);
        if (bytes.Length >= FieldLength)
        {
            throw new ArgumentException($"Typed parameter name '{name}' is longer than {FieldLength - 1} bytes.", nameof(name));
        }

        var field = new Span<byte>(p.Field, FieldLength);
        bytes.CopyTo(field);
        return p;
    }

    /// <summary>The value as a signed 64-bit integer, widening by type.</summary>
    public readonly long AsInt64() => Type switch
    {
        TypeInt => unchecked((int)(uint)Value),
        TypeUInt => (uint)Value,
        TypeLLong => unchecked((long)Value),
        TypeULLong => unchecked((long)Value),
        TypeBoolean => (byte)Value,
        _ => 0,
    };
}
