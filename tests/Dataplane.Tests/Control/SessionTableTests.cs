using Natd.Ctl;

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
    public void No_sessions_prints_the_headers_only()
        => Assert.Equal("IP masquerading entries\nprot expire    source           destination      ports\n", SessionTable.Render([]));
}
