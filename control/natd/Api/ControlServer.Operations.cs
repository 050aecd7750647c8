using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Api;

// The write endpoints: POST /flush, POST /sessions/delete, POST /reload, GET and PUT /timeouts.
// Bodies are small JSON objects read with JsonDocument; answers are the contracts assembly's wire
// records, serialised by its source-generated context (no reflection).
public sealed partial class ControlServer
{
    /// <summary>Largest request body read (bytes); the API's bodies are a few dozen bytes.</summary>
    private const int MaxBody = 16 * 1024;

    /// <summary>The timeout keys, as in natd.yaml's timeouts section.</summary>
    internal static readonly string[] TimeoutKeys = ["tcp-established", "tcp-transitory", "udp", "icmp"];

    private static Task Operate(HttpContext ctx, IControlOperations? operations, Func<HttpContext, IControlOperations, Task> work)
        => operations is null
            ? Plain(ctx, StatusCodes.Status501NotImplemented, "this natd has no control operations (read-only API)")
            : work(ctx, operations);

    /// <summary>POST /flush: every session; POST /flush?external=a.b.c.d: the sessions on one pool address.</summary>
    private static async Task FlushAsync(HttpContext ctx, IControlOperations ops)
    {
        uint external = 0;
        string? text = ctx.Request.Query["external"];
        if (ctx.Request.Query.Count > (text is null ? 0 : 1) || (text is not null && !Ipv4.TryParse(text, out external)) || (text is not null && external == 0))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, "flush takes nothing, or ?external=a.b.c.d (a pool address)").ConfigureAwait(false);
            return;
        }
        long n = await ops.FlushAsync(external, ctx.RequestAborted).ConfigureAwait(false);
        await Json(ctx, StatusCodes.Status200OK, new DeletedRow { Deleted = n }, WireJsonContext.Default.DeletedRow).ConfigureAwait(false);
    }

    private static async Task DeleteAsync(HttpContext ctx, IControlOperations ops)
    {
        using var doc = await ReadBody(ctx).ConfigureAwait(false);
        if (doc is null)
        {
            return;
        }
        if (!TryParseSelector(doc.RootElement, out var selector, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        long n = await ops.DeleteSessionsAsync(selector, ctx.RequestAborted).ConfigureAwait(false);
        await Json(ctx, StatusCodes.Status200OK, new DeletedRow { Deleted = n }, WireJsonContext.Default.DeletedRow).ConfigureAwait(false);
    }

    private static async Task ReloadAsync(HttpContext ctx, IControlOperations ops)
    {
        var r = await ops.ReloadAsync(ctx.RequestAborted).ConfigureAwait(false);
        await Json(ctx, r.Ok ? StatusCodes.Status200OK : StatusCodes.Status422UnprocessableEntity,
            new OutcomeRow { Ok = r.Ok, Messages = [.. r.Messages] }, WireJsonContext.Default.OutcomeRow).ConfigureAwait(false);
    }

    private static async Task GetTimeoutsAsync(HttpContext ctx, IControlOperations ops)
    {
        var t = await ops.GetTimeoutsAsync(ctx.RequestAborted).ConfigureAwait(false);
        await Json(ctx, StatusCodes.Status200OK, TimeoutFields(t), WireJsonContext.Default.DictionaryStringInt64).ConfigureAwait(false);
    }

    /// <summary>GET /lookup?inside=ADDR or ?external=ADDR:PORT, answered from the running configuration's deterministic map.</summary>
    private static async Task LookupAsync(HttpContext ctx, IControlOperations ops)
    {
        string? inside = ctx.Request.Query["inside"], external = ctx.Request.Query["external"];
        if ((inside is null) == (external is null) || ctx.Request.Query.Count != 1)
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, "lookup takes one of ?inside=a.b.c.d or ?external=a.b.c.d:port").ConfigureAwait(false);
            return;
        }
        var settings = await ops.GetNatSettingsAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (DeterministicLookup.MapOf(settings, out string? why) is not { } map)
        {
            await Plain(ctx, StatusCodes.Status409Conflict, why!).ConfigureAwait(false);
            return;
        }
        var outcome = inside is not null
            ? DeterministicLookup.Inside(map, inside, out LookupRow? row, out string message)
            : DeterministicLookup.External(map, external!, out row, out message);
        switch (outcome)
        {
            case DeterministicLookup.Outcome.Found:
                await Json(ctx, StatusCodes.Status200OK, row!, WireJsonContext.Default.LookupRow).ConfigureAwait(false);
                break;
            case DeterministicLookup.Outcome.NotFound:
                await Plain(ctx, StatusCodes.Status404NotFound, message).ConfigureAwait(false);
                break;
            default:
                await Plain(ctx, StatusCodes.Status400BadRequest, message).ConfigureAwait(false);
                break;
        }
    }

    private static async Task SetTimeoutsAsync(HttpContext ctx, IControlOperations ops)
    {
        using var doc = await ReadBody(ctx).ConfigureAwait(false);
        if (doc is null)
        {
            return;
        }
        if (!TryParseTimeouts(doc.RootElement, out var change, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        var r = await ops.SetTimeoutsAsync(change, ctx.RequestAborted).ConfigureAwait(false);
        var now = await ops.GetTimeoutsAsync(ctx.RequestAborted).ConfigureAwait(false);
        var messages = r.Ok ? TimeoutWarnings(change) : r.Messages;
        await Json(ctx, r.Ok ? StatusCodes.Status200OK : StatusCodes.Status422UnprocessableEntity,
            new OutcomeRow { Ok = r.Ok, Messages = [.. messages], Timeouts = TimeoutFields(now) }, WireJsonContext.Default.OutcomeRow).ConfigureAwait(false);
    }

    /// <summary>Parses {"protocol": "tcp", "inside": "a.b.c.d:port", "remote": "a.b.c.d[:port]"} (remote optional).</summary>
    internal static bool TryParseSelector(JsonElement body, out SessionSelector selector, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        selector = null!;
        string?[] fields = new string?[SessionSelectorFields.Length];
        if (!TryStringFields(body, SessionSelectorFields, fields, "expected a JSON object {\"protocol\": \"tcp\", \"inside\": \"a.b.c.d:port\", \"remote\": \"a.b.c.d:port\"}", out error))
        {
            return false;
        }
        string? protocolText = fields[0], insideText = fields[1], remoteText = fields[2];
        if (!TryProtocol(protocolText, out byte protocol))
        {
            error = $"protocol '{protocolText}' is not tcp, udp or icmp";
            return false;
        }
        if (insideText is null || !TryEndpoint(insideText, out uint insideAddress, out ushort insidePort) || insidePort == 0)
        {
            error = $"inside '{insideText}' is not ADDRESS:PORT (the inside endpoint, a.b.c.d:port; for icmp the port is the echo identifier)";
            return false;
        }
        uint remoteAddress = 0;
        ushort remotePort = 0;
        if (remoteText is not null && !TryEndpoint(remoteText, out remoteAddress, out remotePort))
        {
            error = $"remote '{remoteText}' is not ADDRESS[:PORT]";
            return false;
        }
        selector = new SessionSelector(protocol, insideAddress, insidePort, remoteAddress, remotePort);
        return true;
    }

    private static readonly string[] SessionSelectorFields = ["protocol", "inside", "remote"];

    /// <summary>
    /// Reads a JSON object whose members are all strings named in <paramref name="accepted"/> into
    /// <paramref name="values"/> (same order; null for an absent member).
    /// </summary>
    /// <returns>False with <paramref name="error"/>: not an object (<paramref name="shape"/>), a member that is not a string, or an unknown member.</returns>
    internal static bool TryStringFields(JsonElement body, string[] accepted, string?[] values, string shape,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        error = null;
        if (body.ValueKind != JsonValueKind.Object)
        {
            error = shape;
            return false;
        }
        foreach (var p in body.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
            {
                error = $"'{p.Name}' must be a string";
                return false;
            }
            int k = Array.IndexOf(accepted, p.Name);
            if (k < 0)
            {
                error = $"unknown field '{p.Name}' (accepted: {string.Join(", ", accepted)})";
                return false;
            }
            values[k] = p.Value.GetString();
        }
        return true;
    }

    /// <summary>Parses a partial {"tcp-established": s, "tcp-transitory": s, "udp": s, "icmp": s}, each 1..2147483647 seconds.</summary>
    internal static bool TryParseTimeouts(JsonElement body, out TimeoutsChange change, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        change = new TimeoutsChange();
        error = null;
        if (body.ValueKind != JsonValueKind.Object)
        {
            error = "expected a JSON object such as {\"udp\": 600}";
            return false;
        }
        var values = new int?[TimeoutKeys.Length];
        foreach (var p in body.EnumerateObject())
        {
            int k = Array.IndexOf(TimeoutKeys, p.Name);
            if (k < 0)
            {
                error = $"unknown timeout '{p.Name}' (accepted: {string.Join(", ", TimeoutKeys)})";
                return false;
            }
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int v) || v < 1)
            {
                error = $"{p.Name}: '{p.Value.GetRawText()}' is not a whole number of seconds from 1 to {int.MaxValue}";
                return false;
            }
            values[k] = v;
        }
        if (Array.TrueForAll(values, v => v is null))
        {
            error = $"no timeout given (accepted: {string.Join(", ", TimeoutKeys)})";
            return false;
        }
        change = new TimeoutsChange(values[0], values[1], values[2], values[3]);
        return true;
    }

    /// <summary>The same recommendations the configuration loader warns about.</summary>
    internal static List<string> TimeoutWarnings(TimeoutsChange c)
    {
        var w = new List<string>();
        if (c.TcpEstablished < 7440)
        {
            w.Add(string.Create(CultureInfo.InvariantCulture, $"tcp-established: {c.TcpEstablished} s is below the recommendation: RFC 5382 REQ-5 requires at least 7440 s (2 h 4 min)"));
        }
        if (c.TcpTransitory < 240)
        {
            w.Add(string.Create(CultureInfo.InvariantCulture, $"tcp-transitory: {c.TcpTransitory} s is below the recommendation: RFC 5382 REQ-5 recommends 240 s (4 min)"));
        }
        if (c.Udp < 120)
        {
            w.Add(string.Create(CultureInfo.InvariantCulture, $"udp: {c.Udp} s is below the recommendation: RFC 4787 REQ-5 forbids UDP timeouts below 120 s"));
        }
        if (c.Icmp < 60)
        {
            w.Add(string.Create(CultureInfo.InvariantCulture, $"icmp: {c.Icmp} s is below the recommendation: RFC 5508 REQ-1 requires at least 60 s"));
        }
        return w;
    }

    internal static bool TryProtocol(string? text, out byte protocol)
    {
        protocol = text switch
        {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            _ => 0,
        };
        return protocol != 0;
    }

    /// <summary>"a.b.c.d" (port 0) or "a.b.c.d:port" with port 1..65535.</summary>
    internal static bool TryEndpoint(string text, out uint address, out ushort port)
    {
        port = 0;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (!Ipv4.TryParse(colon < 0 ? text : text[..colon], out address))
        {
            return false;
        }
        if (colon < 0)
        {
            return true;
        }
        if (ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) && port != 0)
        {
            return true;
        }
        return false;
    }

    /// <summary>The request body as JSON, or null after answering 400 (unreadable, too large, not JSON).</summary>
    private static async Task<JsonDocument?> ReadBody(HttpContext ctx)
    {
        if (ctx.Request.ContentLength > MaxBody)
        {
            await Plain(ctx, StatusCodes.Status413PayloadTooLarge, $"body larger than {MaxBody} bytes").ConfigureAwait(false);
            return null;
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxBody)
            {
                await Plain(ctx, StatusCodes.Status413PayloadTooLarge, $"body larger than {MaxBody} bytes").ConfigureAwait(false);
                return null;
            }
            buffer.Write(chunk, 0, read);
        }
        try
        {
            return JsonDocument.Parse(buffer.ToArray());
        }
        catch (JsonException ex)
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, $"body is not JSON: {ex.Message}").ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>The timeouts in force as GET /timeouts answers them: seconds by natd.yaml key, in <see cref="TimeoutKeys"/> order.</summary>
    private static Dictionary<string, long> TimeoutFields(Timeouts t)
    {
        var fields = new Dictionary<string, long>(StringComparer.Ordinal)
        {
            [TimeoutKeys[0]] = t.TcpEstablished,
            [TimeoutKeys[1]] = t.TcpTransitory,
            [TimeoutKeys[2]] = t.Udp,
            [TimeoutKeys[3]] = t.Icmp,
        };
        foreach (var (port, seconds) in t.UdpPorts.Entries)
        {
            fields["udp/" + port.ToString(CultureInfo.InvariantCulture)] = seconds; // timeouts.udp-ports (RFC 4787 REQ-5a), read-only here
        }
        return fields;
    }

    /// <summary>Answers <paramref name="body"/> as JSON with its wire contract.</summary>
    private static async Task Json<T>(HttpContext ctx, int status, T body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> contract)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, body, contract, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static Task Plain(HttpContext ctx, int status, string text)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        return ctx.Response.WriteAsync(text + "\n", ctx.RequestAborted);
    }
}

