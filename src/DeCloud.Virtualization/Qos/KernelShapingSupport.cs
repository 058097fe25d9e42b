using System.Globalization;

namespace DeCloud.Virtualization.Qos;

/// <summary>What the host kernel's traffic control can do, found by trying it in a throw-away network namespace.</summary>
/// <param name="LibvirtBandwidth">libvirt's <c>&lt;bandwidth&gt;</c> works: sfq, fw and police are present.</param>
/// <param name="TcShaper">The <see cref="TcShaper"/> works: htb, ingress, u32, mirred, pfifo and ifb are present.</param>
/// <param name="Missing">The missing pieces, e.g. <c>sch_sfq cls_fw act_police</c>.</param>
public sealed record KernelShapingSupport(bool LibvirtBandwidth, bool TcShaper, string Missing)
{
    private static readonly Lazy<Task<KernelShapingSupport>> Cached = new(() => ProbeCoreAsync(CancellationToken.None));

    /// <summary>The enforcement to use: libvirt where it works, the tc shaper otherwise.</summary>
    public DomainXml.BandwidthEnforcement PreferredEnforcement =>
        LibvirtBandwidth ? DomainXml.BandwidthEnforcement.Libvirt : DomainXml.BandwidthEnforcement.TcShaper;

    /// <summary>Probes once per process (needs root, <c>ip</c> and <c>tc</c>) and caches the answer.</summary>
    public static Task<KernelShapingSupport> ProbeAsync(CancellationToken cancellationToken = default) =>
        Cached.Value.WaitAsync(cancellationToken);

    private static async Task<KernelShapingSupport> ProbeCoreAsync(CancellationToken cancellationToken)
    {
        var ns = string.Create(CultureInfo.InvariantCulture, $"dcv-probe-{Environment.ProcessId}");
        var missing = new List<string>();
        await HostCommand.RunAsync("ip", ["netns", "del", ns], cancellationToken).ConfigureAwait(false);
        (await HostCommand.RunAsync("ip", ["netns", "add", ns], cancellationToken).ConfigureAwait(false)).EnsureSuccess();
        try
        {
            (await Ns(["ip", "link", "add", "dcvp0", "type", "veth", "peer", "name", "dcvp1"]).ConfigureAwait(false)).EnsureSuccess();
            await Check("sch_htb", ["tc", "qdisc", "add", "dev", "dcvp0", "root", "handle", "1:", "htb", "default", "1"]).ConfigureAwait(false);
            await Ns(["tc", "class", "add", "dev", "dcvp0", "parent", "1:", "classid", "1:1", "htb", "rate", "10mbit"]).ConfigureAwait(false);
            await Check("sch_sfq", ["tc", "qdisc", "add", "dev", "dcvp0", "parent", "1:1", "handle", "2:", "sfq", "perturb", "10"]).ConfigureAwait(false);
            await Check("sch_pfifo", ["tc", "qdisc", "replace", "dev", "dcvp0", "parent", "1:1", "handle", "2:", "pfifo", "limit", "100"]).ConfigureAwait(false);
            await Check("cls_fw", ["tc", "filter", "add", "dev", "dcvp0", "parent", "1:0", "protocol", "all", "prio", "1", "handle", "1", "fw", "flowid", "1:1"]).ConfigureAwait(false);
            await Check("sch_ingress", ["tc", "qdisc", "add", "dev", "dcvp0", "handle", "ffff:", "ingress"]).ConfigureAwait(false);
            await Check("act_police", ["tc", "filter", "add", "dev", "dcvp0", "parent", "ffff:", "protocol", "all", "prio", "1", "u32", "match", "u32", "0", "0",
                "police", "rate", "10mbit", "burst", "10k", "drop", "flowid", ":1"]).ConfigureAwait(false);
            await Check("cls_u32+act_mirred", ["tc", "filter", "add", "dev", "dcvp0", "parent", "ffff:", "protocol", "all", "prio", "2", "u32", "match", "u32", "0", "0",
                "action", "mirred", "egress", "redirect", "dev", "dcvp1"]).ConfigureAwait(false);
            await Check("ifb", ["ip", "link", "add", "dcvp2", "type", "ifb"]).ConfigureAwait(false);
        }
        finally
        {
            await HostCommand.RunAsync("ip", ["netns", "del", ns], CancellationToken.None).ConfigureAwait(false);
        }

        bool Has(string piece) => !missing.Contains(piece);
        return new KernelShapingSupport(
            Has("sch_htb") && Has("sch_sfq") && Has("cls_fw") && Has("act_police") && Has("sch_ingress"),
            Has("sch_htb") && Has("sch_pfifo") && Has("sch_ingress") && Has("cls_u32+act_mirred") && Has("ifb"),
            string.Join(' ', missing));

        Task<HostCommand.Result> Ns(string[] command) =>
            HostCommand.RunAsync("ip", ["netns", "exec", ns, .. command], cancellationToken);

        async Task Check(string piece, string[] command)
        {
            if (!(await Ns(command).ConfigureAwait(false)).Succeeded)
            {
                missing.Add(piece);
            }
        }
    }
}
