using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Virtualization.Qos;

/// <summary>
/// Enforces a <see cref="BandwidthLimit"/> on a VM's tap device with tc, for kernels where libvirt's own
/// <c>&lt;bandwidth&gt;</c> cannot work (it needs <c>sch_sfq</c>, <c>cls_fw</c> and <c>act_police</c>):
/// <list type="bullet">
/// <item>towards the guest (the tap's egress): an HTB root with one class, rate = average, ceil = peak, burst = the tier burst;</item>
/// <item>from the guest (the tap's ingress): an <c>ingress</c> qdisc whose u32 match-all filter redirects every packet
/// (<c>mirred</c>) to an IFB device named <c>dcvi&lt;hash&gt;</c>, which carries the same HTB.</item>
/// </list>
/// Only <c>sch_htb</c>, <c>sch_ingress</c>, <c>cls_u32</c>, <c>act_mirred</c>, <c>ifb</c> and <c>pfifo</c> are needed.
/// </summary>
public sealed class TcShaper
{
    private const string Tc = "tc";
    private const string Ip = "ip";
    private readonly string? networkNamespace;
    private readonly ILogger logger;

    /// <summary>Creates a shaper for devices in the host's network namespace, or in <paramref name="networkNamespace"/> (tests, containers).</summary>
    public TcShaper(string? networkNamespace = null, ILogger<TcShaper>? logger = null)
    {
        if (networkNamespace is not null && (networkNamespace.Length == 0 || networkNamespace.Contains('/', StringComparison.Ordinal)))
        {
            throw new ArgumentException($"Network namespace '{networkNamespace}' is invalid.", nameof(networkNamespace));
        }

        this.networkNamespace = networkNamespace;
        this.logger = logger ?? NullLogger<TcShaper>.Instance;
    }

    /// <summary>The IFB device that shapes traffic coming from <paramref name="device"/>.</summary>
    public static string IfbNameFor(string device)
    {
        ValidateDevice(device);
        uint hash = 2166136261;
        foreach (var c in device)
        {
            hash = (hash ^ c) * 16777619;
        }

        return string.Create(CultureInfo.InvariantCulture, $"dcvi{hash:x8}");
    }

