using System.Diagnostics;
using System.Globalization;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Benchmarks.Virtualization;

/// <summary>
/// <c>quick virtualization</c>: domain XML renders per second (vs the same document built with LINQ to XML), and
/// test-driver define+start+destroy+undefine cycles per second through our binding vs <c>virsh -c test:///default</c>
/// doing the same cycle, once as one virsh process per cycle (how shell-out code works) and once as one virsh
/// session running every cycle (virsh's own per-cycle cost).
/// </summary>
public sealed class VirtualizationQuickArea : IQuickArea
{
    public string Name => "virtualization";

    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var domain = VirtualizationBaselines.SampleDomain;
        // Warm both renderers past tiered JIT first: the framework's XDocument code starts precompiled, ours does not.
        Measure.Rate(() => DomainXmlWriter.Render(domain), TimeSpan.FromSeconds(1.5), batch: 100);
        Measure.Rate(() => VirtualizationBaselines.RenderWithXDocument(domain), TimeSpan.FromSeconds(1.5), batch: 100);
        var render = Measure.Rate(() => DomainXmlWriter.Render(domain), TimeSpan.FromSeconds(4), batch: 100);
        var xdoc = Measure.Rate(() => VirtualizationBaselines.RenderWithXDocument(domain), TimeSpan.FromSeconds(4), batch: 100);
        report.Result(("config", (object)"xml_render"), ("renders_per_s", render), ("render_us", 1e6 / render),
            ("xdocument_renders_per_s", xdoc), ("ratio_vs_xdocument", render / xdoc));

        using var conn = LibvirtConnection.Open("test:///default");
        var n = 0;
        void Cycle()
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"dcv-bench-{n++}");
            using var d = conn.Define(VirtualizationBaselines.TestDriverXml(name));
            d.Start();
            d.Destroy();
            d.Undefine();
        }

        Measure.Rate(Cycle, TimeSpan.FromSeconds(1.5), batch: 50);
        var binding = Measure.Rate(Cycle, TimeSpan.FromSeconds(5), batch: 50);

        var m = 0;
        var bindingAsync = await RateAsync(async () =>
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"dcv-bencha-{m++}");
            using var d = await conn.DefineAsync(VirtualizationBaselines.TestDriverXml(name), cancellationToken);
            await d.StartAsync(cancellationToken);
            await d.DestroyAsync(cancellationToken);
            await d.UndefineAsync(cancellationToken: cancellationToken);
        }, TimeSpan.FromSeconds(5));

        var xmlPath = Path.Combine(Path.GetTempPath(), $"dcv-bench-{Environment.ProcessId}.xml");
        await File.WriteAllTextAsync(xmlPath, VirtualizationBaselines.TestDriverXml("dcv-virsh"), cancellationToken);
        try
        {
            var cycle = "define " + xmlPath + "; start dcv-virsh; destroy dcv-virsh; undefine dcv-virsh";
            var perProcess = await RateAsync(() => VirshAsync([cycle], cancellationToken), TimeSpan.FromSeconds(8));

            const int batchCycles = 400;
            var script = string.Join("; ", Enumerable.Repeat(cycle, batchCycles));
            var sw = Stopwatch.StartNew();
            await VirshAsync([script], cancellationToken);
            var batch = batchCycles / sw.Elapsed.TotalSeconds;

            report.Result(("config", (object)"test_driver_cycle"), ("binding_cycles_per_s", binding), ("binding_async_cycles_per_s", bindingAsync),
                ("virsh_process_cycles_per_s", perProcess), ("virsh_session_cycles_per_s", batch),
                ("ratio_vs_virsh_process", binding / perProcess), ("ratio_vs_virsh_session", binding / batch),
                ("async_ratio_vs_virsh_session", bindingAsync / batch));
        }
        finally
        {
            File.Delete(xmlPath);
        }
    }

    private static async Task<double> RateAsync(Func<Task> op, TimeSpan budget)
    {
        await op();
        var sw = Stopwatch.StartNew();
        long count = 0;
        while (sw.Elapsed < budget)
        {
            await op();
            count++;
        }

        return count / sw.Elapsed.TotalSeconds;
    }

    private static async Task VirshAsync(string[] commands, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo("virsh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-q");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("test:///default");
        foreach (var c in commands)
        {
            psi.ArgumentList.Add(c);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = p.StandardError.ReadToEndAsync(cancellationToken);
        await p.WaitForExitAsync(cancellationToken);
        await stdout;
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException("virsh failed: " + await stderr);
        }
    }
}
