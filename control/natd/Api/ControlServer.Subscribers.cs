using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Api;

// The carrier-grade NAT views: GET /subscribers (?inside=ADDR or ADDR/LEN, ?limit=N) and GET /blocks
// (?limit=N). Both read each shard's subscriber table on its poller, sort, and answer at most
// `limit` rows (default 1000) with the total, so a box with 50,000 subscribers answers a bounded page.
public sealed partial class ControlServer
{
    /// <summary>Rows GET /subscribers and GET /blocks answer unless ?limit= says otherwise.</summary>
    public const int DefaultListLimit = 1000;

    /// <summary>The largest ?limit= accepted.</summary>
    public const int MaxListLimit = 1_000_000;

    private static async Task WriteSubscribersAsync(HttpContext ctx, IDataplaneQuery query)
    {
        if (!TryListQuery(ctx.Request.Query, allowInside: true, out int limit, out Ipv4Prefix? inside, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        var all = await query.GetSubscribersAsync(ctx.RequestAborted).ConfigureAwait(false);
        var picked = new List<SubscriberInfo>(all.Count);
        foreach (var s in all)
        {
            if (inside is not { } p || Overlaps(p, s.Subscriber, s.PrefixLength))
            {
                picked.Add(s);
            }
        }
        picked.Sort(static (a, b) => Ipv4.ToHostOrder(a.Subscriber).CompareTo(Ipv4.ToHostOrder(b.Subscriber)));
        var rows = new SubscriberRow[Math.Min(limit, picked.Count)];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = WireViews.Subscriber(picked[i]);
        }
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, new SubscribersAnswer { Total = picked.Count, Subscribers = rows },
            WireJsonContext.Default.SubscribersAnswer, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task WriteBlocksAsync(HttpContext ctx, IDataplaneQuery query)
    {
        if (!TryListQuery(ctx.Request.Query, allowInside: false, out int limit, out _, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        var all = new List<BlockInfo>(await query.GetBlocksAsync(ctx.RequestAborted).ConfigureAwait(false));
        all.Sort(static (a, b) =>
        {
            int c = Ipv4.ToHostOrder(a.External).CompareTo(Ipv4.ToHostOrder(b.External));
            return c != 0 ? c : a.Low.CompareTo(b.Low);
        });
        var now = DateTimeOffset.UtcNow;
        var rows = new BlockRow[Math.Min(limit, all.Count)];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = WireViews.Block(all[i], now);
        }
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, new BlocksAnswer { Total = all.Count, Blocks = rows },
            WireJsonContext.Default.BlocksAnswer, ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>True when the subscriber <paramref name="key"/>/<paramref name="length"/> and <paramref name="p"/> share an address (one holds the other).</summary>
    private static bool Overlaps(Ipv4Prefix p, uint key, int length)
    {
        int bits = Math.Min(p.Length, length);
        uint mask = bits == 0 ? 0u : uint.MaxValue << (32 - bits);
        return (Ipv4.ToHostOrder(p.Address) & mask) == (Ipv4.ToHostOrder(key) & mask);
    }

    private static bool TryListQuery(IQueryCollection query, bool allowInside, out int limit, out Ipv4Prefix? inside,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        limit = DefaultListLimit;
        inside = null;
        error = null;
        foreach (var key in query.Keys)
        {
            if (!(key == "limit" || (allowInside && key == "inside")))
            {
                error = $"unknown parameter '{key}' (accepted: {(allowInside ? "inside, limit" : "limit")})";
                return false;
            }
        }
        string? limitText = query["limit"].FirstOrDefault();
        if (limitText is not null
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxListLimit))
        {
            error = string.Create(CultureInfo.InvariantCulture, $"limit '{limitText}' is not a whole number from 1 to {MaxListLimit}");
            return false;
        }
        string? insideText = query["inside"].FirstOrDefault();
        if (insideText is not null)
        {
            if (Ipv4.TryParse(insideText, out uint address))
            {
                inside = new Ipv4Prefix(address, 32);
            }
            else if (Ipv4Prefix.TryParse(insideText, out var prefix))
            {
                inside = prefix;
            }
            else
            {
                error = $"inside '{insideText}' is not ADDRESS or ADDRESS/LEN";
                return false;
            }
        }
        return true;
    }
}
