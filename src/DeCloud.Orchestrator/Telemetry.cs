using System.Diagnostics.Metrics;

namespace DeCloud.Orchestrator;

/// <summary>The orchestrator's meter (<c>DeCloud.Orchestrator</c>) and its instruments.</summary>
internal sealed class OrchestratorMetrics : IDisposable
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "DeCloud.Orchestrator";

    private readonly Meter _meter;

    public OrchestratorMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        AgentsConnected = _meter.CreateUpDownCounter<int>("decloud.orchestrator.agents.connected", "{agent}", "Agents with an open control stream.");
        Heartbeats = _meter.CreateCounter<long>("decloud.orchestrator.heartbeats", "{heartbeat}", "Heartbeats received from agents.");
        CommandsSent = _meter.CreateCounter<long>("decloud.orchestrator.commands.sent", "{command}", "Commands written to agent streams (including re-sends).");
        Acks = _meter.CreateCounter<long>("decloud.orchestrator.commands.acks", "{ack}", "Command acknowledgements applied, by status.");
        Registrations = _meter.CreateCounter<long>("decloud.orchestrator.registrations", "{registration}", "Agent registrations, by outcome.");
        VmsCreated = _meter.CreateCounter<long>("decloud.orchestrator.vms.created", "{vm}", "VMs accepted through the API.");
        NodesOffline = _meter.CreateCounter<long>("decloud.orchestrator.nodes.offline", "{node}", "Nodes marked offline after missing heartbeats.");
    }

    public UpDownCounter<int> AgentsConnected { get; }

    public Counter<long> Heartbeats { get; }

    public Counter<long> CommandsSent { get; }

    public Counter<long> Acks { get; }

    public Counter<long> Registrations { get; }

    public Counter<long> VmsCreated { get; }

    public Counter<long> NodesOffline { get; }

    public void Dispose() => _meter.Dispose();
}
