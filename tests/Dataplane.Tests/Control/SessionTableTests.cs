using Natd.Contracts;

namespace Natd.Tests.Control;

public class SessionTableTests
{
    private static SessionRow Row(string proto, string inside, int port, int ext, string remote, int rport, double expires) => new()
    {
        Protocol = proto, InsideAddress = inside, InsidePort = port, ExternalAddress = "198.51.100.1",
        ExternalPort = ext, RemoteAddress = remote, RemotePort = rport, ExpiresInSeconds = expires, State = "active",
    };

    [Theory]
    [InlineData(7439.996, "124:00.00")]
    [InlineData(7439.994, "123:59.99")]
    [InlineData(59.999, "1:00.00")]
    [InlineData(59.994, "0:59.99")]
    [InlineData(0, "0:00.00")]
    [InlineData(-3, "0:00.00")]
    [InlineData(double.NaN, "0:00.00")]
    [InlineData(299.12, "4:59.12")]
    [InlineData(0.005, "0:00.01")]
    [InlineData(86400, "1440:00.00")]
    public void Expire_is_minutes_seconds_hundredths(double seconds, string expected)
        => Assert.Equal(expected, SessionTable.FormatExpire(seconds));

    [Fact]
    public void Renders_the_ipfwadm_view()
    {
        var rows = new[]
        {
            Row("icmp", "10.0.0.2", 1234, 40112, "198.51.100.2", 0, 59.0),
            Row("udp", "10.0.0.2", 50000, 24001, "198.51.100.2", 9999, 299.12),
            Row("tcp", "10.0.0.2", 40312, 61001, "198.51.100.2", 8080, 7439.99),
        };
        const string expected =
            "IP masquerading entries\n" +
            "prot expire    source           destination      ports\n" +
            "tcp  123:59.99 10.0.0.2         198.51.100.2     40312 (61001) -> 8080\n" +
            "udp    4:59.12 10.0.0.2         198.51.100.2     50000 (24001) -> 9999\n" +
            "icmp   0:59.00 10.0.0.2         198.51.100.2     1234 (40112)\n";
        Assert.Equal(expected, SessionTable.Render(rows));
    }

    [Fact]
    public void A_pptp_call_shows_its_call_ids_where_ports_would_be()
    {
        var row = Row("gre", "10.0.0.3", 16384, 20481, "198.51.100.2", 12, 299) with { State = "pptp-call", Alg = "pptp" };
        var line = SessionTable.Render([row]).Split('\n', StringSplitOptions.RemoveEmptyEntries)[2];
        Assert.Equal("gre    4:59.00 10.0.0.3         198.51.100.2     call 16384 (20481) -> 12 alg pptp", line);
    }

    [Fact]
    public void Sorts_by_protocol_then_numeric_inside_address_then_port()
    {
        var rows = new[]
        {
            Row("udp", "10.0.0.2", 5, 1, "192.0.2.1", 53, 10),
            Row("tcp", "10.0.0.10", 1, 2, "192.0.2.1", 80, 10),
            Row("tcp", "10.0.0.9", 2000, 3, "192.0.2.1", 80, 10),
            Row("tcp", "10.0.0.9", 1000, 4, "192.0.2.1", 80, 10),
            Row("icmp", "10.0.0.1", 7, 5, "192.0.2.1", 0, 10),
        };
        var lines = SessionTable.Render(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries)[2..];
        Assert.Equal(5, lines.Length);
        Assert.Contains("10.0.0.9         192.0.2.1        1000 (4)", lines[0], StringComparison.Ordinal);
        Assert.Contains("10.0.0.9         192.0.2.1        2000 (3)", lines[1], StringComparison.Ordinal);
        Assert.Contains("10.0.0.10        192.0.2.1        1 (2)", lines[2], StringComparison.Ordinal);
        Assert.StartsWith("udp ", lines[3], StringComparison.Ordinal);
        Assert.StartsWith("icmp ", lines[4], StringComparison.Ordinal);
    }

    [Fact]
    public void Columns_stay_aligned_when_expiry_is_long()
    {
        var rows = new[]
        {
            Row("tcp", "10.0.0.2", 1, 2, "192.0.2.1", 80, 2_000_000), // 33333:20.00
            Row("udp", "10.0.0.2", 3, 4, "192.0.2.1", 53, 1),
        };
        var lines = SessionTable.Render(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries)[1..];
        int sourceColumn = lines[0].IndexOf("source", StringComparison.Ordinal);
        Assert.Equal(sourceColumn, lines[1].IndexOf("10.0.0.2", StringComparison.Ordinal));
        Assert.Equal(sourceColumn, lines[2].IndexOf("10.0.0.2", StringComparison.Ordinal));
        Assert.Contains("33333:20.00 ", lines[1], StringComparison.Ordinal);
        Assert.Contains("     0:01.00 ", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Ipsec_and_port_less_rows_show_what_identifies_them()
    {
        // The rows natd's CollectSessions emits for IPsec (IpsecTunnels.Collect) and port-less protocols.
        var rows = new[]
        {
            Row("gre", "10.0.0.5", 0, 0, "203.0.113.10", 0, 119) with { State = "active" },
            Row("esp", "10.0.0.3", 0, 0, "203.0.113.10", 0, 10) with { State = "pending spi 00001002/00000000" },
            Row("esp", "10.0.0.2", 0, 0, "203.0.113.10", 0, 1799) with { State = "associated spi 00001001/00002001" },
            Row("isakmp", "10.0.0.2", 500, 500, "203.0.113.10", 500, 3599) with { State = "cookies 0123456789abcdef/c0c0000000000041" },
            Row("udp", "10.0.0.2", 4500, 4500, "203.0.113.10", 4500, 299),
            Row("tcp", "10.0.0.2", 40000, 61000, "203.0.113.10", 1723, 7000),
        };
        const string expected =
            "IP masquerading entries\n" +
            "prot   expire    source           destination      ports\n" +
            "tcp    116:40.00 10.0.0.2         203.0.113.10     40000 (61000) -> 1723\n" +
            "udp      4:59.00 10.0.0.2         203.0.113.10     4500 (4500) -> 4500\n" +
            "isakmp  59:59.00 10.0.0.2         203.0.113.10     500 (500) -> 500 cookies 0123456789abcdef/c0c0000000000041\n" +
            "esp     29:59.00 10.0.0.2         203.0.113.10     spi 00001001/00002001 associated\n" +
            "esp      0:10.00 10.0.0.3         203.0.113.10     spi 00001002/00000000 pending\n" +
            "gre      1:59.00 10.0.0.5         203.0.113.10\n";
        Assert.Equal(expected, SessionTable.Render(rows));
    }

    [Fact]
    public void Protocols_unknown_to_natctl_sort_last_and_keep_their_state_text()
    {
        var rows = new[]
        {
            Row("132", "10.0.0.2", 0, 0, "192.0.2.1", 0, 5),
            Row("esp", "10.0.0.2", 0, 0, "192.0.2.1", 0, 5) with { State = "refused" },
            Row("icmp", "10.0.0.2", 7, 8, "192.0.2.1", 0, 5),
        };
        var lines = SessionTable.Render(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries)[2..];
        Assert.StartsWith("icmp ", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("esp ", lines[1], StringComparison.Ordinal);
        Assert.EndsWith("192.0.2.1        refused", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("132 ", lines[2], StringComparison.Ordinal);
        Assert.EndsWith("192.0.2.1", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void No_sessions_prints_the_headers_only()
        => Assert.Equal("IP masquerading entries\nprot expire    source           destination      ports\n", SessionTable.Render([]));
}
