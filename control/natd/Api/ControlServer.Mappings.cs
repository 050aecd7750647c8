using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Api;

// The PCP views (docs/architecture.md, "Port Control Protocol"): GET /mappings (?inside=ADDR or
// ADDR/LEN, ?limit=N) lists the subscribers' PCP and NAT-PMP mappings, asked of each shard's poller;
// POST /mappings/delete {"protocol": "tcp", "internal": "a.b.c.d:port"} (or "external"; an
// all-ports mapping: "internal": "a.b.c.d:*", protocol "all" for the TCP-and-UDP one) is the
// operator's delete.
public sealed partial class ControlServer
{
    private static async Task WriteMappingsAsync(HttpContext ctx, IDataplaneQuery query)
    {
        if (!TryListQuery(ctx.Request.Query, allowInside: true, out int limit, out Ipv4Prefix? inside, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        var all = await query.GetPcpMappingsAsync(ctx.RequestAborted).ConfigureAwait(false);
        var picked = new List<PcpMappingInfo>(all.Count);
        foreach (var m in all)
        {
            if (inside is not { } p || Overlaps(p, m.Internal, 32))
            {
                picked.Add(m);
            }
        }
        picked.Sort(static (a, b) =>
        {
            int c = Ipv4.ToHostOrder(a.Internal).CompareTo(Ipv4.ToHostOrder(b.Internal));
            c = c != 0 ? c : a.InternalPort.CompareTo(b.InternalPort);
            return c != 0 ? c : a.Protocol.CompareTo(b.Protocol);
        });
        var rows = new MappingRow[Math.Min(limit, picked.Count)];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = WireViews.Mapping(picked[i]);
        }
        await Json(ctx, StatusCodes.Status200OK, new MappingsAnswer { Total = picked.Count, Mappings = rows }, WireJsonContext.Default.MappingsAnswer)
            .ConfigureAwait(false);
    }

    private static async Task DeleteMappingAsync(HttpContext ctx, IControlOperations ops)
    {
        using var doc = await ReadBody(ctx).ConfigureAwait(false);
        if (doc is null)
        {
            return;
        }
        if (!TryParseMappingSelector(doc.RootElement, out var selector, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        long n = await ops.DeletePcpMappingAsync(selector, ctx.RequestAborted).ConfigureAwait(false);
        await Json(ctx, StatusCodes.Status200OK, new DeletedRow { Deleted = n }, WireJsonContext.Default.DeletedRow).ConfigureAwait(false);
    }

    private static readonly string[] MappingSelectorFields = ["protocol", "internal", "external"];

    /// <summary>
    /// Parses {"protocol": "tcp"|"udp", "internal": "a.b.c.d:port"} or the same with "external"
    /// (exactly one of the two); an all-ports mapping is {"protocol": "tcp"|"udp"|"all", "internal": "a.b.c.d:*"}
    /// (port 0 / protocol 0 mean all, as the mapping is listed).
    /// </summary>
    internal static bool TryParseMappingSelector(JsonElement body, out MappingSelector selector,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        selector = null!;
        const string Shape = "expected a JSON object {\"protocol\": \"tcp\", \"internal\": \"a.b.c.d:port\"} or with \"external\" instead of \"internal\"";
        string?[] fields = new string?[MappingSelectorFields.Length];
        if (!TryStringFields(body, MappingSelectorFields, fields, Shape, out error))
        {
            return false;
        }
        string? protocolText = fields[0], internalText = fields[1], externalText = fields[2];
        byte protocol = 0;
        if (protocolText != "all" && (!TryProtocol(protocolText, out protocol) || protocol is not (IpProtocol.Tcp or IpProtocol.Udp)))
        {
            error = $"protocol '{protocolText}' is not tcp or udp"; // "all" is for an all-ports mapping only (below)
            return false;
        }
        if ((internalText is null) == (externalText is null))
        {
            error = "give one of internal or external";
            return false;
        }
        string text = internalText ?? externalText!;
        string which = internalText is not null ? "internal" : "external";
        bool allPorts = internalText is not null && text.EndsWith(":*", StringComparison.Ordinal);
        uint address;
        ushort port = 0;
        if (allPorts ? !Ipv4.TryParse(text[..^2], out address) : !TryEndpoint(text, out address, out port) || port == 0)
        {
            error = $"{which} '{text}' is not ADDRESS:PORT (a.b.c.d:port)";
            return false;
        }
        if (protocol == 0 && !allPorts)
        {
            error = "protocol all names an all-ports mapping: give internal a.b.c.d:*";
            return false;
        }
        selector = new MappingSelector(protocol, address, port, External: externalText is not null);
        return true;
    }
}
