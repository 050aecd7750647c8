using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using DotNetty.Common;
using DotNetty.Common.Internal.Logging;
using Microsoft.Extensions.Logging;

namespace Natd.Tests.Support;

/// <summary>
/// DotNetty's leak detector for the whole test run: Paranoid level (every buffer tracked, every
/// access recorded with its stack), and its reports ("LEAK: ...", logged at error level from the
/// finalizer of a buffer that was never released) captured here instead of lost. Set before any
/// DotNetty type initialises (a module initializer), because the detector takes its logger once.
/// </summary>
public static class LeakWatch
{
    private static readonly ConcurrentQueue<string> Reports = new();

    [ModuleInitializer]
    internal static void Install()
    {
        InternalLoggerFactory.DefaultFactory = LoggerFactory.Create(b => b.AddProvider(new Provider()).SetMinimumLevel(LogLevel.Error));
        ResourceLeakDetector.Level = ResourceLeakDetector.DetectionLevel.Paranoid;
    }

    /// <summary>
    /// Collects garbage and runs finalizers (where the detector reports), then returns the leak
    /// reports whose recorded stacks pass through <paramref name="marker"/> (a test class's full name
    /// and a dot, as stack frames write it), so tests running in parallel do not see each other's leaks.
    /// </summary>
    public static List<string> LeaksFrom(string marker)
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        var found = new List<string>();
        foreach (string r in Reports)
        {
            if (r.Contains(marker, StringComparison.Ordinal))
            {
                found.Add(r);
            }
        }
        return found;
    }

    private sealed class Provider : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Sink();

        public void Dispose()
        {
        }
    }

    private sealed class Sink : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            string text = formatter(state, exception);
            if (text.Contains("LEAK", StringComparison.Ordinal))
            {
                Reports.Enqueue(text);
            }
        }
    }
}
