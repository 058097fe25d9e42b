using DeCloud.Agent.Control;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.Ports;
using DeCloud.Agent.State;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent;

/// <summary>What <see cref="AgentServiceCollectionExtensions.AddDeCloudAgent"/> returns, for further configuration.</summary>
public sealed class AgentBuilder
{
    internal AgentBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection the agent was added to.</summary>
    public IServiceCollection Services { get; }
}

/// <summary>DI registration of the node agent.</summary>
public static class AgentServiceCollectionExtensions
{
    /// <summary>
    /// Adds the agent: local SQLite state, the hypervisor named by <see cref="AgentOptions.Hypervisor"/>,
    /// the command executor, the port forwarder and the control-stream worker. Idempotent.
    /// </summary>
    public static AgentBuilder AddDeCloudAgent(this IServiceCollection services, Action<AgentOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<AgentOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(AgentState)))
        {
            return new AgentBuilder(services);
        }

        options.ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AgentOptions>>().Value;
            return new AgentState(new SqliteDatabase(Path.Combine(o.DataDirectory, "agent.db")));
        });
        services.TryAddSingleton<IHypervisor>(sp => HypervisorFactory.Create(sp.GetRequiredService<IOptions<AgentOptions>>().Value,
            sp.GetService<Microsoft.Extensions.Logging.ILoggerFactory>()));
        services.TryAddSingleton(sp => new TcpPortForwarder(sp.GetRequiredService<IOptions<AgentOptions>>().Value.PublicHost));
        services.TryAddSingleton<PublicPorts>();
        services.TryAddSingleton<AckOutbox>();
        services.TryAddSingleton<Storage.AgentStorage>();
        services.TryAddSingleton<AgentIdentity>();
        services.TryAddSingleton<Relaying.AgentRelay>();
        services.TryAddSingleton<AgentStatus>();
        services.TryAddSingleton<CommandExecutor>();
        services.AddHostedService<AgentWorker>();
        Security.AgentSecurityRegistration.Add(services);
        return new AgentBuilder(services);
    }
}

/// <summary>Builds the reference node agent as a generic host.</summary>
public static class AgentApplication
{
    /// <summary>
    /// Creates the agent from <paramref name="args"/> (appsettings.json, <c>DECLOUD_</c> environment variables,
    /// <c>--Agent:OrchestratorUrl=...</c>), then applies <paramref name="configure"/>.
    /// </summary>
    public static IHost Create(string[] args, Action<AgentOptions>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, DisableDefaults = false });
        builder.Configuration.AddEnvironmentVariables("DECLOUD_");
        builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection(AgentOptions.SectionName));
        builder.Services.AddDeCloudAgent(configure);
        return builder.Build();
    }
}

/// <summary>Turns <see cref="AgentOptions.Validate"/> into start-up failures that name the property.</summary>
internal sealed class AgentOptionsValidator : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions options)
    {
        var errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Creates the configured hypervisor.</summary>
internal static class HypervisorFactory
{
    public static IHypervisor Create(AgentOptions o, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory) => o.Hypervisor switch
    {
        "simulated" => new SimulatedHypervisor(),
        _ => new LibvirtHypervisor(o.LibvirtUri, loggerFactory, o.VmNetwork, o.VmBridge),
    };
}
