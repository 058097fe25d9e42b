using Microsoft.Extensions.Logging;

namespace DeCloud.Benchmarks.Relay;

/// <summary>Relay warnings to stderr when <c>DCR_BENCH_VERBOSE=1</c>, to explain a failed measurement.</summary>
internal sealed class StderrLoggerFactory : ILoggerFactory
{
    public static ILoggerFactory? FromEnvironment() =>
        Environment.GetEnvironmentVariable("DCR_BENCH_VERBOSE") == "1" ? new StderrLoggerFactory() : null;

    public ILogger CreateLogger(string categoryName) => new StderrLogger(categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class StderrLogger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Console.Error.WriteLine($"# {logLevel} {category}[{eventId.Id}]: {formatter(state, exception)}");
            }
        }
    }
}
