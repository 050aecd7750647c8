using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;

namespace Natd.Tests.Nat.Policy;

/// <summary>The pieces a policy component is built from, without an engine: settings, a session table, counters.</summary>
internal sealed class PolicyFixture
{
    public const long T0 = 1_000_000;

    public PolicyFixture(Func<NatSettings, NatSettings>? tweak = null)
    {
        Settings = EngineHarness.LabSettings();
        if (tweak != null)
        {
            Settings = tweak(Settings);
        }
        Table = new SessionTable(64, new PortAllocator(1, Settings.PortMin, Settings.PortMax, seed: 7), 7);
        for (int c = 0; c < TimeoutMs.Length; c++)
        {
            TimeoutMs[c] = SessionTable.TimeoutSeconds((LruClass)c, Settings.Timeouts) * 1000L;
        }
        Sessions = new LiveSessions(Table, TimeoutMs);
        Rules = new RuleSet(Settings);
    }

    public NatSettings Settings { get; }
    public SessionTable Table { get; }
    public long[] TimeoutMs { get; } = new long[4];
    public LiveSessions Sessions { get; }
    public RuleSet Rules { get; }
    public NatCounters Counters { get; } = new();

    public PacketContext Context(long nowMs) => new(Counters, nowMs);

    public static FlowKey Key(string src, int sport, string dst, int dport, byte proto)
        => new(Ipv4.Parse(src), Ipv4.Parse(dst), FlowKey.PortToRaw((ushort)sport), FlowKey.PortToRaw((ushort)dport), proto);
}
