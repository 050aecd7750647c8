using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Unicode;
using Microsoft.Extensions.Logging;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Sends each event as one RFC 5424 message in one UDP datagram (RFC 5426):
/// <c>&lt;134&gt;1 2026-11-21T13:47:01.123Z natd natd - NATEVENT [nat@32473 event="session-create" proto="udp" inside="10.0.0.2:40000" external="198.51.100.1:51795"] session-create udp 10.0.0.2:40000 198.51.100.1:51795</c>.
/// Carrier-grade events carry their own parameters: port-block-allocate, -release and -interim
/// <c>inside="10.64.0.7" external="198.51.100.1" port-low="1024" port-high="1535"</c> (plus
/// <c>port-step</c> when above 1 and <c>proto</c> when the block is one protocol's), subscriber-limit
/// <c>inside</c> and <c>limit</c> (sessions, ports, rate, blocks), pool-threshold <c>external</c> and
/// <c>percent</c>, pairing-spill <c>inside</c> and <c>external</c>.
/// PRI is facility * 8 + 6 (informational). The SD-ID uses enterprise number 32473, which RFC 5612
/// reserves for documentation: an operator with a private enterprise number would substitute it.
/// The MSG part repeats the fields for collectors that show MSG only; it is plain ASCII, so it
/// carries no BOM (RFC 5424 section 6.4).
/// </summary>
internal sealed class SyslogSink(SyslogSinkSettings settings, EventLogStats stats, ILogger logger) : INatEventSink
{
    /// <summary>Severity informational (RFC 5424 table 2).</summary>
    internal const int Severity = 6;

    /// <summary>The structured data ID, with the documentation enterprise number (RFC 5612).</summary>
    internal const string SdId = "nat@32473";

    private readonly byte[] _datagram = new byte[1024]; // a 255-character HOSTNAME still fits
    private readonly string _prefixHost = settings.Hostname;
    private readonly int _pri = settings.Facility * 8 + Severity;
    private Socket? _socket;
    private bool _reported;

    public string Name => "syslog";

    public void Write(in NatEvent e, long unixMs)
    {
        int n = Format(_datagram, in e, unixMs, _pri, _prefixHost);
        try
        {
            _socket ??= new Socket(settings.Server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _socket.SendTo(_datagram.AsSpan(0, n), SocketFlags.None, settings.Server);
            stats.SyslogWritten++;
            if (_reported)
            {
                _reported = false;
                EventLogLog.SinkRecovered(logger, Name);
            }
        }
        catch (SocketException ex)
        {
            stats.SyslogErrors++;
            if (!_reported)
            {
                _reported = true;
                EventLogLog.SinkFailed(logger, Name, settings.Server.ToString(), ex.Message);
            }
        }
    }

    public void Flush()
    {
    }

    public void Dispose() => _socket?.Dispose();

    /// <summary>Formats one RFC 5424 message into <paramref name="dest"/>; returns its length in bytes.</summary>
    internal static int Format(Span<byte> dest, in NatEvent e, long unixMs, int pri, string hostname)
    {
        string name = EventText.Name(e.Type);
        Utf8.TryWrite(dest, CultureInfo.InvariantCulture, $"<{pri}>1 {new TimeText(unixMs)} {hostname} natd - NATEVENT [{SdId} event=\"{name}\"", out int n);
        int w;
        switch (EventText.Shape(e.Type))
        {
            case EventShape.PortBlock:
            {
                var inside = new AddressText(e.InsideAddress);
                var external = new AddressText(e.ExternalAddress);
                if (e.Protocol != 0)
                {
                    Utf8.TryWrite(dest[n..], $" proto=\"{EventText.Protocol(e.Protocol)}\"", out w);
                    n += w;
                }
                Utf8.TryWrite(dest[n..], CultureInfo.InvariantCulture,
                    $" inside=\"{inside}\" external=\"{external}\" port-low=\"{e.ExternalPort}\" port-high=\"{e.PortHigh}\"", out w);
                n += w;
                if (e.PortStep > 1)
                {
                    Utf8.TryWrite(dest[n..], CultureInfo.InvariantCulture, $" port-step=\"{e.PortStep}\"", out w);
                    n += w;
                }
                Utf8.TryWrite(dest[n..], CultureInfo.InvariantCulture, $"] {name} {inside} {external}:{e.ExternalPort}-{e.PortHigh}", out w);
                n += w;
                break;
            }
            case EventShape.SubscriberLimit:
            {
                var inside = new AddressText(e.InsideAddress);
                string limit = EventText.Limit(e.Detail);
                Utf8.TryWrite(dest[n..], $" inside=\"{inside}\" limit=\"{limit}\"] {name} {inside} {limit}", out w);
                n += w;
                break;
            }
            case EventShape.PoolThreshold:
            {
                var external = new AddressText(e.ExternalAddress);
                Utf8.TryWrite(dest[n..], CultureInfo.InvariantCulture, $" external=\"{external}\" percent=\"{e.Detail}\"] {name} {external} {e.Detail}%", out w);
                n += w;
                break;
            }
            case EventShape.Pairing:
            {
                var inside = new AddressText(e.InsideAddress);
                var external = new AddressText(e.ExternalAddress);
                Utf8.TryWrite(dest[n..], $" inside=\"{inside}\" external=\"{external}\"] {name} {inside} {external}", out w);
                n += w;
                break;
            }
            case EventShape.PcpMapping:
            {
                string proto = EventText.Protocol(e.Protocol);
                var inside = new EndpointText(e.InsideAddress, e.InsidePort);
                var external = new EndpointText(e.ExternalAddress, e.ExternalPort);
                if (e.Type == NatEventType.PcpMappingDeleted)
                {
                    string cause = EventText.Cause(e.Detail);
                    Utf8.TryWrite(dest[n..], $" proto=\"{proto}\" inside=\"{inside}\" external=\"{external}\" cause=\"{cause}\"] {name} {proto} {inside} {external} {cause}", out w);
                }
                else
                {
                    Utf8.TryWrite(dest[n..], CultureInfo.InvariantCulture,
                        $" proto=\"{proto}\" inside=\"{inside}\" external=\"{external}\" lifetime=\"{e.Lifetime}\"] {name} {proto} {inside} {external} {e.Lifetime}s", out w);
                }
                n += w;
                break;
            }
            default:
            {
                string proto = EventText.Protocol(e.Protocol);
                var inside = new EndpointText(e.InsideAddress, e.InsidePort);
                if (EventText.HasExternal(in e))
                {
                    var external = new EndpointText(e.ExternalAddress, e.ExternalPort);
                    Utf8.TryWrite(dest[n..], $" proto=\"{proto}\" inside=\"{inside}\" external=\"{external}\"] {name} {proto} {inside} {external}", out w);
                }
                else
                {
                    Utf8.TryWrite(dest[n..], $" proto=\"{proto}\" inside=\"{inside}\"] {name} {proto} {inside}", out w);
                }
                n += w;
                break;
            }
        }
        return n;
    }
}
