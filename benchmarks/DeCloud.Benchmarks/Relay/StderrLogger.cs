using Microsoft.Extensions.Logging;

namespace DeCloud.Benchmarks.Relay;

/// <summary>
/// Relay warnings to stderr when <c>DCR_BENCH_VERBOSE=1</c> (with <c>=debug</c> also every stream's end and reset
/// reason), to explain a failed measurement.
/// </summary>
internal sealed class StderrLoggerFactory(LogLevel minimum) : ILoggerFactory
{
    public static ILoggerFactory? FromEnvironment() => Environment.GetEnvironmentVariable("DCR_BENCH_VERBOSE") switch
    {
        "1" => new StderrLoggerFactory(LogLevel.Warning),
        "debug" => new StderrLoggerFactory(LogLevel.Debug),
        _ => null,
    };

    public ILogger CreateLogger(string categoryName) => new StderrLogger(categoryName, minimum);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class StderrLogger(string category, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Console.Error.WriteLine($"# {logLevel} {category}[{eventId.Id}]: {formatter(state, exception)}");
            }
        }
    }
}
