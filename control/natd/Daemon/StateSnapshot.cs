using System.Text.Json;
using System.Text.Json.Serialization;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// The restart snapshot (`natd run --state FILE`): written on a clean shutdown, read at start, so
/// a restart or upgrade keeps established connections and the subscribers' PCP and NAT-PMP
/// mappings. JSON, one file, replaced atomically (written beside and renamed). Sessions carry their
/// idle time at export and mappings their lifetime left; the time natd was down is added to the one
/// and taken off the other on restore, so nothing outlives its timeout or lifetime. A file without
/// "pcpMappings" (written before PCP) restores none.
/// </summary>
internal static class StateSnapshot
{
    public const int FormatVersion = 1;

    internal sealed record FileModel(int Version, long ExportedAtUnixMs, List<SessionRecord> Sessions, List<NeighbourModel> Neighbours,
        List<PcpMappingRecord>? PcpMappings = null);

    internal sealed record NeighbourModel(string Side, string Address, string Mac);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary>Writes the state of every shard to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<ShardState> shards, DateTimeOffset now)
    {
        var sessions = new List<SessionRecord>();
        var neighbours = new List<NeighbourModel>();
        var pcp = new List<PcpMappingRecord>();
        foreach (var s in shards)
        {
            sessions.AddRange(s.Sessions);
            pcp.AddRange(s.PcpMappings ?? []);
            neighbours.AddRange(s.InsideNeighbours.Select(n => new NeighbourModel("inside", Ipv4.Format(n.Key), n.Value.ToString())));
            neighbours.AddRange(s.OutsideNeighbours.Select(n => new NeighbourModel("outside", Ipv4.Format(n.Key), n.Value.ToString())));
        }
        var model = new FileModel(FormatVersion, now.ToUnixTimeMilliseconds(), sessions, neighbours, pcp);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(path) + ".tmp");
        File.WriteAllText(tmp, JsonSerializer.Serialize(model, Json));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads a snapshot; null when the file does not exist.</summary>
    /// <exception cref="InvalidDataException">The file is not a natd snapshot of this version.</exception>
    public static FileModel? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        FileModel? m;
        try
        {
            m = JsonSerializer.Deserialize<FileModel>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a natd state snapshot: {e.Message}", e);
        }
        if (m is null || m.Version != FormatVersion)
        {
            throw new InvalidDataException($"{path}: snapshot version {m?.Version} is not {FormatVersion}");
        }
        return m;
    }

    /// <summary>
    /// Restores a snapshot into an engine that is not running yet: neighbours, sessions, then the PCP
    /// mappings (after the sessions, so a mapping takes its port over from the restored session mapping
    /// of the same endpoint); returns sessions restored, <paramref name="pcpRestored"/> the mappings.
    /// </summary>
    public static int Restore(FileModel model, NatEngine engine, DateTimeOffset now, long engineNowMs, out int pcpRestored)
    {
        int n = Restore(model, engine, now, engineNowMs);
        long down = Math.Max(0, now.ToUnixTimeMilliseconds() - model.ExportedAtUnixMs);
        pcpRestored = engine.ImportPcpMappings((model.PcpMappings ?? []).Select(m => m with { LifetimeLeftMs = m.LifetimeLeftMs - down }), engineNowMs);
        return n;
    }

    /// <summary>Restores a snapshot's neighbours and sessions into an engine that is not running yet; returns sessions restored.</summary>
    public static int Restore(FileModel model, NatEngine engine, DateTimeOffset now, long engineNowMs)
    {
        long down = Math.Max(0, now.ToUnixTimeMilliseconds() - model.ExportedAtUnixMs);
        foreach (var n in model.Neighbours)
        {
            if (Ipv4.TryParse(n.Address, out var a) && MacAddress.TryParse(n.Mac, out var mac))
            {
                engine.Learn(n.Side == "inside" ? Side.Inside : Side.Outside, a, mac);
            }
        }
        return engine.ImportSessions(model.Sessions.Select(s => s with { IdleMs = s.IdleMs + down }), engineNowMs);
    }
}
