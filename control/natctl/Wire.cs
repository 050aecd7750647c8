using System.Text.Json.Serialization;

namespace Natd.Ctl;

/// <summary>One session as natd's GET /sessions returns it (camelCase JSON); addresses are dotted quads.</summary>
internal sealed record SessionRow
{
    public string Protocol { get; init; } = "";
    public string InsideAddress { get; init; } = "";
    public int InsidePort { get; init; }
    public string ExternalAddress { get; init; } = "";
    public int ExternalPort { get; init; }
    public string RemoteAddress { get; init; } = "";
    public int RemotePort { get; init; }
    /// <summary>Seconds until the session expires if idle.</summary>
    public double ExpiresInSeconds { get; init; }
    public string State { get; init; } = "";
    public long PacketsIn2Out { get; init; }
    public long PacketsOut2In { get; init; }
    public long BytesIn2Out { get; init; }
    public long BytesOut2In { get; init; }
}

/// <summary>natd's GET /stats answer (camelCase JSON of the dataplane's StatsSnapshot).</summary>
internal sealed record StatsRow
{
    public long PacketsIn2Out { get; init; }
    public long PacketsOut2In { get; init; }
    public long BytesIn2Out { get; init; }
    public long BytesOut2In { get; init; }
    public long FramesReceived { get; init; }
    public long FramesTransmitted { get; init; }
    public Dictionary<string, long> Drops { get; init; } = [];
    public Dictionary<string, long> Sessions { get; init; } = [];
    public long SessionsCreated { get; init; }
    public long SessionsDeleted { get; init; }
    public Dictionary<string, long> Gateway { get; init; } = [];
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SessionRow[]))]
[JsonSerializable(typeof(StatsRow))]
internal sealed partial class NatctlJsonContext : JsonSerializerContext;
