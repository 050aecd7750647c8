using System.Text.Unicode;
using Microsoft.Extensions.Logging;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Writes one JSON object per line, e.g.
/// <c>{"time":"2026-11-21T13:47:01.123Z","event":"session-create","protocol":"udp","inside":"10.0.0.2:40000","external":"198.51.100.1:51795"}</c>
/// ("external" is left out when the event has none). Carrier-grade events have their own fields:
/// <c>{"time":"...","event":"port-block-allocate","inside":"10.64.0.7","external":"198.51.100.1","port-low":1024,"port-high":1535}</c>
/// (also port-block-release and port-block-interim; "port-step" when the block's ports are not
/// consecutive, "protocol" when the block belongs to one protocol), subscriber-limit ("inside",
/// "limit": sessions, ports, rate or blocks), pool-threshold ("external", "percent") and
/// pairing-spill ("inside", "external"). Before a line would take the file past
/// <see cref="FileSinkSettings.MaxBytes"/> the file is rotated as logrotate does: path.(k-1) to
/// path.k, ..., path to path.1, the oldest beyond Keep deleted. After a failure the file is not
/// retried until the next drain, so an unwritable file costs one attempt per drain, not per event.
/// </summary>
internal sealed class JsonLinesFileSink(FileSinkSettings settings, EventLogStats stats, ILogger logger) : INatEventSink
{
    private readonly byte[] _line = new byte[512];
    private FileStream? _file;
    private long _size;
    private int _pending;      // lines written to the stream's buffer since the last flush
    private bool _failed;      // failed during this drain: skip until Flush
    private bool _reported;    // failure logged; cleared when writing works again

    public string Name => "file";

    public void Write(in NatEvent e, long unixMs)
    {
        if (_failed)
        {
            stats.FileErrors++;
            return;
        }
        int n = Format(_line, in e, unixMs);
        try
        {
            _file ??= Open();
            if (_size > 0 && _size + n > settings.MaxBytes)
            {
                Rotate();
            }
            _file.Write(_line, 0, n);
            _size += n;
            _pending++;
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            Fail(ex, _pending + 1);
        }
    }

    public void Flush()
    {
        if (_file is not null && !_failed)
        {
            try
            {
                _file.Flush();
                stats.FileWritten += _pending;
                _pending = 0;
                if (_reported)
                {
                    _reported = false;
                    EventLogLog.SinkRecovered(logger, Name);
                }
            }
            catch (Exception ex) when (IsIoFailure(ex))
            {
                Fail(ex, _pending);
            }
        }
        _failed = false;
    }

    public void Dispose()
    {
        Flush();
        CloseQuietly();
    }

    /// <summary>Formats one line (with its newline) into <paramref name="dest"/>; returns its length.</summary>
    internal static int Format(Span<byte> dest, in NatEvent e, long unixMs)
    {
        // Common head: time and event name; each shape then adds its fields (README, "NAT event log").
        Utf8.TryWrite(dest, $"{{\"time\":\"{new TimeText(unixMs)}\",\"event\":\"{EventText.Name(e.Type)}\"", out int n);
        int w;
        switch (EventText.Shape(e.Type))
        {
            case EventShape.PortBlock:
                if (e.Protocol != 0)
                {
                    Utf8.TryWrite(dest[n..], $",\"protocol\":\"{EventText.Protocol(e.Protocol)}\"", out w);
                    n += w;
                }
                Utf8.TryWrite(dest[n..],
                    $",\"inside\":\"{new AddressText(e.InsideAddress)}\",\"external\":\"{new AddressText(e.ExternalAddress)}\",\"port-low\":{e.ExternalPort},\"port-high\":{e.PortHigh}",
                    out w);
                n += w;
                if (e.PortStep > 1)
                {
                    Utf8.TryWrite(dest[n..], $",\"port-step\":{e.PortStep}", out w);
                    n += w;
                }
                break;
            case EventShape.SubscriberLimit:
                Utf8.TryWrite(dest[n..], $",\"inside\":\"{new AddressText(e.InsideAddress)}\",\"limit\":\"{EventText.Limit(e.Detail)}\"", out w);
                n += w;
                break;
            case EventShape.PoolThreshold:
                Utf8.TryWrite(dest[n..], $",\"external\":\"{new AddressText(e.ExternalAddress)}\",\"percent\":{e.Detail}", out w);
                n += w;
                break;
            case EventShape.Pairing:
                Utf8.TryWrite(dest[n..], $",\"inside\":\"{new AddressText(e.InsideAddress)}\",\"external\":\"{new AddressText(e.ExternalAddress)}\"", out w);
                n += w;
                break;
            case EventShape.PcpMapping:
                Utf8.TryWrite(dest[n..],
                    $",\"protocol\":\"{EventText.Protocol(e.Protocol)}\",\"inside\":\"{new EndpointText(e.InsideAddress, e.InsidePort)}\",\"external\":\"{new EndpointText(e.ExternalAddress, e.ExternalPort)}\"",
                    out w);
                n += w;
                if (e.Type == NatEventType.PcpMappingDeleted)
                {
                    Utf8.TryWrite(dest[n..], $",\"cause\":\"{EventText.Cause(e.Detail)}\"", out w);
                }
                else
                {
                    Utf8.TryWrite(dest[n..], $",\"lifetime\":{e.Lifetime}", out w);
                }
                n += w;
                break;
            default:
                Utf8.TryWrite(dest[n..],
                    $",\"protocol\":\"{EventText.Protocol(e.Protocol)}\",\"inside\":\"{new EndpointText(e.InsideAddress, e.InsidePort)}\"", out w);
                n += w;
                if (EventText.HasExternal(in e))
                {
                    Utf8.TryWrite(dest[n..], $",\"external\":\"{new EndpointText(e.ExternalAddress, e.ExternalPort)}\"", out w);
                    n += w;
                }
                break;
        }
        dest[n++] = (byte)'}';
        dest[n++] = (byte)'\n';
        return n;
    }

    private FileStream Open()
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(settings.Path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }
        var f = new FileStream(settings.Path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
        _size = f.Length;
        return f;
    }

    private void Rotate()
    {
        _file!.Flush();
        stats.FileWritten += _pending;
        _pending = 0;
        _file.Dispose();
        _file = null;
        string p = settings.Path;
        if (settings.Keep == 0)
        {
            File.Delete(p);
        }
        else
        {
            File.Delete(Numbered(p, settings.Keep));
            for (int i = settings.Keep - 1; i >= 1; i--)
            {
                if (File.Exists(Numbered(p, i)))
                {
                    File.Move(Numbered(p, i), Numbered(p, i + 1));
                }
            }
            File.Move(p, Numbered(p, 1));
        }
        stats.FileRotations++;
        _file = Open();
    }

    internal static string Numbered(string path, int i) => path + "." + i.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private void Fail(Exception ex, int lost)
    {
        stats.FileErrors += lost;
        _pending = 0;
        _failed = true;
        CloseQuietly();
        if (!_reported)
        {
            _reported = true;
            EventLogLog.SinkFailed(logger, Name, settings.Path, ex.Message);
        }
    }

    private void CloseQuietly()
    {
        try
        {
            _file?.Dispose();
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            // Buffered lines are lost; already counted by the caller.
        }
        _file = null;
    }

    private static bool IsIoFailure(Exception ex) => ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException;
}
