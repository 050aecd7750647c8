using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Contracts;
using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Prometheus;

namespace Natd.Control.Api;

/// <summary>
/// The control HTTP API on the control port (127.0.0.1:9180 by default). Reads: GET /sessions (JSON
/// array of <see cref="SessionRow"/>, optionally filtered by ?protocol=tcp|udp|icmp, ?inside=ADDR[:PORT]
/// and ?remote=ADDR[:PORT]), GET /subscribers and GET /blocks (carrier-grade NAT state, ?limit=N rows,
/// default 1000; /subscribers also ?inside=ADDR or ADDR/LEN; see <see cref="SubscribersAnswer"/> and
/// <see cref="BlocksAnswer"/>), GET /mappings (PCP and NAT-PMP mappings, the same ?inside= and ?limit=;
/// <see cref="MappingsAnswer"/>), GET /stats (JSON <see cref="StatsRow"/>), GET /metrics (Prometheus text
/// 0.0.4, or OpenMetrics 1.0 when the scraper's Accept header asks for it; see <see cref="MetricsExporter"/>), GET /healthz ("ok"), GET /timeouts, GET /lookup
/// (?inside=ADDR or ?external=ADDR:PORT: a deterministic NAT lookup in the running configuration's
/// map, <see cref="LookupRow"/>; 404 for no subscriber, 409 when not deterministic). Writes (see
/// <see cref="IControlOperations"/>): POST /flush (?external=ADDR: one pool address's sessions), POST /sessions/delete, POST /mappings/delete, POST /reload, PUT /timeouts.
/// Kestrel is bound to exactly the configured endpoint and nothing else: the API has no
/// authentication, so it belongs on loopback or a management network only.
/// </summary>
public sealed partial class ControlServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly MetricsExporter _metrics;
    private int _stopped;

    private ControlServer(WebApplication app, Uri address, MetricsExporter metrics)
    {
        _app = app;
        Address = address;
        _metrics = metrics;
    }

    /// <summary>The bound address, e.g. http://127.0.0.1:9180/ (with the real port when started on port 0).</summary>
    public Uri Address { get; }

    /// <summary>Binds and starts the API; returns once it accepts connections.</summary>
    /// <param name="listen">"host:port" where host is an IPv4 literal, [IPv6] literal or localhost; port 0 picks a free port (not with localhost).</param>
    /// <param name="query">Where the answers come from; when it also implements <see cref="IControlOperations"/> the write endpoints use it.</param>
    /// <param name="loggerFactory">Logging for Kestrel and the handlers; null for none.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <exception cref="ArgumentException"><paramref name="listen"/> is not host:port.</exception>
    /// <exception cref="IOException">The endpoint cannot be bound (e.g. address in use).</exception>
    public static Task<ControlServer> StartAsync(string listen, IDataplaneQuery query, ILoggerFactory? loggerFactory, CancellationToken ct)
        => StartAsync(listen, query, query as IControlOperations, loggerFactory, ct);

    /// <summary>Binds and starts the API; returns once it accepts connections.</summary>
    /// <param name="listen">"host:port" where host is an IPv4 literal, [IPv6] literal or localhost; port 0 picks a free port (not with localhost).</param>
    /// <param name="query">Where the answers come from.</param>
    /// <param name="operations">What the write endpoints do; null makes them answer 501 Not Implemented.</param>
    /// <param name="loggerFactory">Logging for Kestrel and the handlers; null for none.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <exception cref="ArgumentException"><paramref name="listen"/> is not host:port.</exception>
    /// <exception cref="IOException">The endpoint cannot be bound (e.g. address in use).</exception>
    public static async Task<ControlServer> StartAsync(string listen, IDataplaneQuery query, IControlOperations? operations,
        ILoggerFactory? loggerFactory, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (!ListenEndpoint.TryParse(listen, out var endpoint))
        {
            throw new ArgumentException($"'{listen}' is not host:port (host an IPv4 address, [IPv6 address] or localhost)", nameof(listen));
        }

        // The empty builder reads no appsettings.json or environment: the control port is configured only by natd.yaml.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            if (endpoint.IsLocalhost)
            {
                options.ListenLocalhost(endpoint.Port);
            }
            else
            {
                options.Listen(endpoint.Address!, endpoint.Port);
            }
        });
        builder.Services.AddSingleton<IHostLifetime, CallerLifetime>(); // natd's modes own the signals (CallerLifetime says why)
        builder.Services.AddSingleton(loggerFactory ?? NullLoggerFactory.Instance);
        builder.Services.AddLogging();
        builder.Services.AddRoutingCore();

        var app = builder.Build();
        var log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<ControlServer>();
        var metrics = new MetricsExporter();
        app.MapGet("/sessions", ctx => Answer(ctx, log, WriteSessionsAsync(ctx, query)));
        app.MapGet("/expectations", ctx => Answer(ctx, log, WriteExpectationsAsync(ctx, query)));
        app.MapGet("/subscribers", ctx => Answer(ctx, log, WriteSubscribersAsync(ctx, query)));
        app.MapGet("/blocks", ctx => Answer(ctx, log, WriteBlocksAsync(ctx, query)));
        app.MapGet("/mappings", ctx => Answer(ctx, log, WriteMappingsAsync(ctx, query)));
        app.MapGet("/stats", ctx => Answer(ctx, log, WriteStatsAsync(ctx, query)));
        app.MapGet("/metrics", MetricsPipeline(app, metrics, query, log));
        app.MapPost("/flush", ctx => Answer(ctx, log, Operate(ctx, operations, FlushAsync)));
        app.MapPost("/sessions/delete", ctx => Answer(ctx, log, Operate(ctx, operations, DeleteAsync)));
        app.MapPost("/mappings/delete", ctx => Answer(ctx, log, Operate(ctx, operations, DeleteMappingAsync)));
        app.MapPost("/reload", ctx => Answer(ctx, log, Operate(ctx, operations, ReloadAsync)));
        app.MapGet("/timeouts", ctx => Answer(ctx, log, Operate(ctx, operations, GetTimeoutsAsync)));
        app.MapGet("/lookup", ctx => Answer(ctx, log, Operate(ctx, operations, LookupAsync)));
        app.MapPut("/timeouts", ctx => Answer(ctx, log, Operate(ctx, operations, SetTimeoutsAsync)));
        app.MapGet("/healthz", static ctx =>
        {
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            return ctx.Response.WriteAsync("ok", ctx.RequestAborted);
        });

        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            metrics.Dispose();
            throw;
        }
        var address = new Uri(app.Urls.First());
        LogListening(log, address);
        return new ControlServer(app, address, metrics);
    }

    /// <summary>Stops accepting requests and lets in-flight ones finish (bounded by <paramref name="ct"/>).</summary>
    public async Task StopAsync(CancellationToken ct = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            await _app.StopAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Stops (if not yet stopped) and releases the listener.</summary>
    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    private static async Task WriteSessionsAsync(HttpContext ctx, IDataplaneQuery query)
    {
        if (!SessionFilter.TryParse(ctx.Request.Query, out var filter, out string? error))
        {
            await Plain(ctx, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }
        var sessions = await query.GetSessionsAsync(ctx.RequestAborted).ConfigureAwait(false);
        var views = new List<SessionRow>(sessions.Count);
        foreach (var s in sessions)
        {
            if (filter.Matches(s))
            {
                views.Add(WireViews.Session(s));
            }
        }
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, views.ToArray(), WireJsonContext.Default.SessionRowArray, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task WriteExpectationsAsync(HttpContext ctx, IDataplaneQuery query)
    {
        var pending = await query.GetExpectationsAsync(ctx.RequestAborted).ConfigureAwait(false);
        var views = new ExpectationRow[pending.Count];
        for (int i = 0; i < views.Length; i++)
        {
            views[i] = WireViews.Expectation(pending[i]);
        }
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, views, WireJsonContext.Default.ExpectationRowArray, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task WriteStatsAsync(HttpContext ctx, IDataplaneQuery query)
    {
        var stats = await query.GetStatsAsync(ctx.RequestAborted).ConfigureAwait(false);
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, WireViews.Stats(stats), WireJsonContext.Default.StatsRow, ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// GET /metrics: publish one snapshot (a failing query answers 503 like the other reads), then
    /// prometheus-net's exporter middleware writes the registry: text 0.0.4, or OpenMetrics when the
    /// Accept header asks for it. One scrape at a time, so none reads a histogram another rebuilds.
    /// Not a before-collect callback: prometheus-net 8.2.1 swallows a callback's exception (even
    /// ScrapeFailedException) and serves the stale values with 200, and runs callbacks of
    /// concurrent scrapes concurrently.
    /// </summary>
    private static RequestDelegate MetricsPipeline(IEndpointRouteBuilder endpoints, MetricsExporter metrics, IDataplaneQuery query, ILogger log)
        => endpoints.CreateApplicationBuilder()
            .Use(next => ctx => Answer(ctx, log, ScrapeAsync(ctx, next, metrics, query)))
            .UseMiddleware<MetricServerMiddleware>(new MetricServerMiddleware.Settings { Registry = metrics.Registry, EnableOpenMetrics = true })
            .Build();

    private static async Task ScrapeAsync(HttpContext ctx, RequestDelegate export, MetricsExporter metrics, IDataplaneQuery query)
    {
        using var turn = await metrics.EnterAsync(ctx.RequestAborted).ConfigureAwait(false);
        metrics.Publish(await query.GetStatsAsync(ctx.RequestAborted).ConfigureAwait(false));
        await export(ctx).ConfigureAwait(false);
    }

    /// <summary>A failing query answers 503 with the reason instead of a bare 500 and a dropped connection.</summary>
    private static async Task Answer(HttpContext ctx, ILogger log, Task work)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception ex) when (!ctx.Response.HasStarted)
        {
            LogQueryFailed(log, ctx.Request.Path, ex);
            ctx.Response.Clear();
            ctx.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync($"dataplane query failed: {ex.Message}\n", ctx.RequestAborted).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Control API listening on {Address}")]
    private static partial void LogListening(ILogger logger, Uri address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Control API request {Path} failed")]
    private static partial void LogQueryFailed(ILogger logger, string path, Exception exception);
}
