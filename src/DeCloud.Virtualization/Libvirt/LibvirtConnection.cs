using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>
/// A connection to a libvirt hypervisor (<c>test:///default</c>, <c>qemu:///system</c>, ...). libvirt's C API
/// blocks, so every <c>...Async</c> method runs the call on the thread pool and never on the caller's thread.
/// Domain lifecycle and guest-agent events arrive through libvirt's event loop, which runs on one
/// dedicated background thread, and are raised in order on a separate dispatcher so handlers may call back
/// into libvirt.
/// </summary>
public sealed class LibvirtConnection : IAsyncDisposable, IDisposable
{
    private const int EventIdLifecycle = 0;
    private const int EventIdAgentLifecycle = 18;

    private readonly SafeConnectHandle handle;
    private readonly ILogger logger;
    private readonly Channel<EventArgs> events = Channel.CreateUnbounded<EventArgs>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task dispatcher;
    private readonly int lifecycleCallbackId;
    private readonly int agentCallbackId;
    private int disposed;

    private unsafe LibvirtConnection(SafeConnectHandle handle, string uri, ILogger logger)
    {
        this.handle = handle;
        this.logger = logger;
        Uri = uri;
        dispatcher = Task.Run(DispatchEventsAsync);
        lifecycleCallbackId = Register(EventIdLifecycle, (nint)(delegate* unmanaged<nint, nint, int, int, nint, int>)&OnLifecycle);
        agentCallbackId = Register(EventIdAgentLifecycle, (nint)(delegate* unmanaged<nint, nint, int, int, nint, int>)&OnAgentLifecycle);
    }

    /// <summary>Raised when a domain on this connection is defined, started, stopped, undefined, ...</summary>
    public event EventHandler<DomainLifecycleEventArgs>? DomainLifecycle;

    /// <summary>Raised when a domain's qemu guest agent connects or disconnects.</summary>
    public event EventHandler<AgentLifecycleEventArgs>? AgentLifecycle;

    /// <summary>The URI this connection was opened with.</summary>
    public string Uri { get; }

    /// <summary>Internal: the native handle, for the guest agent and benchmarks.</summary>
    internal SafeConnectHandle Handle => handle;

    /// <summary>Opens a connection; throws <see cref="LibvirtException"/> with libvirt's message when it does not connect.</summary>
    public static LibvirtConnection Open(string uri, ILoggerFactory? loggerFactory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uri);
        LibvirtRuntime.EnsureInitialized();
        var raw = NativeMethods.virConnectOpen(uri);
        if (raw == 0)
        {
            throw LibvirtException.FromLastError($"virConnectOpen('{uri}')");
        }

