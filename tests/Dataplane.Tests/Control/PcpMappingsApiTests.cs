using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Natd.Control.Api;
using Natd.Ctl;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Control;

/// <summary>
/// GET /mappings and POST /mappings/delete on the control API, and natctl mappings over them: one
/// mapping a line (protocol, internal, external, lifetime left, filters, nonce, pcp or nat-pmp),
/// --json, the listing's bounds, and the operator's delete by internal or external endpoint.
/// </summary>
public sealed class PcpMappingsApiTests : IAsyncLifetime
{
    private readonly FakeDataplaneQuery _query = new();
    private readonly FakeControlOperations _ops = new();
    private ControlServer? _server;
    private HttpClient? _http;
    private string _control = "";

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        _server = await ControlServer.StartAsync("127.0.0.1:0", _query, _ops, null, cts.Token);
        _control = $"127.0.0.1:{_server.Address.Port}";
        _http = new HttpClient { BaseAddress = new Uri($"http://{_control}") };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private static async Task<(int Code, string Out, string Err)> Natctl(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int code = await Cli.RunAsync(args, stdout, stderr, _ => null, cts.Token);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Get_mappings_answers_json_sorted_by_internal_endpoint()
    {
        using var doc = JsonDocument.Parse(await _http!.GetStringAsync("/mappings"));
        Assert.Equal(3, doc.RootElement.GetProperty("total").GetInt64());
        var rows = doc.RootElement.GetProperty("mappings").EnumerateArray().ToArray();
        Assert.Equal(["10.0.0.2:8080", "10.0.0.2:9100", "10.0.0.3:5353"], rows.Select(r => r.GetProperty("internal").GetString()));
        var first = rows[0];
        Assert.Equal("tcp", first.GetProperty("protocol").GetString());
        Assert.Equal("198.51.100.1:18080", first.GetProperty("external").GetString());
        Assert.Equal(597, first.GetProperty("lifetime-left").GetInt64());
        Assert.Equal(["198.51.100.2/32", "203.0.113.0/24:443"], first.GetProperty("filters").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal("9f3a0c7e5b1d24680ace1357", first.GetProperty("nonce").GetString());
        Assert.Equal("pcp", first.GetProperty("via").GetString());
        Assert.Equal("nat-pmp", rows[2].GetProperty("via").GetString());
    }

    [Theory]
    [InlineData("/mappings?inside=10.0.0.3", 1, 1)]
    [InlineData("/mappings?inside=10.0.0.0/24&limit=2", 3, 2)]
    [InlineData("/mappings?inside=10.0.1.0/24", 0, 0)]
    public async Task Get_mappings_takes_inside_and_limit(string path, int total, int rows)
    {
        using var doc = JsonDocument.Parse(await _http!.GetStringAsync(path));
        Assert.Equal(total, doc.RootElement.GetProperty("total").GetInt64());
        Assert.Equal(rows, doc.RootElement.GetProperty("mappings").GetArrayLength());
    }

    [Fact]
    public async Task Natctl_mappings_prints_one_mapping_a_line()
    {
        var (code, output, err) = await Natctl("mappings", "--control", _control);
        Assert.Equal((0, ""), (code, err));
        const string expected =
            "protocol  internal       external            lifetime  filters                             nonce                     via\n" +
            "tcp       10.0.0.2:8080  198.51.100.1:18080  597s      198.51.100.2/32,203.0.113.0/24:443  9f3a0c7e5b1d24680ace1357  pcp\n" +
            "udp       10.0.0.2:9100  198.51.100.1:9100   120s      -                                   0102030405060708090a0b0c  pcp\n" +
            "udp       10.0.0.3:5353  198.51.100.1:5353   59s       -                                   000000000000000000000000  nat-pmp\n";
        Assert.Equal(expected, output);

        var (jcode, json, _) = await Natctl("mappings", "--json", "--inside", "10.0.0.3", "--control", _control);
        Assert.Equal(0, jcode);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("10.0.0.3:5353", Assert.Single(doc.RootElement.GetProperty("mappings").EnumerateArray()).GetProperty("internal").GetString());
    }

    [Fact]
    public async Task Natctl_mappings_delete_by_internal_or_external_endpoint()
    {
        var (code, output, err) = await Natctl("mappings", "delete", "--protocol", "tcp", "--internal", "10.0.0.2:8080", "--control", _control);
        Assert.Equal((0, "1 mapping deleted\n", ""), (code, output, err));
        (code, output, _) = await Natctl("mappings", "delete", "--protocol", "udp", "--external", "198.51.100.1:9100", "--control", _control);
        Assert.Equal((0, "0 mappings deleted\n"), (code, output));
        Assert.Equal(
            [
                new MappingSelector(IpProtocol.Tcp, Ipv4.Parse("10.0.0.2"), 8080, External: false),
                new MappingSelector(IpProtocol.Udp, Ipv4.Parse("198.51.100.1"), 9100, External: true),
            ],
            _ops.MappingDeletes);
        var (jcode, json, _) = await Natctl("mappings", "delete", "--json", "--protocol", "tcp", "--external", "198.51.100.1:18080", "--control", _control);
        Assert.Equal(0, jcode);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(1, doc.RootElement.GetProperty("deleted").GetInt64());
    }

    [Theory]
    [InlineData("--protocol", "tcp")]
    [InlineData("--internal", "10.0.0.2:8080")]
    [InlineData("--protocol", "icmp", "--internal", "10.0.0.2:1")]
    [InlineData("--protocol", "tcp", "--internal", "10.0.0.2")]
    [InlineData("--protocol", "tcp", "--internal", "10.0.0.2:80", "--external", "198.51.100.1:80")]
    [InlineData("--protocol", "tcp", "--remote", "10.0.0.2:80")]
    public async Task Natctl_mappings_delete_refuses_bad_arguments_before_asking(params string[] args)
    {
        var (code, _, err) = await Natctl(["mappings", "delete", .. args, "--control", _control]);
        Assert.Equal(Cli.Usage, code);
        Assert.StartsWith("natctl: ", err, StringComparison.Ordinal);
        Assert.Empty(_ops.MappingDeletes);
    }

    [Theory]
    [InlineData("""{"protocol":"tcp"}""", "give one of internal or external")]
    [InlineData("""{"protocol":"icmp","internal":"10.0.0.2:1"}""", "protocol 'icmp' is not tcp or udp")]
    [InlineData("""{"protocol":"tcp","internal":"10.0.0.2:80","external":"198.51.100.1:80"}""", "give one of internal or external")]
    [InlineData("""{"protocol":"tcp","external":"198.51.100.1"}""", "external '198.51.100.1' is not ADDRESS:PORT (a.b.c.d:port)")]
    [InlineData("""{"protocol":"tcp","inside":"10.0.0.2:80"}""", "unknown field 'inside' (accepted: protocol, internal, external)")]
    [InlineData("""[1]""", "expected a JSON object {\"protocol\": \"tcp\", \"internal\": \"a.b.c.d:port\"} or with \"external\" instead of \"internal\"")]
    public async Task Post_mappings_delete_refuses_a_bad_body_with_400(string body, string why)
    {
        using var response = await _http!.PostAsync("/mappings/delete", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(why, (await response.Content.ReadAsStringAsync()).Trim());
        Assert.Empty(_ops.MappingDeletes);
    }

    [Fact]
    public async Task Post_mappings_delete_answers_the_count()
    {
        using var response = await _http!.PostAsJsonAsync("/mappings/delete", new { protocol = "tcp", external = "198.51.100.1:18080" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"deleted":1}""", (await response.Content.ReadAsStringAsync()).Trim());
    }
}
