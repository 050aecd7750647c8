using Natd.Control.Lab;

namespace Natd.Tests.EndToEnd;

/// <summary>
/// One collection for every end-to-end test: they share the machine's namespaces and CPU, so they
/// run one at a time (xunit.runner.json also turns off collection parallelism).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EndToEndCollection : ICollectionFixture<StaleLabCleanup>
{
    public const string Name = "EndToEnd";
}

/// <summary>Removes namespaces that crashed earlier runs left behind, once per test run.</summary>
public sealed class StaleLabCleanup
{
    public StaleLabCleanup()
    {
        if (Environment.IsPrivilegedProcess)
        {
            Removed = LabTopology.CleanupStale();
        }
    }

    public IReadOnlyList<string> Removed { get; } = [];
}

/// <summary>A fact that needs root (network namespaces); skipped with the reason otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Skip = RootRequirement.Reason;
        }
    }
}

/// <summary>A theory that needs root (network namespaces); skipped with the reason otherwise.</summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Skip = RootRequirement.Reason;
        }
    }
}

internal static class RootRequirement
{
    public const string Reason =
        "end-to-end tests create network namespaces and veths: run as root (CI does); install tools with control/install-deps.sh";
}
