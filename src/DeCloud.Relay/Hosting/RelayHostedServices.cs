using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace DeCloud.Relay.Hosting;

/// <summary>Turns invalid options into a start-up failure whose message names the property.</summary>
internal sealed class RelayServerOptionsValidator : IValidateOptions<RelayServerOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayServerOptions options)
    {
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail(ex.Message);
        }
    }
}

/// <summary>Turns invalid options into a start-up failure whose message names the property.</summary>
internal sealed class RelayClientOptionsValidator : IValidateOptions<RelayClientOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayClientOptions options)
    {
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail(ex.Message);
        }
    }
}

/// <summary>Starts and stops the registered <see cref="RelayServer"/> with the host.</summary>
internal sealed class RelayServerHostedService(RelayServer server) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => server.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => server.StopAsync(cancellationToken);
}

/// <summary>Mappings registered with <see cref="RelayClientBuilder.AddMapping"/>, published when the host starts.</summary>
internal sealed class RelayClientStartupMappings
{
    public List<RelayMappingRequest> Requests { get; } = [];
}

/// <summary>Starts the registered <see cref="RelayClient"/> with the host and publishes the configured mappings in the background.</summary>
internal sealed class RelayClientHostedService(RelayClient client, RelayClientStartupMappings mappings) : IHostedService
{
    private Task? _publishing;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await client.StartAsync(cancellationToken).ConfigureAwait(false);
        _publishing = Task.WhenAll(mappings.Requests.Select(r => client.AddMappingAsync(r)));
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await client.StopAsync(cancellationToken).ConfigureAwait(false);
        if (_publishing is not null)
        {
            try
            {
                await _publishing.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RelayException or InvalidOperationException or OperationCanceledException)
            {
                // Publishing stops with the client; refusals were logged by the client.
            }
        }
    }
}