        var safe = new SafeConnectHandle(raw);
        try
        {
            var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<LibvirtConnection>();
            Log.Connected(logger, uri);
            return new LibvirtConnection(safe, uri, logger);
        }
        catch
        {
            safe.Dispose();
            throw;
        }
    }

    /// <summary>Opens a connection on the thread pool (remote URIs may take a while to connect).</summary>
    public static Task<LibvirtConnection> OpenAsync(string uri, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(uri);
        return Task.Run(() => Open(uri, loggerFactory), cancellationToken);
    }

    /// <summary>True while the connection is usable.</summary>
    public bool IsAlive => !handle.IsClosed && NativeMethods.virConnectIsAlive(handle) == 1;

    /// <summary>Defines (persists) a domain from its XML; defining an existing name/UUID updates it.</summary>
    public LibvirtDomain Define(string xml)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(xml);
        ThrowIfDisposed();
        return Wrap(NativeMethods.virDomainDefineXML(handle, xml), "virDomainDefineXML");
    }

    /// <summary>Defines a domain from its XML.</summary>
    public Task<LibvirtDomain> DefineAsync(string xml, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(xml);
        return Task.Run(() => Define(xml), cancellationToken);
    }

    /// <summary>
    /// Defines and starts a domain. When the start fails the definition is removed again, so a domain that
    /// cannot run is never left half-defined; the start error is rethrown.
    /// </summary>
    public Task<LibvirtDomain> DefineAndStartAsync(string xml, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(xml);
        return Task.Run(
            () =>
            {
                var domain = Define(xml);
                try
                {
                    domain.Start();
                    return domain;
                }
                catch (LibvirtException ex)
                {
                    Log.StartFailedUndefining(logger, domain.Name, ex.LibvirtMessage);
                    try
                    {
                        domain.Undefine();
                    }
                    catch (LibvirtException)
                    {
                        // The start error is the one the caller needs; the undefine error only says it was gone already.
                    }

                    domain.Dispose();
                    throw;
                }
            },
            cancellationToken);
    }

    /// <summary>Looks a domain up by name; throws <see cref="LibvirtException"/> with <see cref="LibvirtException.IsDomainNotFound"/> when absent.</summary>
    public LibvirtDomain LookupByName(string name)
    {
        ValidateName(name);
        ThrowIfDisposed();
        return Wrap(NativeMethods.virDomainLookupByName(handle, name), $"virDomainLookupByName('{name}')");
    }

    /// <summary>Looks a domain up by name.</summary>
    public Task<LibvirtDomain> LookupByNameAsync(string name, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        return Task.Run(() => LookupByName(name), cancellationToken);
    }

    /// <summary>Looks a domain up by UUID.</summary>
    public LibvirtDomain LookupByUuid(Guid uuid)
    {
        if (uuid == Guid.Empty)
        {
            throw new ArgumentException("The domain UUID is empty; pass the UUID libvirt reported for the domain.", nameof(uuid));
        }

        ThrowIfDisposed();
        return Wrap(NativeMethods.virDomainLookupByUUIDString(handle, uuid.ToString("D")), $"virDomainLookupByUUIDString('{uuid:D}')");
    }

    /// <summary>Looks a domain up by UUID.</summary>
    public Task<LibvirtDomain> LookupByUuidAsync(Guid uuid, CancellationToken cancellationToken = default) =>
        Task.Run(() => LookupByUuid(uuid), cancellationToken);

    /// <summary>Lists domains; each returned <see cref="LibvirtDomain"/> owns a handle and must be disposed.</summary>
    public unsafe IReadOnlyList<LibvirtDomain> ListAllDomains(DomainListFilter filter = DomainListFilter.All)
    {
        ThrowIfDisposed();
        var count = NativeMethods.virConnectListAllDomains(handle, out var array, (uint)filter);
        if (count < 0)
        {
            throw LibvirtException.FromLastError("virConnectListAllDomains");
        }

        var result = new List<LibvirtDomain>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var raw = array[i];
                array[i] = 0;
                result.Add(new LibvirtDomain(this, new SafeDomainHandle(raw)));
            }
        }
        finally
        {
            for (var i = 0; i < count; i++)
            {
                if (array[i] != 0)
                {
                    NativeMethods.virDomainFree(array[i]);
                }
            }

            NativeMemory.Free(array);
        }

        return result;
    }

    /// <summary>Lists domains.</summary>
    public Task<IReadOnlyList<LibvirtDomain>> ListAllDomainsAsync(DomainListFilter filter = DomainListFilter.All, CancellationToken cancellationToken = default) =>
        Task.Run(() => ListAllDomains(filter), cancellationToken);

    /// <summary>Closes the connection after deregistering its event callbacks.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        if (lifecycleCallbackId >= 0)
        {
            NativeMethods.virConnectDomainEventDeregisterAny(handle, lifecycleCallbackId);
        }

        if (agentCallbackId >= 0)
        {
            NativeMethods.virConnectDomainEventDeregisterAny(handle, agentCallbackId);
        }

        NativeMethods.virResetLastError();
        events.Writer.TryComplete();
        handle.Dispose();
    }

    /// <summary>Closes the connection and waits until queued events have been raised.</summary>
    public async ValueTask DisposeAsync()
    {
        Dispose();
        await dispatcher.ConfigureAwait(false);
    }

    internal static void ValidateName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > 200 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"Domain name '{name}' is invalid: use at most 200 characters and no '/' or NUL.", nameof(name));
        }
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0 || handle.IsClosed, this);

    private LibvirtDomain Wrap(nint raw, string operation)
    {
        if (raw == 0)
        {
            throw LibvirtException.FromLastError(operation);
        }

        return new LibvirtDomain(this, new SafeDomainHandle(raw));
    }

    private unsafe int Register(int eventId, nint callback)
    {
        var opaque = GCHandle.ToIntPtr(GCHandle.Alloc(this, GCHandleType.Weak));
        var id = NativeMethods.virConnectDomainEventRegisterAny(handle, 0, eventId, callback, opaque, &FreeOpaque);
        if (id < 0)
        {
            // Some drivers do not support every event (e.g. agent events on test:///); that is not fatal.
            GCHandle.FromIntPtr(opaque).Free();
            NativeMethods.virResetLastError();
        }

        return id;
    }

    private async Task DispatchEventsAsync()
    {
        await foreach (var e in events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                switch (e)
                {
                    case DomainLifecycleEventArgs lifecycle:
                        DomainLifecycle?.Invoke(this, lifecycle);
                        break;
                    case AgentLifecycleEventArgs agent:
                        AgentLifecycle?.Invoke(this, agent);
                        break;
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A throwing handler must not stop later events from being delivered.
                Log.EventHandlerFailed(logger, Uri, ex);
            }
        }
    }

    private static LibvirtConnection? FromOpaque(nint opaque) => GCHandle.FromIntPtr(opaque).Target as LibvirtConnection;

    [UnmanagedCallersOnly]
    private static int OnLifecycle(nint conn, nint dom, int evt, int detail, nint opaque)
    {
        var self = FromOpaque(opaque);
        var name = Marshal.PtrToStringUTF8(NativeMethods.virDomainGetName(dom)) ?? string.Empty;
        self?.events.Writer.TryWrite(new DomainLifecycleEventArgs(name, NativeMethods.GetUuid(dom), (DomainLifecycleEventKind)evt, detail));
        return 0;
    }

    [UnmanagedCallersOnly]
    private static int OnAgentLifecycle(nint conn, nint dom, int state, int reason, nint opaque)
    {
        var self = FromOpaque(opaque);
        var name = Marshal.PtrToStringUTF8(NativeMethods.virDomainGetName(dom)) ?? string.Empty;
        self?.events.Writer.TryWrite(new AgentLifecycleEventArgs(name, NativeMethods.GetUuid(dom), state == 1, reason));
        return 0;
    }

    [UnmanagedCallersOnly]
    private static void FreeOpaque(nint opaque) => GCHandle.FromIntPtr(opaque).Free();
}

/// <summary>Which domains <see cref="LibvirtConnection.ListAllDomains"/> returns.</summary>
[Flags]
public enum DomainListFilter
{
    /// <summary>Every domain.</summary>
    All = 0,

    /// <summary>Running domains.</summary>
    Active = 1,

    /// <summary>Defined domains that are not running.</summary>
    Inactive = 2,
}

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "Connected to libvirt at {Uri}")]
    public static partial void Connected(ILogger logger, string uri);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "A libvirt event handler on {Uri} threw")]
    public static partial void EventHandlerFailed(ILogger logger, string uri, Exception exception);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Domain {Domain} did not start ({Reason}); its definition is removed again")]
    public static partial void StartFailedUndefining(ILogger logger, string domain, string reason);
}
