using System.Net.Sockets;
using System.Text.Encodings.Web;
using System.Text.Json;

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

    public const string DefaultControl = "127.0.0.1:9180";
    public const string ControlEnvironmentVariable = "NATD_CONTROL";

    public const string UsageText = """
        usage: natctl <command> [options]

        commands:
          sessions   list NAT sessions (the ipfwadm -M -l -n view)
          stats      show dataplane counters
          metrics    print the Prometheus metrics text as natd serves it

        options:
          --json               print the API's JSON (sessions, stats)
          -n                   numeric output; natctl never resolves names, accepted for ipfwadm habit
          --control HOST:PORT  natd control API (default: $NATD_CONTROL, else 127.0.0.1:9180)
          -h, --help           show this text

        """;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

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
        string? command = null;
        bool json = false;
        string? control = null;
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
                    else if (a.StartsWith('-'))
                    {
                        return await UsageError(stderr, $"unknown option '{a}'").ConfigureAwait(false);
                    }
                    else if (command is null)
                    {
                        command = a;
                    }
                    else
                    {
                        return await UsageError(stderr, $"unexpected argument '{a}'").ConfigureAwait(false);
                    }
                    break;
            }
        }
        if (command is null)
        {
            return await UsageError(stderr, "no command given").ConfigureAwait(false);
        }
        if (command is not ("sessions" or "stats" or "metrics"))
        {
            return await UsageError(stderr, $"unknown command '{command}'").ConfigureAwait(false);
        }
        if (json && command == "metrics")
        {
            return await UsageError(stderr, "--json applies to sessions and stats; metrics is Prometheus text").ConfigureAwait(false);
        }

        control ??= getEnvironment(ControlEnvironmentVariable) is { Length: > 0 } env ? env : DefaultControl;
        if (!TryBaseUri(control, out Uri? baseUri))
        {
            return await UsageError(stderr, $"'{control}' is not HOST:PORT").ConfigureAwait(false);
        }

        string path = "/" + command;
        string display = baseUri.GetLeftPart(UriPartial.Authority);
        string body;
        using (var http = CreateClient(baseUri))
        {
            try
            {
                using var response = await http.GetAsync(path, ct).ConfigureAwait(false);
                body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    string first = body.Split('\n', 2)[0].Trim();
                    await stderr.WriteLineAsync(
                        $"natctl: natd control API at {display}: GET {path} answered {(int)response.StatusCode} {response.ReasonPhrase}{(first.Length > 0 ? ": " + first : "")}").ConfigureAwait(false);
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
            string output = (command, json) switch
            {
                ("metrics", _) => body,
                (_, true) => Pretty(body),
                ("sessions", false) => SessionTable.Render(
                    JsonSerializer.Deserialize(body, NatctlJsonContext.Default.SessionRowArray) ?? []),
                _ => StatsTable.Render(
                    JsonSerializer.Deserialize(body, NatctlJsonContext.Default.StatsRow) ?? new StatsRow()),
            };
            await stdout.WriteAsync(output).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            await stderr.WriteLineAsync($"natctl: natd control API at {display}: GET {path} answered malformed JSON: {ex.Message}").ConfigureAwait(false);
            return Unreachable;
        }
        await stdout.FlushAsync(ct).ConfigureAwait(false);
        return Ok;
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
        await stderr.WriteLineAsync("usage: natctl sessions|stats|metrics [--json] [-n] [--control HOST:PORT]; natctl --help for more").ConfigureAwait(false);
        return Usage;
    }
}
