using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;

namespace Natd.Tests.Nat.Policy;

/// <summary>The forward table used directly: backend choice, hold-down after a refusal, the inbound flow opener.</summary>
public class ForwardTableTests
{
    private const string Ext = EngineHarness.External;
    private static readonly string[] Backends = ["10.0.0.2", "10.0.0.3", "10.0.0.4"];

    private static (PolicyFixture F, ForwardTable Table) Build(Balance balance, IReadOnlyList<ForwardRule>? rules = null)
    {
        var f = new PolicyFixture(s => s with
        {
            Rules = rules,
            Forwards =
            [
                new PortForward
                {
                    Protocol = IpProtocol.Tcp, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(8080, 8081),
                    Backends = [.. Backends.Select(b => new KeyValuePair<uint, ushort>(Ipv4.Parse(b), 8000))], Balance = balance,
                },
            ],
        });
        return (f, new ForwardTable(f.Settings, f.Sessions, f.Rules, f.Counters, seed: 42));
    }

    [Fact]
    public void Round_robin_takes_each_backend_in_turn()
    {
        var (_, t) = Build(Balance.RoundRobin);
        uint remote = Ipv4.Parse("198.51.100.2");
        int[] picks = [.. Enumerable.Range(0, 6).Select(_ => t.PickBackend(0, remote, PolicyFixture.T0))];
        Assert.Equal([0, 1, 2, 0, 1, 2], picks);
    }

    [Fact]
    public void A_refusing_backend_is_skipped_for_the_hold_down_then_chosen_again()
    {
        var (f, t) = Build(Balance.RoundRobin);
        uint remote = Ipv4.Parse("198.51.100.2");
        t.MarkBackendDown(ForwardTable.Tag(0, 1), PolicyFixture.T0);
        Assert.Equal(1, f.Counters.BackendRefusals);

        long during = PolicyFixture.T0 + ForwardTable.BackendHoldDownMs - 1;
        int[] picks = [.. Enumerable.Range(0, 3).Select(_ => t.PickBackend(0, remote, during))];
        Assert.Equal([0, 2, 2], picks); // backend 1's turn goes to the next one up

        long after = PolicyFixture.T0 + ForwardTable.BackendHoldDownMs;
        picks = [.. Enumerable.Range(0, 3).Select(_ => t.PickBackend(0, remote, after))];
        Assert.Equal([0, 1, 2], picks);
    }

    [Fact]
    public void Source_hash_sticks_a_client_to_one_backend_until_it_refuses()
    {
        var (_, t) = Build(Balance.SourceHash);
        uint remote = Ipv4.Parse("203.0.113.9");
        int first = t.PickBackend(0, remote, PolicyFixture.T0);
        Assert.All(Enumerable.Range(0, 5), _ => Assert.Equal(first, t.PickBackend(0, remote, PolicyFixture.T0)));

        t.MarkBackendDown(ForwardTable.Tag(0, first), PolicyFixture.T0);
        Assert.Equal((first + 1) % Backends.Length, t.PickBackend(0, remote, PolicyFixture.T0 + 1));
    }

    [Fact]
    public void With_every_backend_held_down_the_first_choice_is_taken_anyway()
    {
        var (_, t) = Build(Balance.RoundRobin);
        for (int b = 0; b < Backends.Length; b++)
        {
            t.MarkBackendDown(ForwardTable.Tag(0, b), PolicyFixture.T0);
        }
        Assert.Equal([0, 1], new[] { t.PickBackend(0, 1, PolicyFixture.T0 + 5), t.PickBackend(0, 1, PolicyFixture.T0 + 5) });
    }

    [Fact]
    public void A_stale_tag_after_a_reload_is_ignored()
    {
        var (f, t) = Build(Balance.RoundRobin);
        t.Update(f.Settings with { Forwards = [] });
        t.MarkBackendDown(ForwardTable.Tag(0, 1), PolicyFixture.T0);
        Assert.Equal(0, f.Counters.BackendRefusals);
        Assert.Equal(0, t.Count);
    }

    [Fact]
    public void The_opener_makes_a_forward_session_on_a_syn_and_drops_anything_else()
    {
        var (f, t) = Build(Balance.RoundRobin);
        var ack = PolicyFixture.Key("198.51.100.2", 40000, Ext, 8081, IpProtocol.Tcp);
        var ctx = f.Context(PolicyFixture.T0);
        Assert.True(t.TryOpen(ack, Tcp.Ack, ref ctx, out int s));
        Assert.Equal((-1, DropReason.NoSession), (s, ctx.DropReason));
        Assert.Equal(1, f.Counters.Drops[(int)DropReason.NoSession]);

        ctx = f.Context(PolicyFixture.T0);
        Assert.True(t.TryOpen(ack, Tcp.Syn, ref ctx, out s));
        Assert.True(s >= 0);
        ref Session ses = ref f.Table.Sessions[s];
        Assert.Equal(SessionOrigin.Forward, ses.Origin);
        Assert.Equal(PolicyFixture.Key(Backends[0], 8000, "198.51.100.2", 40000, IpProtocol.Tcp), ses.In2Out);
        Assert.Equal(ForwardTable.Tag(0, 0), f.Table.Mappings[ses.Mapping].Tag);
        Assert.True(t.StillHas(ses.In2Out, ses.Out2In));

        var elsewhere = PolicyFixture.Key("198.51.100.2", 40000, Ext, 9090, IpProtocol.Tcp);
        Assert.False(t.TryOpen(elsewhere, Tcp.Syn, ref ctx, out _)); // no forward: the caller goes on
    }

    [Fact]
    public void The_opener_obeys_an_inbound_deny_rule()
    {
        var (f, t) = Build(Balance.RoundRobin,
        [
            new ForwardRule { Name = "block", Sources = [Ipv4Prefix.Parse("203.0.113.0/24")], In = RuleInterface.Outside, Action = RuleAction.Deny },
        ]);
        var ctx = f.Context(PolicyFixture.T0);
        Assert.True(t.TryOpen(PolicyFixture.Key("203.0.113.5", 1234, Ext, 8080, IpProtocol.Tcp), Tcp.Syn, ref ctx, out int s));
        Assert.Equal((-1, DropReason.RuleDeny), (s, ctx.DropReason));
        Assert.Equal(0, f.Table.Count);
    }
}
