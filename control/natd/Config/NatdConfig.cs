using Natd.Dataplane.Nat;

namespace Natd.Control.Config;

/// <summary>
/// Everything natd runs with, validated and immutable: the dataplane's <see cref="NatSettings"/>
/// plus the control-plane settings. Produced by <see cref="ConfigLoader"/>; a reload builds a new
/// instance and swaps it whole.
/// </summary>
public sealed record NatdConfig
{
    /// <summary>Dataplane settings (interfaces, pool, port range, behaviours, timeouts, limits).</summary>
    public required NatSettings Nat { get; init; }

    /// <summary>Control API listen endpoint as "host:port" (host an IP literal or "localhost"), e.g. "127.0.0.1:9180".</summary>
    public required string ControlListen { get; init; }

    /// <summary>Frames received per poll (dataplane.batch), 1..1024.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>
    /// AF_XDP frames each socket keeps on its fill ring (dataplane.xdp-fill-ring), 64..16384;
    /// null: 4096 when the workers take every core, else the driver's default (1024 per socket of
    /// a shared-UMEM pair, 2048 for a lone socket); see PortFactory.XdpFillRing. Ignored by
    /// AF_PACKET, whose receive ring is 8 MiB.
    /// </summary>
    public int? XdpFillRing { get; init; }

    /// <summary>Pollers (shards), each on its own thread with its own session table and port slice; default one per core.</summary>
    public int Workers { get; init; } = 1;

    /// <summary>Packet I/O driver of the inside interface: "auto" (AF_XDP where it works, else AF_PACKET), "af_xdp" or "af_packet".</summary>
    public string InsideDriver { get; init; } = "auto";

    /// <summary>Packet I/O driver of the outside interface (see <see cref="InsideDriver"/>).</summary>
    public string OutsideDriver { get; init; } = "auto";

    /// <summary>Minimum log level, one of trace, debug, information, warning, error, critical, none.</summary>
    public required string LogLevel { get; init; }

    /// <summary>NAT event log (log.events): queue size and sinks; null when absent (no event is queued).</summary>
    public Logging.EventLogSettings? Events { get; init; }

    /// <summary>Path of the file this came from; null for the built-in defaults or text parsed directly.</summary>
    public string? SourcePath { get; init; }

    /// <summary>Accepted but inadvisable values (timeouts below RFC recommendations, pool off the outside prefix).</summary>
    public IReadOnlyList<ConfigDiagnostic> Warnings { get; init; } = [];
}
