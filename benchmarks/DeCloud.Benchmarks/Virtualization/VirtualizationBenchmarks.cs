using System.Globalization;
using BenchmarkDotNet.Attributes;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Benchmarks.Virtualization;

/// <summary>Domain XML rendering against LINQ to XML, and one test-driver lifecycle cycle through the binding.</summary>
[MemoryDiagnoser]
public class VirtualizationBenchmarks
{
    private LibvirtConnection? connection;
    private int counter;

    [GlobalSetup]
    public void Setup() => connection = LibvirtConnection.Open("test:///default");

    [GlobalCleanup]
    public void Cleanup() => connection?.Dispose();

    [Benchmark(Baseline = true)]
    public string RenderXml_XDocument() => VirtualizationBaselines.RenderWithXDocument(VirtualizationBaselines.SampleDomain);

    [Benchmark]
    public string RenderXml_DomainXmlWriter() => DomainXmlWriter.Render(VirtualizationBaselines.SampleDomain);

    [Benchmark]
    public void TestDriverCycle_Binding()
    {
        using var d = connection!.Define(VirtualizationBaselines.TestDriverXml(string.Create(CultureInfo.InvariantCulture, $"dcv-bdn-{counter++}")));
        d.Start();
        d.Destroy();
        d.Undefine();
    }
}
