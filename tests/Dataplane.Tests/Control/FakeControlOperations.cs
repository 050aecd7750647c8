using Natd.Control.Api;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Control;

/// <summary>Records what the API asked and answers with set values.</summary>
internal sealed class FakeControlOperations : IControlOperations
{
    public int Flushes { get; private set; }
    public List<uint> FlushedExternals { get; } = [];
    public List<SessionSelector> Deletes { get; } = [];
    public List<TimeoutsChange> Changes { get; } = [];
    public Timeouts Current { get; set; } = new();
    public OperationResult ReloadAnswer { get; set; } = new(true, []);
    public string? RefuseTimeouts { get; set; }

    public Task<long> FlushAsync(uint external = 0, CancellationToken cancellationToken = default)
    {
        Flushes++;
        FlushedExternals.Add(external);
        return Task.FromResult(4L);
    }

    public Task<long> DeleteSessionsAsync(SessionSelector selector, CancellationToken cancellationToken = default)
    {
        Deletes.Add(selector);
        return Task.FromResult(selector.RemoteAddress == 0 ? 2L : 1L);
    }

    public List<MappingSelector> MappingDeletes { get; } = [];

    public Task<long> DeletePcpMappingAsync(MappingSelector selector, CancellationToken cancellationToken = default)
    {
        MappingDeletes.Add(selector);
        return Task.FromResult(selector.Port == 8080 || selector.Port == 18080 ? 1L : 0L);
    }

    public Task<OperationResult> ReloadAsync(CancellationToken cancellationToken = default) => Task.FromResult(ReloadAnswer);

    public Task<Timeouts> GetTimeoutsAsync(CancellationToken cancellationToken = default) => Task.FromResult(Current);

    public NatSettings Settings { get; set; } = Natd.Tests.Support.EngineHarness.LabSettings();

    public Task<NatSettings> GetNatSettingsAsync(CancellationToken cancellationToken = default) => Task.FromResult(Settings);

    public Task<OperationResult> SetTimeoutsAsync(TimeoutsChange change, CancellationToken cancellationToken = default)
    {
        Changes.Add(change);
        if (RefuseTimeouts is not null)
        {
            return Task.FromResult(new OperationResult(false, [RefuseTimeouts]));
        }
        Current = change.ApplyTo(Current);
        return Task.FromResult(new OperationResult(true, []));
    }
}
