using System.Text.Json;

namespace Natd.Tests.Daemon;

/// <summary>
/// The runtime settings natd ships with (natd.csproj, written to natd.runtimeconfig.json beside
/// natd.dll, which the test project copies with its reference to natd).
/// </summary>
public class RuntimeConfigTests
{
    /// <summary>
    /// Idle thread-pool workers must not spin (sched_yield) before they sleep: on a poller's core
    /// each spin is a context switch away from the poller (docs/architecture.md, "Actors").
    /// </summary>
    [Fact]
    public void Thread_pool_workers_do_not_spin_before_they_sleep()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "natd.runtimeconfig.json");
        Assert.True(File.Exists(path), $"{path} is missing: the test reads natd's own runtime config");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        JsonElement props = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.True(props.TryGetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out JsonElement spin),
            "natd.runtimeconfig.json does not set System.Threading.ThreadPool.UnfairSemaphoreSpinLimit");
        Assert.Equal(0, spin.GetInt32());
    }
}
