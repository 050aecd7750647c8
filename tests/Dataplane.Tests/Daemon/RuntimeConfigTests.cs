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
        => Assert.Equal(0, Setting("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());

    /// <summary>
    /// Hot code is promoted from tier 0 as soon as it is called often, not once the control plane's
    /// start-up JIT work has quietened, and tier 1 keeps its PGO profile: after a start under load
    /// the pollers reach their steady speed in their first moments (docs/architecture.md, "Actors").
    /// </summary>
    [Fact]
    public void Call_counting_starts_at_once_and_tiered_pgo_stays_on()
    {
        Assert.Equal(0, Setting("System.Runtime.TieredCompilation.CallCountingDelayMs").GetInt32());
        Assert.True(Setting("System.Runtime.TieredPGO").GetBoolean());
        JsonElement? tiering = OptionalSetting("System.Runtime.TieredCompilation");
        Assert.True(tiering is null || tiering.Value.GetBoolean(), "tiered compilation is off: no tier 0, no PGO");
    }

    private static JsonElement Setting(string name)
    {
        JsonElement? value = OptionalSetting(name);
        Assert.True(value.HasValue, $"natd.runtimeconfig.json does not set {name}");
        return value.Value;
    }

    // A configProperties entry of natd.runtimeconfig.json, null when it has none of that name.
    private static JsonElement? OptionalSetting(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "natd.runtimeconfig.json");
        Assert.True(File.Exists(path), $"{path} is missing: the test reads natd's own runtime config");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        JsonElement props = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        return props.TryGetProperty(name, out JsonElement value) ? value.Clone() : null;
    }
}