/// <summary>GET /sessions filters: protocol, inside endpoint, remote endpoint (a port 0 matches any port).</summary>
internal readonly record struct SessionFilter(string? Protocol, uint Inside, ushort InsidePort, uint Remote, ushort RemotePort)
{
    public bool Matches(SessionInfo s)
        => (Protocol is null || s.Protocol == Protocol)
           && (Inside == 0 || (s.InsideAddress == Inside && (InsidePort == 0 || s.InsidePort == InsidePort)))
           && (Remote == 0 || (s.RemoteAddress == Remote && (RemotePort == 0 || s.RemotePort == RemotePort)));

    public static bool TryParse(IQueryCollection query, out SessionFilter filter, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        filter = default;
        error = null;
        foreach (var key in query.Keys)
        {
            if (key is not ("protocol" or "inside" or "remote"))
            {
                error = $"unknown filter '{key}' (accepted: protocol, inside, remote)";
                return false;
            }
        }
        string? protocol = query["protocol"].FirstOrDefault();
        if (protocol is not null && protocol is not ("tcp" or "udp" or "icmp" or "isakmp" or "esp" or "gre"))
        {
            error = $"protocol '{protocol}' is not tcp, udp, icmp, isakmp, esp or gre";
            return false;
        }
        uint inside = 0, remote = 0;
        ushort insidePort = 0, remotePort = 0;
        string? insideText = query["inside"].FirstOrDefault();
        if (insideText is not null && !ControlServer.TryEndpoint(insideText, out inside, out insidePort))
        {
            error = $"inside '{insideText}' is not ADDRESS[:PORT]";
            return false;
        }
        string? remoteText = query["remote"].FirstOrDefault();
        if (remoteText is not null && !ControlServer.TryEndpoint(remoteText, out remote, out remotePort))
        {
            error = $"remote '{remoteText}' is not ADDRESS[:PORT]";
            return false;
        }
        filter = new SessionFilter(protocol, inside, insidePort, remote, remotePort);
        return true;
    }
}
