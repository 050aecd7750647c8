using System.Buffers.Binary;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Pcp;

/// <summary>
/// Builds PCP and NAT-PMP requests from the RFCs' wire formats (RFC 6887 sections 7, 11-13; RFC
/// 6886 section 3) as hex, and runs them through an engine as real frames to natd's inside address.
/// </summary>
internal static class PcpKit
{
    public const string Gateway = "10.0.0.1";

    /// <summary>Hex to bytes; spaces, '|' and line breaks are ignored.</summary>
    public static byte[] Hex(string hex) => Convert.FromHexString(new string([.. hex.Where(Uri.IsHexDigit)]));

    /// <summary>Bytes to lower-case hex with no separators.</summary>
    public static string ToHex(ReadOnlySpan<byte> b) => Convert.ToHexString(b).ToLowerInvariant();

    /// <summary>::ffff:a.b.c.d as 32 hex digits.</summary>
    public static string Mapped(string v4) => "00000000000000000000ffff" + ToHex(Ip(v4));

    public const string Nonce = "0102030405060708090a0b0c";

    /// <summary>A MAP request (RFC 6887 section 11.1) as hex: header, nonce, protocol, ports, suggested address, then <paramref name="options"/> (hex).</summary>
    public static string Map(int lifetime, string client, int protocol, int internalPort, int suggestedPort = 0, string suggestedAddress = "0.0.0.0",
        string options = "", string nonce = Nonce)
        => $"02 01 0000 {lifetime:x8} {Mapped(client)} {nonce} {protocol:x2} 000000 {internalPort:x4} {suggestedPort:x4} "
           + (suggestedAddress == "0.0.0.0" ? new string('0', 32) : Mapped(suggestedAddress)) + " " + options;

    /// <summary>A PEER request (RFC 6887 section 12.1) as hex.</summary>
    public static string Peer(int lifetime, string client, int protocol, int internalPort, string peer, int peerPort, string options = "", string nonce = Nonce)
        => $"02 02 0000 {lifetime:x8} {Mapped(client)} {nonce} {protocol:x2} 000000 {internalPort:x4} 0000 {new string('0', 32)} {peerPort:x4} 0000 {Mapped(peer)} " + options;

    /// <summary>A FILTER option (RFC 6887 section 13.3): prefix length as sent, port, IPv4-mapped address.</summary>
    public static string Filter(int prefixLength, int port, string address) => $"03 00 0014 00 {prefixLength:x2} {port:x4} {Mapped(address)} ";

    /// <summary>THIRD_PARTY (section 13.1).</summary>
    public static string ThirdParty(string address) => $"01 00 0010 {Mapped(address)} ";

    /// <summary>PREFER_FAILURE (section 13.2).</summary>
    public const string PreferFailure = "02 00 0000 ";

    /// <summary>An engine with PCP on (tweaked by <paramref name="pcp"/> and <paramref name="more"/>).</summary>
    public static EngineHarness Harness(Func<PcpSettings, PcpSettings>? pcp = null, Func<NatSettings, NatSettings>? more = null)
    {
        var settings = new PcpSettings { Enabled = true, RequestsPerSecond = 1000 };
        settings = pcp?.Invoke(settings) ?? settings;
        return new EngineHarness(s => (more ?? (x => x))(s with { Pcp = settings }));
    }

    /// <summary>
    /// Sends <paramref name="payload"/> from <paramref name="from"/>:<paramref name="sport"/> to
    /// UDP 5351 of natd's inside address; returns the reply's UDP payload after checking its
    /// headers (from 10.0.0.1:5351 back to the sender, valid checksums), or null when natd was silent.
    /// </summary>
    public static byte[]? Ask(EngineHarness h, byte[] payload, string from = EngineHarness.InsideHost, int sport = 40000)
    {
        byte[] frame = Udp(from, sport, Gateway, PcpWire.ServerPort, payload);
        Verdict v = h.Run(frame, Side.Inside, out byte[] o);
        if (v == Verdict.Drop)
        {
            return null;
        }
        Assert.Equal(Verdict.ToInside, v);
        Assert.Equal(Gateway, Src(o));
        Assert.Equal(from, Dst(o));
        Assert.Equal(PcpWire.ServerPort, SrcPort(o));
        Assert.Equal(sport, DstPort(o));
        Assert.True(ChecksumsValid(o), "reply checksums");
        Assert.Equal(InsideHostMac, o.AsSpan(0, 6).ToArray());
        int udp = L4Offset(o);
        int len = BinaryPrimitives.ReadUInt16BigEndian(o.AsSpan(udp + 4)) - 8;
        return o.AsSpan(udp + 8, len).ToArray();
    }

    /// <summary><see cref="Ask(EngineHarness, byte[], string, int)"/> of a hex request; the reply as hex ("" for silence).</summary>
    public static string AskHex(EngineHarness h, string request, string from = EngineHarness.InsideHost)
        => Ask(h, Hex(request), from) is { } r ? ToHex(r) : "";

    /// <summary>The PCP response header (RFC 6887 section 7.2) as hex.</summary>
    public static string Head(int opcode, int result, uint lifetime, uint epoch)
        => $"02{0x80 | opcode:x2}00{result:x2}{lifetime:x8}{epoch:x8}" + new string('0', 24);

    /// <summary>The assigned external port of a MAP or PEER reply.</summary>
    public static int ExternalPort(byte[] reply) => BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(42));

    /// <summary>Result code of a PCP reply.</summary>
    public static PcpResultCode Result(byte[] reply) => (PcpResultCode)reply[3];

    public static long Count(EngineHarness h, PcpOutcome o) => h.Engine.Counters.Table[NatCounters.PcpBase + (int)o];
}
