using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Natd.Dataplane.Io;

namespace Natd.Control.Daemon;

/// <summary>
/// Logs transmit kicks that failed (a sendto(2) the kernel refused with an error other than
/// backpressure: the interface down or gone, say), so an interface that sends nothing says why in
/// the log as well as in <c>natd_port_tx_kick_errors_total</c>. Each check logs one line per
/// interface whose failures grew since the last check, with their count summed over the pollers
/// and the last errno; the sweeper checks once a second, so a failing interface logs at most one
/// line a second. Reads <see cref="IPacketPort.TxKickFailures"/>, which any thread may read.
/// </summary>
internal sealed partial class TransmitKickWatch(IReadOnlyList<PollerHandle> pollers)
{
    private readonly Dictionary<string, long> _logged = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long Count, int LastErrno)> _now = new(StringComparer.Ordinal);

    /// <summary>Logs the interfaces whose failed kicks grew since the last call (none on the first call when nothing failed).</summary>
    public void Check(ILogger logger)
    {
        _now.Clear();
        foreach (var p in pollers)
        {
            Add(p.Inside);
            Add(p.Outside);
        }
        foreach (var (name, (count, errno)) in _now)
        {
            long before = _logged.GetValueOrDefault(name);
            if (count > before)
            {
                LogKickFailed(logger, name, count - before, count, errno, Marshal.GetPInvokeErrorMessage(errno));
                _logged[name] = count;
            }
        }
    }

    private void Add(IPacketPort? port)
    {
        if (port is null)
        {
            return;
        }
        var (count, errno) = port.TxKickFailures;
        var (sum, last) = _now.GetValueOrDefault(port.Name);
        _now[port.Name] = (sum + count, count > 0 && errno != 0 ? errno : last);
    }

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning,
        Message = "interface {Interface}: {New} transmit kicks failed since the last check ({Total} in all; last errno {Errno}, {Error}); the frames stay queued and go with the first kick that succeeds")]
    private static partial void LogKickFailed(ILogger logger, string @interface, long @new, long total, int errno, string error);
}
