using System.Net;
using DeCloud.Core;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Registry;
using DeCloud.Core.Scheduling;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator.Agents;
using DeCloud.Orchestrator.Api;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace DeCloud.Orchestrator;

/// <summary>What <see cref="OrchestratorServiceCollectionExtensions.AddDeCloudOrchestrator"/> returns, for further configuration.</summary>
public sealed class OrchestratorBuilder
{
    internal OrchestratorBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection the orchestrator was added to.</summary>
    public IServiceCollection Services { get; }
}

/// <summary>DI registration of the orchestrator's services.</summary>
public static class OrchestratorServiceCollectionExtensions
{
    /// <summary>
    /// Adds the orchestrator: its SQLite store, agent sessions, the gRPC service, the HTTP API's services,
    /// problem details, OpenAPI, health checks and metrics. Idempotent: a second call registers nothing twice.
    /// </summary>
    public static OrchestratorBuilder AddDeCloudOrchestrator(this IServiceCollection services, Action<OrchestratorOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<OrchestratorOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(OrchestratorStore)))
        {
            return new OrchestratorBuilder(services);
        }

        options.Validate(o => o.Validate().Count == 0, "Orchestrator options are invalid.").ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<OrchestratorOptions>, OrchestratorOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        Security.OrchestratorSecurity.Add(services);
        AddCore(services);
        services.TryAddSingleton(sp => new OrchestratorStore(
            sp.GetRequiredService<SqliteDatabase>(), sp.GetRequiredService<NodeRegistry>(), sp.GetRequiredService<NodePlacement>()));
        services.TryAddSingleton(sp => new NodePlacement(sp.GetRequiredService<TimeProvider>(), sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton<AgentSessions>();
        services.TryAddSingleton<RelayAssigner>();
        services.TryAddSingleton<OrchestratorMetrics>();
        services.TryAddSingleton<VmService>();
        services.TryAddSingleton<NodeReputation>();
        services.AddHostedService<StartupRecovery>();
        services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 4 * 1024 * 1024;
            o.EnableDetailedErrors = true;
        });
        services.AddProblemDetails();
        services.AddOpenApi();
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: ["ready"]);
        services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(OrchestratorMetrics.MeterName, "DeCloud.*")
            .AddPrometheusExporter());
        Billing.OrchestratorBillingRegistration.AddOrchestratorBilling(services);
        return new OrchestratorBuilder(services);
    }

    /// <summary>
    /// Core's control plane on the orchestrator's one SQLite file: the node registry (heartbeats, health monitor,
    /// reputation) with its heartbeat timing from <see cref="OrchestratorOptions"/>, observed by the scheduler's
    /// inventory and the agent sessions. The orchestrator's migrations run before Core's stores create their tables.
    /// </summary>
    private static void AddCore(IServiceCollection services)
    {
        services.TryAddSingleton<INodeStore>(sp =>
        {
            var db = sp.GetRequiredService<SqliteDatabase>();
            OrchestratorStore.Migrate(db);
            return new SqliteNodeStore(db);
        });
        services.TryAddSingleton<IVmStore>(sp =>
        {
            var db = sp.GetRequiredService<SqliteDatabase>();
            OrchestratorStore.Migrate(db);
            return new SqliteVmStore(db);
        });
        services.AddOptions<DeCloudCoreOptions>().Configure<IOptions<OrchestratorOptions>>((core, orchestrator) =>
        {
            var o = orchestrator.Value;
            core.DatabasePath = Path.Combine(o.DataDirectory, "orchestrator.db");
            core.Registry.HeartbeatInterval = o.HeartbeatInterval;
            core.Registry.OfflineAfter = o.OfflineAfter;
            core.Registry.CheckInterval = o.OfflineAfter / 4;
        });
        services.AddDeCloudCore()
            .AddNodeRegistryObserver<NodeStatusObserver>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<INodeRegistryObserver, NodeInventorySync>(sp => sp.GetRequiredService<NodePlacement>().Sync));
    }

    /// <summary>
    /// Maps the agent gRPC service, the <c>/api/v1</c> JSON API, <c>/openapi/v1.json</c>,
    /// <c>/healthz/live</c>, <c>/healthz/ready</c> and <c>/metrics</c> (Prometheus).
    /// </summary>
    public static IEndpointRouteBuilder MapDeCloudOrchestrator(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGrpcService<AgentControlService>();
        ApiEndpoints.Map(endpoints);
        endpoints.MapOpenApi();
        endpoints.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = _ => false });
        endpoints.MapHealthChecks("/healthz/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        return endpoints;
    }
}

