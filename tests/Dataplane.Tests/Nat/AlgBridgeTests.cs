using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;

namespace Natd.Tests.Nat;

/// <summary>
/// The ALG bridge on its own (no engine): an expectation's reserved port goes back to the
/// allocator when it expires, and a frame its helper kept past the timeout is given up exactly
/// once, counted lost, its reserved port freed once.
/// </summary>
public class AlgBridgeTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost, Ext = EngineHarness.External;
    private const long T0 = 1_000_000;
    private static readonly int TcpClass = SessionTable.ProtocolClass(IpProtocol.Tcp);

    private readonly PortAllocator _ports = new(1, 1024, 65535, seed: 7);
    private readonly AlgBridge _bridge;
    private readonly NatCounters _counters = new();

    public AlgBridgeTests()
    {
        var settings = EngineHarness.LabSettings() with { Algs = new AlgSettings { ExpectationTimeout = 5 } };
        _bridge = new AlgBridge(new SessionTable(64, _ports, 7, _counters.Table), settings, _counters);
    }

    /// <summary>What the engine records when an FTP PORT command leaves for the helper: a reserved external TCP port.</summary>
    private AlgPending PortCommand()
    {
        int reserved = _ports.Allocate(0, TcpClass, privileged: false);
        Assert.True(reserved > 0);
        var conn = new AlgConnection(IpProtocol.Tcp, Ipv4.Parse(In), 40000, Ipv4.Parse(Out), 21, Ipv4.Parse(Ext), 50000);
        var control = new FlowKey(Ipv4.Parse(In), Ipv4.Parse(Out), FlowKey.PortToRaw(40000), FlowKey.PortToRaw(21), IpProtocol.Tcp);
        return new AlgPending(AlgKind.Ftp, conn, AlgDirection.In2Out, Side.Outside, Ipv4.Parse("198.51.100.254"), (ushort)reserved, 0, _ports, control);
    }

    private bool Complete(in AlgPending p, long nowMs, params ExpectationRequest[] requests)
    {
        var actions = new AlgActions();
        actions.Expectations.AddRange(requests);
        var ctx = new PacketContext(_counters, nowMs);
        return _bridge.Complete(ref ctx, p, actions);
    }

    private static ExpectationRequest ActiveData(in AlgPending p)
        => new(ExpectationKind.Inbound, IpProtocol.Tcp, Ipv4.Parse(Out), 0, p.ReservedPort, Ipv4.Parse(In), 40001, UsesReservedPort: true);

    [Fact]
    public void An_expectation_keeps_its_reserved_port_until_it_expires_then_frees_it()
    {
        AlgPending p = PortCommand();
        Assert.True(Complete(p, T0, ActiveData(p)));
        Assert.Equal(1, _bridge.ExpectationCount);
        Assert.Equal(1, _ports.InUse(0, TcpClass));

        _bridge.Sweep(T0 + 4_999);
        Assert.Equal(1, _bridge.ExpectationCount);
        Assert.Equal(1, _ports.InUse(0, TcpClass));

        _bridge.Sweep(T0 + 5_000);
        Assert.Equal(0, _bridge.ExpectationCount);
        Assert.Equal(1, _bridge.Stats.ExpectationsExpired);
        Assert.Equal(0, _ports.InUse(0, TcpClass));
        Assert.True(_ports.TryReserve(0, TcpClass, p.ReservedPort)); // really free again
    }

    [Fact]
    public void An_unused_reservation_is_freed_when_the_frame_completes()
    {
        AlgPending p = PortCommand();
        Assert.True(Complete(p, T0)); // the helper asked for nothing (a NOOP)
        Assert.Equal(0, _ports.InUse(0, TcpClass));
        Assert.Equal(0, _bridge.ExpectationCount);
    }

    [Fact]
    public void A_frame_kept_by_its_helper_past_the_timeout_is_abandoned_once_and_counted()
    {
        _bridge.HelperTimeoutMs = 100;
        AlgPending p = PortCommand();
        long id = _bridge.Begin(p, T0);
        Assert.Equal(1, _bridge.FramesWithHelper);

        _bridge.Sweep(T0 + 100); // not yet past the timeout
        Assert.Equal(1, _bridge.FramesWithHelper);
        Assert.Equal(0, _bridge.Stats.Lost[(int)AlgKind.Ftp]);
        Assert.Equal(1, _ports.InUse(0, TcpClass));

        _bridge.Sweep(T0 + 101);
        Assert.Equal(0, _bridge.FramesWithHelper);
        Assert.Equal(1, _bridge.Stats.Lost[(int)AlgKind.Ftp]);
        Assert.Equal(0, _ports.InUse(0, TcpClass));

        _bridge.Sweep(T0 + 10_000);
        Assert.Equal(1, _bridge.Stats.Lost[(int)AlgKind.Ftp]);
        Assert.Equal(0, _ports.InUse(0, TcpClass));
        Assert.False(_bridge.End(id)); // it comes back late: the caller drops it
    }

    [Fact]
    public void A_frame_back_in_time_is_not_abandoned()
    {
        _bridge.HelperTimeoutMs = 100;
        AlgPending p = PortCommand();
        long id = _bridge.Begin(p, T0);
        Assert.True(_bridge.End(id));
        Assert.True(Complete(p, T0 + 50, ActiveData(p)));
        _bridge.Sweep(T0 + 1_000);
        Assert.Equal(0, _bridge.Stats.Lost[(int)AlgKind.Ftp]);
        Assert.Equal(1, _ports.InUse(0, TcpClass)); // the expectation holds it (5 s)
    }

    [Fact]
    public void A_refused_frame_is_dropped_through_the_context_and_counted_once()
    {
        AlgPending p = PortCommand();
        var actions = new AlgActions { Drop = true };
        var ctx = new PacketContext(_counters, T0);
        Assert.False(_bridge.Complete(ref ctx, p, actions));
        Assert.Equal(DropReason.AlgRefused, ctx.DropReason);
        Assert.Equal(1, _counters.Drops[(int)DropReason.AlgRefused]);
        Assert.Equal(0, _ports.InUse(0, TcpClass));
    }
}
