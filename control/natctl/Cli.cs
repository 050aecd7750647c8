using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Encodings.Web;
using System.Text.Json;
using Natd.Contracts;

namespace Natd.Ctl;

/// <summary>
/// natctl's entry point, kept free of Console so tests run it in-process. Exit codes: 0 ok,
/// 1 usage error, 2 natd unreachable or the API answered an error.
/// </summary>
internal static class Cli
{
    public const int Ok = 0;
    public const int Usage = 1;
    public const int Unreachable = 2;
    /// <summary>natctl lookup: no subscriber holds the address or port (the API answered 404).</summary>
    public const int NotFound = 1;

    public const string DefaultControl = "127.0.0.1:9180";
    public const string ControlEnvironmentVariable = "NATD_CONTROL";

    public const string UsageText = """
        usage: natctl <command> [options]

        commands:
          sessions [--protocol tcp|udp|icmp|isakmp|esp|gre] [--inside ADDR[:PORT]] [--remote ADDR[:PORT]]
                     list NAT sessions (the ipfwadm -M -l -n view), optionally filtered
          stats      show dataplane counters
          subscribers [--inside ADDR|ADDR/LEN] [--limit N]
                     carrier-grade NAT subscribers: external address, port blocks (LOW-HIGH, /STEP
                     when the shards interleave), ports and sessions against their limits, limit hits
          blocks [--limit N]
                     held port blocks (nat.allocation: port-block): external, ports, subscriber,
                     ports in use, allocation time (UTC); both list at most N rows (default 1000)
          mappings [--inside ADDR|ADDR/LEN] [--limit N]
                     PCP and NAT-PMP mappings the subscribers made, one a line: protocol, internal,
                     external, lifetime left, filters (- for none), nonce, pcp or nat-pmp
          mappings delete --protocol tcp|udp --internal ADDR:PORT | --external ADDR:PORT
                     delete one mapping (no nonce needed): no new inbound flow reaches it; sessions
                     in progress run on under their timeouts; an all-ports mapping is
                     --protocol tcp|udp|all --internal ADDR:*
          expectations
                     list pending ALG expectations (pinholes waiting for an FTP data connection,
                     a DCC peer, a TFTP reply) with their control connection
          metrics    print the Prometheus metrics text as natd serves it
          flush [--external ADDR]
                     delete every session, or only those on one external address (the rest of
                     a nat.drain: its ports and blocks then rest nat.port-reuse-delay)
          delete PROTO INSIDE:PORT [REMOTE[:PORT]]
                     delete the sessions of one inside endpoint (PROTO tcp, udp or icmp; for icmp
                     PORT is the echo identifier), optionally only those with one remote endpoint
          reload     re-read natd's configuration file (validated whole; errors name file and line)
          timeouts   show the idle timeouts in force (seconds), then each well-known port's
                     UDP timer (timeouts.udp-ports) as udp/PORT
          timeouts set TCP TCPFIN UDP
                     set the TCP established, TCP transitory and UDP timeouts in seconds, as
                     ipfwadm -M -s did; 0 leaves one unchanged
          timeouts set [--tcp S] [--tcpfin S] [--udp S] [--icmp S]
                     set some timeouts by name (--tcp-established, --tcp-transitory also accepted);
                     live changes last until the next reload or restart
          config check FILE
                     validate a configuration file locally (runs natd config check; natd need not run)
          lookup --external ADDR:PORT | --inside ADDR
                     deterministic NAT (RFC 7422) in the running configuration: the subscriber that
                     holds an external address and port, or an inside host's external address and
                     port range, as INSIDE EXTERNAL:LOW-HIGH (offline, from the file alone:
                     natd lookup --config natd.yaml ...); exit 1 when no subscriber matches

        options:
          --json               print the API's JSON (sessions, stats, subscribers, blocks, mappings, expectations, timeouts, flush, delete, reload, lookup)
          -n                   numeric output; natctl never resolves names, accepted for ipfwadm habit
          --control HOST:PORT  natd control API (default: $NATD_CONTROL, else 127.0.0.1:9180)
          -h, --help           show this text

        exit codes: 0 ok, 1 usage error, 2 natd unreachable, the API refused (e.g. a rejected reload)
        or the configuration file is bad

        """;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Options that take a value, and the commands they belong to.</summary>
    private static readonly Dictionary<string, string[]> ValueOptions = new(StringComparer.Ordinal)
    {
        ["--protocol"] = ["sessions", "mappings delete"],
        ["--inside"] = ["sessions", "lookup", "subscribers", "mappings"],
        ["--limit"] = ["subscribers", "blocks", "mappings"],
        ["--remote"] = ["sessions"],
        ["--external"] = ["lookup", "mappings delete", "flush"],
        ["--internal"] = ["mappings delete"],
        ["--tcp"] = ["timeouts set"],
        ["--tcp-established"] = ["timeouts set"],
        ["--tcpfin"] = ["timeouts set"],
        ["--tcp-transitory"] = ["timeouts set"],
        ["--udp"] = ["timeouts set"],
        ["--icmp"] = ["timeouts set"],
    };

