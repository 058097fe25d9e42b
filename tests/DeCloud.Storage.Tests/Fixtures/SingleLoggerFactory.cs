using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace DeCloud.Storage.Tests.Fixtures;

/// <summary>Every logger asked for is the one fake logger (so a test sees a component's records in one place).</summary>
public sealed class SingleLoggerFactory(FakeLogger logger) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => logger;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }
}