    /// <summary>
    /// Shapes <paramref name="device"/>: <paramref name="towardsGuest"/> on its egress, <paramref name="fromGuest"/> on its
    /// ingress through an IFB. Replaces any shaping already there. An unlimited direction is left unshaped.
    /// On failure everything this call added is removed again and a <see cref="ShapingException"/> carries tc's message.
    /// </summary>
    public async Task ApplyAsync(string device, BandwidthLimit towardsGuest, BandwidthLimit fromGuest, CancellationToken cancellationToken = default)
    {
        ValidateDevice(device);
        towardsGuest.Validate();
        fromGuest.Validate();
        await RemoveAsync(device, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!towardsGuest.IsUnlimited)
            {
                await AddHtbAsync(device, towardsGuest, cancellationToken).ConfigureAwait(false);
            }

            if (!fromGuest.IsUnlimited)
            {
                var ifb = IfbNameFor(device);
                await RunAsync(Ip, ["link", "add", ifb, "type", "ifb"], cancellationToken).ConfigureAwait(false);
                await RunAsync(Ip, ["link", "set", "dev", ifb, "txqueuelen", "1000", "up"], cancellationToken).ConfigureAwait(false);
                await AddHtbAsync(ifb, fromGuest, cancellationToken).ConfigureAwait(false);
                await RunAsync(Tc, ["qdisc", "add", "dev", device, "handle", "ffff:", "ingress"], cancellationToken).ConfigureAwait(false);
                await RunAsync(Tc, ["filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "prio", "1", "u32", "match", "u32", "0", "0",
                    "action", "mirred", "egress", "redirect", "dev", ifb], cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await RemoveAsync(device, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        Log.Shaped(logger, device, towardsGuest.ToString(), fromGuest.ToString());
    }

    /// <summary>Removes the shaping of <paramref name="device"/> and its IFB. Safe to call when nothing (or the tap itself) is gone.</summary>
    public async Task RemoveAsync(string device, CancellationToken cancellationToken = default)
    {
        ValidateDevice(device);
        // Each step may find nothing to delete (never shaped, or the tap vanished with its VM): that is success.
        await TryRunAsync(Tc, ["qdisc", "del", "dev", device, "root"], cancellationToken).ConfigureAwait(false);
        await TryRunAsync(Tc, ["qdisc", "del", "dev", device, "ingress"], cancellationToken).ConfigureAwait(false);
        if (await TryRunAsync(Ip, ["link", "del", IfbNameFor(device)], cancellationToken).ConfigureAwait(false))
        {
            Log.Removed(logger, device);
        }
    }

    /// <summary>The raw <c>tc -s class show</c> of <paramref name="device"/> (diagnostics).</summary>
    public async Task<string> DescribeAsync(string device, CancellationToken cancellationToken = default)
    {
        ValidateDevice(device);
        var result = await RunAsync(Tc, ["-s", "class", "show", "dev", device], cancellationToken).ConfigureAwait(false);
        return result.Output;
    }

    private Task AddHtbAsync(string device, BandwidthLimit limit, CancellationToken cancellationToken)
    {
        var rate = limit.AverageBytesPerSecond * 8;
        var ceil = Math.Max(rate, limit.PeakBytesPerSecond * 8);
        // HTB needs a bucket of at least one timer tick at the rate plus a GSO super-packet; the tier burst is usually larger.
        var burst = Math.Max(limit.BurstBytes, (limit.AverageBytesPerSecond / 250) + 65_536);
        var cburst = (ceil / 8 / 250) + 65_536;
        return AddAsync();

        async Task AddAsync()
        {
            await RunAsync(Tc, ["qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "1"], cancellationToken).ConfigureAwait(false);
            await RunAsync(Tc, ["class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb",
                "rate", Bits(rate), "ceil", Bits(ceil), "burst", Bytes(burst), "cburst", Bytes(cburst)], cancellationToken).ConfigureAwait(false);
            await RunAsync(Tc, ["qdisc", "add", "dev", device, "parent", "1:1", "handle", "10:", "pfifo", "limit", "1000"], cancellationToken).ConfigureAwait(false);
        }
    }

    private static string Bits(long bitsPerSecond) => bitsPerSecond.ToString(CultureInfo.InvariantCulture) + "bit";

    private static string Bytes(long bytes) => bytes.ToString(CultureInfo.InvariantCulture) + "b";

    private async Task<HostCommand.Result> RunAsync(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var result = await HostCommand.RunAsync(tool, WithNamespace(arguments), cancellationToken).ConfigureAwait(false);
        return result.EnsureSuccess();
    }

    private async Task<bool> TryRunAsync(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        (await HostCommand.RunAsync(tool, WithNamespace(arguments), cancellationToken).ConfigureAwait(false)).Succeeded;

    private List<string> WithNamespace(IReadOnlyList<string> arguments)
    {
        var list = new List<string>(arguments.Count + 2);
        if (networkNamespace is not null)
        {
            list.Add("-n");
            list.Add(networkNamespace);
        }

        list.AddRange(arguments);
        return list;
    }

    private static void ValidateDevice(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        if (device.Length > 15 || device.AsSpan().IndexOfAnyExcept("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") >= 0)
        {
            throw new ArgumentException($"Network device '{device}' is invalid: at most 15 letters, digits, '_', '.' or '-'.", nameof(device));
        }
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Shaped {Device}: towards guest {TowardsGuest}, from guest {FromGuest}")]
    public static partial void Shaped(ILogger logger, string device, string towardsGuest, string fromGuest);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Removed the shaping of {Device}")]
    public static partial void Removed(ILogger logger, string device);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Bandwidth enforcement: {Mode} ({Reason})")]
    public static partial void EnforcementChosen(ILogger logger, string mode, string reason);
}