/// <summary>The addresses a started orchestrator listens on.</summary>
/// <param name="Api">The HTTP JSON API (HTTP/1.1).</param>
/// <param name="Agents">The agents' gRPC endpoint (cleartext HTTP/2).</param>
public sealed record OrchestratorAddresses(Uri Api, Uri Agents);

/// <summary>Builds the reference orchestrator as a web application.</summary>
public static class OrchestratorApplication
{
    /// <summary>
    /// Creates the orchestrator from <paramref name="args"/> (ASP.NET Core configuration: appsettings.json,
    /// <c>DECLOUD_</c> environment variables, <c>--Orchestrator:ApiUrl=...</c>). Two Kestrel endpoints: the API
    /// on <see cref="OrchestratorOptions.ApiUrl"/> (HTTP/1.1) and agents' gRPC on <see cref="OrchestratorOptions.AgentUrl"/>
    /// (cleartext HTTP/2, which cannot share a port with HTTP/1.1 without TLS).
    /// </summary>
    public static WebApplication Create(string[] args, Action<OrchestratorOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args });
        builder.Configuration.AddEnvironmentVariables("DECLOUD_");
        var section = builder.Configuration.GetSection(OrchestratorOptions.SectionName);
        builder.Services.Configure<OrchestratorOptions>(section);
        var bound = new OrchestratorOptions();
        section.Bind(bound);
        configure?.Invoke(bound);
        var errors = bound.Validate();
        if (errors.Count > 0)
        {
            throw new OptionsValidationException(OrchestratorOptions.SectionName, typeof(OrchestratorOptions), errors);
        }

        var listeners = new Listeners();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(EndPoint(bound.ApiUrl), o =>
            {
                o.Protocols = HttpProtocols.Http1;
                listeners.Api = o;
            });
            k.Listen(EndPoint(bound.AgentUrl), o =>
            {
                o.Protocols = HttpProtocols.Http2;
                listeners.Agents = o;
            });
        });
        builder.Services.AddSingleton(listeners);
        builder.Services.AddDeCloudOrchestrator(configure);
        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapDeCloudOrchestrator();
        return app;
    }

    /// <summary>The bound addresses of an orchestrator created by <see cref="Create"/> (after it started).</summary>
    public static OrchestratorAddresses Addresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var l = app.Services.GetRequiredService<Listeners>();
        return new OrchestratorAddresses(Url(l.Api!.IPEndPoint!), Url(l.Agents!.IPEndPoint!));
    }

    private static Uri Url(IPEndPoint ep) =>
        new(ep.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"http://[{ep.Address}]:{ep.Port}/" : $"http://{ep.Address}:{ep.Port}/");

    private static IPEndPoint EndPoint(string url)
    {
        var u = new Uri(url);
        var address = u.Host is "localhost" ? IPAddress.Loopback
            : u.Host is "*" or "+" or "0.0.0.0" ? IPAddress.Any
            : IPAddress.TryParse(u.Host.Trim('[', ']'), out var ip) ? ip
            : throw new OptionsValidationException(OrchestratorOptions.SectionName, typeof(OrchestratorOptions), [$"'{url}': the host must be an IP address, localhost or *."]);
        return new IPEndPoint(address, u.Port);
    }

    private sealed class Listeners
    {
        public ListenOptions? Api { get; set; }

        public ListenOptions? Agents { get; set; }
    }
}

/// <summary>Turns <see cref="OrchestratorOptions.Validate"/> into start-up failures that name the property.</summary>
internal sealed class OrchestratorOptionsValidator : IValidateOptions<OrchestratorOptions>
{
    public ValidateOptionsResult Validate(string? name, OrchestratorOptions options)
    {
        var errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// At start: loads the node registry and rebuilds placement from it and the stored VMs. Nodes keep their stored status;
/// the registry's health monitor marks those that do not dial in again within <c>OfflineAfter</c> offline (the time the
/// orchestrator was down is not held against them). Pending commands stay queued.
/// </summary>
internal sealed class StartupRecovery(OrchestratorStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.InitializeAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Ready when the SQLite store answers.</summary>
internal sealed class StoreHealthCheck(OrchestratorStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            store.Ping();
            return Task.FromResult(HealthCheckResult.Healthy());
        }
        catch (Microsoft.Data.Sqlite.SqliteException ex)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("SQLite store is unavailable.", ex));
        }
    }
}
