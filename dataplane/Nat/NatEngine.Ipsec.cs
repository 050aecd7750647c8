using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// IPsec masquerading lives in IpsecTunnels; the engine keeps the ISAKMP hooks of its UDP path.
public sealed partial class NatEngine
{
    /// <summary>ISAKMP's port (RFC 2408), kept as the source port when masquerading.</summary>
    public const ushort IsakmpPort = 500;

    private static readonly ushort IsakmpPortRaw = FlowKey.PortToRaw(IsakmpPort);

    /// <summary>
    /// IPsec masquerading state (ESP SPIs and ISAKMP cookies, VPN Masquerade HOWTO section 6). Lives
    /// in shard 0, where the router steers ESP, AH and UDP 500-to-500 traffic (other shards keep a
    /// token table). Owned by the engine's thread; its counts may be read elsewhere, a batch old.
    /// </summary>
    public IpsecMasq Ipsec => _ipsecTunnels.Masq;

    private IpsecMasq _ipsec => _ipsecTunnels.Masq;

    /// <summary>True when IPsec masquerading handles ESP, AH and ISAKMP.</summary>
    private bool IpsecOn => _ipsecTunnels.On;

    /// <summary>
    /// In2out UDP from port 500 to port 500 (ISAKMP) with IPsec masquerading on: see
    /// <see cref="IpsecTunnels.IsakmpIn2Out"/>. False when the ordinary UDP path should handle it.
    /// </summary>
    private bool TryIsakmpIn2Out(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, in FlowKey key, uint nextHop, ref PacketContext ctx, out Verdict verdict)
    {
        TunnelVerdict t = _ipsecTunnels.IsakmpIn2Out(ipSpan, ihl, key, PairedAddress(key.Source, _settings.Algs.Ipsec.IsakmpTimeout), ref ctx);
        verdict = t == TunnelVerdict.Pass ? Verdict.Drop : Finish(t, slot, ref length, ipSpan, ihl, nextHop, ref ctx);
        return t != TunnelVerdict.Pass;
    }

    /// <summary>
    /// Out2in UDP to port 500 with IPsec masquerading on: see <see cref="IpsecTunnels.IsakmpOut2In"/>.
    /// False when the ordinary path should handle it.
    /// </summary>
    private bool TryIsakmpOut2In(Span<byte> slot, ref int length, Span<byte> ipSpan, int ihl, in FlowKey key, ref PacketContext ctx, out Verdict verdict)
    {
        TunnelVerdict t = _ipsecTunnels.IsakmpOut2In(ipSpan, ihl, key, _addresses.PoolIndexOf(key.Destination) >= 0, ref ctx);
        verdict = t == TunnelVerdict.Pass ? Verdict.Drop : Finish(t, slot, ref length, ipSpan, ihl, 0, ref ctx);
        return t != TunnelVerdict.Pass;
    }

    /// <summary>ESP and ISAKMP entries as session rows for natctl (control path: allocates).</summary>
    private void CollectIpsecSessions(List<SessionInfo> into, long nowMs) => _ipsecTunnels.Collect(into, nowMs);
}