    /// <summary>Runs one natctl command with the process environment.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
        => RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariable, ct);

    /// <summary>Runs one natctl command.</summary>
    /// <param name="args">Command line, e.g. ["sessions", "--json"].</param>
    /// <param name="stdout">Where results go.</param>
    /// <param name="stderr">Where errors and usage go.</param>
    /// <param name="getEnvironment">Environment lookup (tests pass their own so NATD_CONTROL on the machine does not leak in).</param>
    /// <param name="ct">Cancels the request.</param>
    /// <returns>The exit code: 0 ok, 1 usage error, 2 natd unreachable or API error.</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr,
        Func<string, string?> getEnvironment, CancellationToken ct = default)
    {
        bool json = false;
        string? control = null;
        var positional = new List<string>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "-h" or "--help" or "help":
                    await stdout.WriteAsync(UsageText).ConfigureAwait(false);
                    return Ok;
                case "--json":
                    json = true;
                    break;
                case "-n":
                    break;
                case "--control":
                    if (i + 1 >= args.Length)
                    {
                        return await UsageError(stderr, "--control needs HOST:PORT").ConfigureAwait(false);
                    }
                    control = args[++i];
                    break;
                default:
                    if (a.StartsWith("--control=", StringComparison.Ordinal))
                    {
                        control = a["--control=".Length..];
                    }
                    else if (ValueOptions.ContainsKey(a))
                    {
                        if (i + 1 >= args.Length)
                        {
                            return await UsageError(stderr, $"{a} needs a value").ConfigureAwait(false);
                        }
                        values[a] = args[++i];
                    }
                    else if (a.StartsWith('-') && a.Length > 1)
                    {
                        return await UsageError(stderr, $"unknown option '{a}'").ConfigureAwait(false);
                    }
                    else
                    {
                        positional.Add(a);
                    }
                    break;
            }
        }
        if (positional.Count == 0)
        {
            return await UsageError(stderr, "no command given").ConfigureAwait(false);
        }
        string command = positional[0];
        string commandName = command is "timeouts" or "config" or "mappings" && positional.Count > 1 ? command + " " + positional[1] : command;
        foreach (var option in values.Keys)
        {
            if (Array.IndexOf(ValueOptions[option], commandName) < 0)
            {
                return await UsageError(stderr, $"{option} applies to '{string.Join("' and '", ValueOptions[option])}', not '{commandName}'").ConfigureAwait(false);
            }
        }

        Request request;
        switch (command)
        {
            case "sessions" or "stats" or "metrics" or "flush" or "reload" or "expectations" or "lookup" or "subscribers" or "blocks" when positional.Count > 1:
                return await UsageError(stderr, $"unexpected argument '{positional[1]}'").ConfigureAwait(false);
            case "sessions":
                if (!TrySessionsQuery(values, out string? query, out string? why))
                {
                    return await UsageError(stderr, why).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Get, "/sessions" + query, null, Render.Sessions);
                break;
            case "stats":
                request = new Request(HttpMethod.Get, "/stats", null, Render.Stats);
                break;
            case "subscribers" or "blocks":
                if (!TryListQuery(values, out string? listQuery, out string? listError))
                {
                    return await UsageError(stderr, listError).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Get, "/" + command + listQuery, null, command == "blocks" ? Render.Blocks : Render.Subscribers);
                break;
            case "mappings" when positional.Count == 1:
                if (!TryListQuery(values, out string? mappingsQuery, out string? mappingsError))
                {
                    return await UsageError(stderr, mappingsError).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Get, "/mappings" + mappingsQuery, null, Render.Mappings);
                break;
            case "mappings" when positional.Count == 2 && positional[1] == "delete":
                if (!TryMappingDeleteBody(values, out string? mappingBody, out string? mappingError))
                {
                    return await UsageError(stderr, mappingError).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Post, "/mappings/delete", mappingBody, Render.MappingsDeleted);
                break;
            case "mappings":
                return await UsageError(stderr, $"unexpected argument '{positional[1]}' (natctl mappings, or natctl mappings delete ...)").ConfigureAwait(false);
            case "lookup":
                values.TryGetValue("--inside", out string? lookupInside);
                values.TryGetValue("--external", out string? lookupExternal);
                if ((lookupInside is null) == (lookupExternal is null))
                {
                    return await UsageError(stderr, "lookup needs one of --external ADDR:PORT or --inside ADDR").ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Get, lookupInside is not null
                    ? "/lookup?inside=" + Uri.EscapeDataString(lookupInside)
                    : "/lookup?external=" + Uri.EscapeDataString(lookupExternal!), null, Render.Lookup);
                break;
            case "expectations":
                request = new Request(HttpMethod.Get, "/expectations", null, Render.Expectations);
                break;
            case "metrics":
                if (json)
                {
                    return await UsageError(stderr, "--json does not apply to metrics (Prometheus text)").ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Get, "/metrics", null, Render.Raw);
                break;
            case "flush":
                string flushPath = "/flush";
                if (values.TryGetValue("--external", out string? flushExternal))
                {
                    if (!System.Net.IPAddress.TryParse(flushExternal, out var ext) || ext.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
                        || flushExternal.Count(c => c == '.') != 3)
                    {
                        return await UsageError(stderr, $"--external '{flushExternal}' is not an IPv4 address").ConfigureAwait(false);
                    }
                    flushPath += "?external=" + Uri.EscapeDataString(flushExternal);
                }
                request = new Request(HttpMethod.Post, flushPath, "{}", Render.Deleted);
                break;
            case "reload":
                request = new Request(HttpMethod.Post, "/reload", "{}", Render.Outcome);
                break;
            case "delete":
                if (!TryDeleteBody(positional, out string? body, out string? deleteError))
                {
                    return await UsageError(stderr, deleteError).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Post, "/sessions/delete", body, Render.Deleted);
                break;
            case "timeouts" when positional.Count == 1:
                request = new Request(HttpMethod.Get, "/timeouts", null, Render.Timeouts);
                break;
            case "timeouts" when positional[1] == "set":
                if (!TryTimeoutsBody(positional, values, out string? timeoutsBody, out string? timeoutsError))
                {
                    return await UsageError(stderr, timeoutsError).ConfigureAwait(false);
                }
                request = new Request(HttpMethod.Put, "/timeouts", timeoutsBody, Render.TimeoutsOutcome);
                break;
            case "timeouts":
                return await UsageError(stderr, $"unexpected argument '{positional[1]}' (natctl timeouts, or natctl timeouts set ...)").ConfigureAwait(false);
            case "config" when positional.Count == 3 && positional[1] == "check":
                if (json)
                {
                    return await UsageError(stderr, "--json does not apply to config check").ConfigureAwait(false);
                }
                return await ConfigCheck.RunAsync(positional[2], stdout, stderr, ct).ConfigureAwait(false);
            case "config":
                return await UsageError(stderr, "usage: natctl config check FILE").ConfigureAwait(false);
            default:
                return await UsageError(stderr, $"unknown command '{command}'").ConfigureAwait(false);
        }

        control ??= getEnvironment(ControlEnvironmentVariable) is { Length: > 0 } env ? env : DefaultControl;
        if (!TryBaseUri(control, out Uri? baseUri))
        {
            return await UsageError(stderr, $"'{control}' is not HOST:PORT").ConfigureAwait(false);
        }
        return await SendAsync(baseUri, request, json, stdout, stderr, ct).ConfigureAwait(false);
    }

    /// <summary>What the API answer is turned into on stdout.</summary>
    private enum Render { Raw, Sessions, Stats, Expectations, Deleted, Outcome, Timeouts, TimeoutsOutcome, Lookup, Subscribers, Blocks, Mappings, MappingsDeleted }

    private sealed record Request(HttpMethod Method, string Path, string? Body, Render Render);

    private static async Task<int> SendAsync(Uri baseUri, Request request, bool json, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        string display = baseUri.GetLeftPart(UriPartial.Authority);
        string what = $"{request.Method.Method} {request.Path}";
        string body;
        int status;
        using (var http = CreateClient(baseUri))
        {
            try
            {
                using var message = new HttpRequestMessage(request.Method, request.Path);
                if (request.Body is not null)
                {
                    message.Content = new StringContent(request.Body, System.Text.Encoding.UTF8, "application/json");
                }
                using var response = await http.SendAsync(message, ct).ConfigureAwait(false);
                body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                status = (int)response.StatusCode;
                // A lookup that finds no subscriber is an answer, not a failure: its own exit code.
                if (status == 404 && request.Render == Render.Lookup)
                {
                    await stderr.WriteLineAsync("natctl: " + body.Trim()).ConfigureAwait(false);
                    return NotFound;
                }
                // 422 is a refusal with reasons (a rejected reload or timeout change): rendered, exit 2.
                if (!response.IsSuccessStatusCode && status != 422)
                {
                    string first = body.Split('\n', 2)[0].Trim();
                    await stderr.WriteLineAsync(
                        $"natctl: natd control API at {display}: {what} answered {status} {response.ReasonPhrase}{(first.Length > 0 ? ": " + first : "")}").ConfigureAwait(false);
                    return Unreachable;
                }
            }
            catch (HttpRequestException ex)
            {
                await stderr.WriteLineAsync($"natctl: cannot reach natd control API at {display} ({Reason(ex)}): is natd running?").ConfigureAwait(false);
                return Unreachable;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                await stderr.WriteLineAsync($"natctl: cannot reach natd control API at {display} (timed out): is natd running?").ConfigureAwait(false);
                return Unreachable;
            }
        }

        try
        {
            if (json && request.Render != Render.Raw)
            {
                await stdout.WriteAsync(Pretty(body)).ConfigureAwait(false);
            }
            else
            {
                switch (request.Render)
                {
                    case Render.Raw:
                        await stdout.WriteAsync(body).ConfigureAwait(false);
                        break;
                    case Render.Sessions:
                        await stdout.WriteAsync(SessionTable.Render(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.SessionRowArray) ?? [])).ConfigureAwait(false);
                        break;
                    case Render.Expectations:
                        await stdout.WriteAsync(ExpectationsTable(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.ExpectationRowArray) ?? [])).ConfigureAwait(false);
                        break;
                    case Render.Stats:
                        await stdout.WriteAsync(StatsTable.Render(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.StatsRow) ?? new StatsRow())).ConfigureAwait(false);
                        break;
                    case Render.Subscribers:
                        await stdout.WriteAsync(SubscriberListing.Render(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.SubscribersAnswer) ?? new SubscribersAnswer())).ConfigureAwait(false);
                        break;
                    case Render.Blocks:
                        await stdout.WriteAsync(SubscriberListing.Render(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.BlocksAnswer) ?? new BlocksAnswer())).ConfigureAwait(false);
                        break;
                    case Render.Mappings:
                        await stdout.WriteAsync(SubscriberListing.Render(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.MappingsAnswer) ?? new MappingsAnswer())).ConfigureAwait(false);
                        break;
                    case Render.MappingsDeleted:
                        var gone = JsonSerializer.Deserialize(body, WireJsonContext.Default.DeletedRow) ?? new DeletedRow();
                        await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                            $"{gone.Deleted} mapping{(gone.Deleted == 1 ? "" : "s")} deleted")).ConfigureAwait(false);
                        break;
                    case Render.Deleted:
                        var deleted = JsonSerializer.Deserialize(body, WireJsonContext.Default.DeletedRow) ?? new DeletedRow();
                        await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                            $"{deleted.Deleted} session{(deleted.Deleted == 1 ? "" : "s")} deleted")).ConfigureAwait(false);
                        break;
                    case Render.Lookup:
                        var found = JsonSerializer.Deserialize(body, WireJsonContext.Default.LookupRow) ?? new LookupRow();
                        await stdout.WriteLineAsync(found.Line()).ConfigureAwait(false);
                        break;
                    case Render.Timeouts:
                        await stdout.WriteAsync(TimeoutsTable(
                            JsonSerializer.Deserialize(body, WireJsonContext.Default.DictionaryStringInt64) ?? [])).ConfigureAwait(false);
                        break;
                    case Render.Outcome or Render.TimeoutsOutcome:
                        var outcome = JsonSerializer.Deserialize(body, WireJsonContext.Default.OutcomeRow) ?? new OutcomeRow();
                        if (!outcome.Ok)
                        {
                            await stderr.WriteLineAsync(request.Render == Render.Outcome
                                ? "natctl: reload rejected, natd keeps its running configuration:"
                                : "natctl: timeouts not changed:").ConfigureAwait(false);
                            foreach (string m in outcome.Messages)
                            {
                                await stderr.WriteLineAsync("  " + m).ConfigureAwait(false);
                            }
                            return Unreachable;
                        }
                        foreach (string m in outcome.Messages)
                        {
                            await stderr.WriteLineAsync("natctl: warning: " + m).ConfigureAwait(false);
                        }
                        await stdout.WriteAsync(request.Render == Render.Outcome
                            ? "configuration reloaded\n"
                            : TimeoutsTable(outcome.Timeouts ?? [])).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (JsonException ex)
        {
            await stderr.WriteLineAsync($"natctl: natd control API at {display}: {what} answered malformed JSON: {ex.Message}").ConfigureAwait(false);
            return Unreachable;
        }
        await stdout.FlushAsync(ct).ConfigureAwait(false);
        return status == 422 ? Unreachable : Ok;
    }

    /// <summary>Pending expectations, one a line, soonest to expire first.</summary>
    internal static string ExpectationsTable(ExpectationRow[] rows)
    {
        var sorted = new List<ExpectationRow>(rows);
        sorted.Sort(static (a, b) => a.ExpiresInSeconds.CompareTo(b.ExpiresInSeconds));
        var sb = new System.Text.StringBuilder("ALG expectations\n");
        sb.Append("alg  prot kind     expire    inside                external              remote                control\n");
        foreach (var r in sorted)
        {
            sb.Append(r.Alg.PadRight(4)).Append(' ').Append(r.Protocol.PadRight(4)).Append(' ').Append(r.Kind.PadRight(8)).Append(' ')
              .Append(SessionTable.FormatExpire(r.ExpiresInSeconds).PadLeft(9)).Append(' ')
              .Append(r.Inside.PadRight(21)).Append(' ').Append((r.External.Length == 0 ? "-" : r.External).PadRight(21)).Append(' ')
              .Append(r.Remote.PadRight(21)).Append(' ').Append(r.Control).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>"name  value s" lines in the API's order (tcp-established, tcp-transitory, udp, icmp).</summary>
    internal static string TimeoutsTable(Dictionary<string, long> timeouts)
    {
        var sb = new System.Text.StringBuilder();
        int width = 0, valueWidth = 0;
        foreach (var kv in timeouts)
        {
            width = Math.Max(width, kv.Key.Length);
            valueWidth = Math.Max(valueWidth, kv.Value.ToString(CultureInfo.InvariantCulture).Length);
        }
        foreach (var kv in timeouts)
        {
            sb.Append(kv.Key.PadRight(width)).Append("  ")
              .Append(kv.Value.ToString(CultureInfo.InvariantCulture).PadLeft(valueWidth)).Append(" s\n");
        }
        return sb.ToString();
    }

    private static bool TrySessionsQuery(Dictionary<string, string> values, out string query, [NotNullWhen(false)] out string? error)
    {
        query = "";
        error = null;
        var parts = new List<string>();
        if (values.TryGetValue("--protocol", out string? protocol))
        {
            if (protocol is not ("tcp" or "udp" or "icmp" or "isakmp" or "esp" or "gre"))
            {
                error = $"--protocol '{protocol}' is not tcp, udp, icmp, isakmp, esp or gre";
                return false;
            }
            parts.Add("protocol=" + protocol);
        }
        foreach (var (option, key) in (ReadOnlySpan<(string, string)>)[("--inside", "inside"), ("--remote", "remote")])
        {
            if (values.TryGetValue(option, out string? endpoint))
            {
                if (!TryEndpoint(endpoint, requirePort: false))
                {
                    error = $"{option} '{endpoint}' is not ADDRESS or ADDRESS:PORT (IPv4)";
                    return false;
                }
                parts.Add(key + "=" + Uri.EscapeDataString(endpoint));
            }
        }
        query = parts.Count == 0 ? "" : "?" + string.Join('&', parts);
        return true;
    }

    /// <summary>`mappings delete`: --protocol tcp|udp and one of --internal or --external ADDR:PORT, as the JSON body of POST /mappings/delete.</summary>
    private static bool TryMappingDeleteBody(Dictionary<string, string> values, out string body, [NotNullWhen(false)] out string? error)
    {
        body = "";
        error = null;
        if (!values.TryGetValue("--protocol", out string? protocol) || protocol is not ("tcp" or "udp" or "all"))
        {
            error = protocol is null ? "mappings delete needs --protocol tcp|udp|all" : $"--protocol '{protocol}' is not tcp, udp or all";
            return false;
        }
        values.TryGetValue("--internal", out string? inside);
        values.TryGetValue("--external", out string? outside);
        if ((inside is null) == (outside is null))
        {
            error = "mappings delete needs one of --internal ADDR:PORT or --external ADDR:PORT";
            return false;
        }
        string option = inside is not null ? "--internal" : "--external";
        string endpoint = inside ?? outside!;
        bool allPorts = inside is not null && endpoint.EndsWith(":*", StringComparison.Ordinal);
        if (!TryEndpoint(allPorts ? endpoint[..^2] : endpoint, requirePort: !allPorts))
        {
            error = inside is not null ? $"{option} '{endpoint}' is not ADDRESS:PORT or ADDRESS:* (IPv4)" : $"{option} '{endpoint}' is not ADDRESS:PORT (IPv4)";
            return false;
        }
        if (protocol == "all" && !allPorts)
        {
            error = "--protocol all names an all-ports mapping: give --internal ADDR:*";
            return false;
        }
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("protocol", protocol);
            w.WriteString(inside is not null ? "internal" : "external", endpoint);
            w.WriteEndObject();
        }
        body = System.Text.Encoding.UTF8.GetString(ms.ToArray());
        return true;
    }

    /// <summary>`subscribers` and `blocks`: ?inside= (an address or a prefix) and ?limit= (rows, 1..1000000).</summary>
    private static bool TryListQuery(Dictionary<string, string> values, out string query, [NotNullWhen(false)] out string? error)
    {
        query = "";
        error = null;
        var parts = new List<string>();
        if (values.TryGetValue("--inside", out string? inside))
        {
            string address = inside.Split('/', 2)[0];
            bool lengthOk = !inside.Contains('/', StringComparison.Ordinal)
                || (int.TryParse(inside.AsSpan(address.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int len) && len <= 32);
            if (!IPAddress.TryParse(address, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || address.Count(c => c == '.') != 3 || !lengthOk)
            {
                error = $"--inside '{inside}' is not ADDRESS or ADDRESS/LEN (IPv4)";
                return false;
            }
            parts.Add("inside=" + Uri.EscapeDataString(inside));
        }
        if (values.TryGetValue("--limit", out string? limit))
        {
            if (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > 1_000_000)
            {
                error = $"--limit '{limit}' is not a whole number from 1 to 1000000";
                return false;
            }
            parts.Add("limit=" + limit);
        }
        query = parts.Count == 0 ? "" : "?" + string.Join('&', parts);
        return true;
    }

    private static bool TryDeleteBody(List<string> positional, out string body, [NotNullWhen(false)] out string? error)
    {
        body = "";
        error = null;
        if (positional.Count is < 3 or > 4)
        {
            error = "usage: natctl delete PROTO INSIDE:PORT [REMOTE[:PORT]]";
            return false;
        }
        string protocol = positional[1], inside = positional[2];
        string? remote = positional.Count == 4 ? positional[3] : null;
        if (protocol is not ("tcp" or "udp" or "icmp"))
        {
            error = $"protocol '{protocol}' is not tcp, udp or icmp";
            return false;
        }
        if (!TryEndpoint(inside, requirePort: true))
        {
            error = $"'{inside}' is not INSIDE:PORT (an IPv4 address and a port 1..65535)";
            return false;
        }
        if (remote is not null && !TryEndpoint(remote, requirePort: false))
        {
            error = $"'{remote}' is not REMOTE or REMOTE:PORT (an IPv4 address, optionally a port 1..65535)";
            return false;
        }
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("protocol", protocol);
            w.WriteString("inside", inside);
            if (remote is not null)
            {
                w.WriteString("remote", remote);
            }
            w.WriteEndObject();
        }
        body = System.Text.Encoding.UTF8.GetString(ms.ToArray());
        return true;
    }

    /// <summary>
    /// `timeouts set TCP TCPFIN UDP` (ipfwadm -M -s order; 0 leaves one unchanged) or the named options.
    /// The JSON body names only the timeouts that change.
    /// </summary>
    private static bool TryTimeoutsBody(List<string> positional, Dictionary<string, string> values, out string body, [NotNullWhen(false)] out string? error)
    {
        body = "";
        error = null;
        var change = new List<KeyValuePair<string, long>>();
        if (positional.Count > 2)
        {
            if (values.Count > 0)
            {
                error = "give the timeouts either as TCP TCPFIN UDP or as --tcp/--tcpfin/--udp/--icmp, not both";
                return false;
            }
            if (positional.Count != 5)
            {
                error = "usage: natctl timeouts set TCP TCPFIN UDP (seconds, 0 leaves one unchanged)";
                return false;
            }
            string[] keys = ["tcp-established", "tcp-transitory", "udp"];
            for (int i = 0; i < 3; i++)
            {
                if (!long.TryParse(positional[i + 2], NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v > int.MaxValue)
                {
                    error = $"'{positional[i + 2]}' is not a whole number of seconds (0 leaves the timeout unchanged)";
                    return false;
                }
                if (v != 0)
                {
                    change.Add(new(keys[i], v));
                }
            }
        }
        else
        {
            (string Key, string[] Options)[] named =
            [
                ("tcp-established", ["--tcp", "--tcp-established"]),
                ("tcp-transitory", ["--tcpfin", "--tcp-transitory"]),
                ("udp", ["--udp"]),
                ("icmp", ["--icmp"]),
            ];
            foreach (var (key, options) in named)
            {
                string? text = null;
                foreach (string o in options)
                {
                    if (values.TryGetValue(o, out string? t))
                    {
                        if (text is not null)
                        {
                            error = $"{string.Join(" and ", options)} both set {key}";
                            return false;
                        }
                        text = t;
                    }
                }
                if (text is null)
                {
                    continue;
                }
                if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v < 1 || v > int.MaxValue)
                {
                    error = $"{key}: '{text}' is not a whole number of seconds from 1 to {int.MaxValue}";
                    return false;
                }
                change.Add(new(key, v));
            }
        }
        if (change.Count == 0)
        {
            error = "nothing to change: natctl timeouts set TCP TCPFIN UDP, or --tcp/--tcpfin/--udp/--icmp SECONDS";
            return false;
        }
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            foreach (var kv in change)
            {
                w.WriteNumber(kv.Key, kv.Value);
            }
            w.WriteEndObject();
        }
        body = System.Text.Encoding.UTF8.GetString(ms.ToArray());
        return true;
    }

    /// <summary>"a.b.c.d" (when the port is optional) or "a.b.c.d:port" with port 1..65535.</summary>
    internal static bool TryEndpoint(string text, bool requirePort)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string address = colon < 0 ? text : text[..colon];
        if (!IPAddress.TryParse(address, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || address.Count(c => c == '.') != 3)
        {
            return false;
        }
        if (colon < 0)
        {
            return !requirePort;
        }
        return ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) && port != 0;
    }

    /// <summary>Accepts "host:port", "[v6]:port" or a full http:// URL.</summary>
    internal static bool TryBaseUri(string control, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Uri? uri)
    {
        string text = control.StartsWith("http://", StringComparison.OrdinalIgnoreCase) ? control : "http://" + control;
        int lastColon = control.LastIndexOf(':');
        int closeBracket = control.LastIndexOf(']');
        bool hasPort = lastColon > 0 && lastColon > closeBracket;
        if (hasPort && Uri.TryCreate(text, UriKind.Absolute, out uri) && uri.Scheme == Uri.UriSchemeHttp
            && !string.IsNullOrEmpty(uri.Host) && uri.AbsolutePath == "/")
        {
            return true;
        }
        uri = null;
        return false;
    }

    private static HttpClient CreateClient(Uri baseUri)
    {
        var handler = new SocketsHttpHandler { ConnectTimeout = ConnectTimeout, UseProxy = false };
        return new HttpClient(handler, disposeHandler: true) { BaseAddress = baseUri, Timeout = RequestTimeout };
    }

    private static string Reason(HttpRequestException ex)
    {
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            if (e is SocketException se)
            {
                return se.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.TimedOut => "timed out",
                    SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "host not found",
                    SocketError.NetworkUnreachable => "network unreachable",
                    SocketError.HostUnreachable => "host unreachable",
                    SocketError.ConnectionReset => "connection reset",
                    _ => se.Message,
                };
            }
            if (e is TimeoutException or TaskCanceledException)
            {
                return "timed out";
            }
        }
        return ex.Message;
    }

    /// <summary>The API's JSON re-indented; content is unchanged.</summary>
    private static string Pretty(string json)
    {
        using var doc = JsonDocument.Parse(json);
        using var ms = new MemoryStream();
        using (var writer = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            doc.WriteTo(writer);
        }
        return System.Text.Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static async Task<int> UsageError(TextWriter stderr, string message)
    {
        await stderr.WriteLineAsync($"natctl: {message}").ConfigureAwait(false);
        await stderr.WriteLineAsync("usage: natctl sessions|stats|metrics|flush|delete|reload|timeouts|config check [options]; natctl --help for more").ConfigureAwait(false);
        return Usage;
    }
}
