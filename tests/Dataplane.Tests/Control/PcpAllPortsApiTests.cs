using System.Net;
using System.Text.Json;
using Natd.Control.Api;
using Natd.Ctl;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Control;

/// <summary>
/// All-ports mappings (<c>pcp.all-ports</c>) on the control API and natctl: protocol "all" for
/// protocol 0, internal "a.b.c.d:*", external the subscriber's ports ("LOW-HIGH[/STEP]", commas
/// between blocks), "all-ports": true in the JSON, and the operator's delete by "a.b.c.d:*".
/// </summary>
public sealed class PcpAllPortsApiTests : IAsyncLifetime
{
    private readonly FakeDataplaneQuery _query = new()
    {
        PcpMappings =
        [
            new(0, Ipv4.Parse("10.0.0.2"), 0, Ipv4.Parse("198.51.100.1"), 0, 3600, [], "0102030405060708090a0b0c", false)
            {
                Ports = [(3040, 4047)],
            },
            new(IpProtocol.Udp, Ipv4.Parse("10.0.0.6"), 0, Ipv4.Parse("198.51.100.1"), 0, 600, [], "0a0b0c0d0e0f000102030405", false)
            {
                Ports = [(1024, 1150), (4096, 4222)],
                PortStep = 2,
            },
            new(IpProtocol.Udp, Ipv4.Parse("10.0.0.3"), 5353, Ipv4.Parse("198.51.100.1"), 5353, 59, [], "000000000000000000000000", true),
        ],
    };

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
    public async Task Natctl_mappings_shows_all_ports_with_the_subscribers_ports()
    {
        var (code, output, err) = await Natctl("mappings", "--control", _control);
        Assert.Equal((0, ""), (code, err));
        const string expected =
            "protocol  internal       external                              lifetime  filters  nonce                     via\n" +
            "all       10.0.0.2:*     198.51.100.1:3040-4047                3600s     -        0102030405060708090a0b0c  pcp\n" +
            "udp       10.0.0.3:5353  198.51.100.1:5353                     59s       -        000000000000000000000000  nat-pmp\n" +
            "udp       10.0.0.6:*     198.51.100.1:1024-1150/2,4096-4222/2  600s      -        0a0b0c0d0e0f000102030405  pcp\n";
        Assert.Equal(expected, output);
    }

    [Fact]
    public async Task Get_mappings_marks_all_ports_rows()
    {
        using var doc = JsonDocument.Parse(await _http!.GetStringAsync("/mappings"));
        var rows = doc.RootElement.GetProperty("mappings").EnumerateArray().ToArray();
        Assert.Equal(("all", "10.0.0.2:*", "198.51.100.1:3040-4047", true),
            (rows[0].GetProperty("protocol").GetString(), rows[0].GetProperty("internal").GetString(), rows[0].GetProperty("external").GetString(),
                rows[0].GetProperty("all-ports").GetBoolean()));
        Assert.False(rows[1].GetProperty("all-ports").GetBoolean());
    }

    [Fact]
    public async Task Delete_by_internal_star_with_protocol_all_tcp_or_udp()
    {
        var (code, output, err) = await Natctl("mappings", "delete", "--protocol", "all", "--internal", "10.0.0.2:*", "--control", _control);
        Assert.Equal((0, ""), (code, err));
        Assert.EndsWith("deleted\n", output, StringComparison.Ordinal);
        using var response = await _http!.PostAsync("/mappings/delete",
            new StringContent("""{"protocol":"udp","internal":"10.0.0.6:*"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            [
                new MappingSelector(0, Ipv4.Parse("10.0.0.2"), 0, External: false),
                new MappingSelector(IpProtocol.Udp, Ipv4.Parse("10.0.0.6"), 0, External: false),
            ],
            _ops.MappingDeletes);
    }

    [Theory]
    [InlineData("""{"protocol":"all","internal":"10.0.0.2:80"}""", "protocol all names an all-ports mapping: give internal a.b.c.d:*")]
    [InlineData("""{"protocol":"tcp","external":"198.51.100.1:*"}""", "external '198.51.100.1:*' is not ADDRESS:PORT (a.b.c.d:port)")]
    [InlineData("""{"protocol":"tcp","internal":"10.0.0:*"}""", "internal '10.0.0:*' is not ADDRESS:PORT (a.b.c.d:port)")]
    public async Task Post_mappings_delete_refuses_bad_all_ports_selectors(string body, string why)
    {
        using var response = await _http!.PostAsync("/mappings/delete", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(why, (await response.Content.ReadAsStringAsync()).Trim());
        Assert.Empty(_ops.MappingDeletes);
    }

    [Theory]
    [InlineData("--protocol", "all", "--internal", "10.0.0.2:80")]
    [InlineData("--protocol", "tcp", "--external", "198.51.100.1:*")]
    public async Task Natctl_refuses_bad_all_ports_arguments_before_asking(params string[] args)
    {
        var (code, _, err) = await Natctl(["mappings", "delete", .. args, "--control", _control]);
        Assert.Equal(Cli.Usage, code);
        Assert.StartsWith("natctl: ", err, StringComparison.Ordinal);
        Assert.Empty(_ops.MappingDeletes);
    }
}
