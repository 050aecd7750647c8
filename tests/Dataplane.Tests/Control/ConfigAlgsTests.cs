using Natd.Control.Config;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Control;

/// <summary>The `algs` and `triggers` sections: ports per ALG, IPsec knobs, port triggers and presets, and their errors.</summary>
public class ConfigAlgsTests
{
    [Fact]
    public void Defaults_run_ftp_tftp_pptp_and_ipsec_but_not_irc()
    {
        var a = ConfigLoader.Default().Nat.Algs;
        Assert.Equal(AlgKind.Ftp, a.Classify(IpProtocol.Tcp, 21));
        Assert.Equal(AlgKind.Tftp, a.Classify(IpProtocol.Udp, 69));
        Assert.Equal(AlgKind.Pptp, a.Classify(IpProtocol.Tcp, 1723));
        Assert.Equal(AlgKind.None, a.Classify(IpProtocol.Tcp, 6667));
        Assert.Equal(AlgKind.None, a.Classify(IpProtocol.Udp, 21));
        Assert.True(a.Ipsec.Enabled);
        Assert.Empty(a.Triggers);
    }

    [Fact]
    public void Ports_switches_ipsec_knobs_and_triggers_are_read()
    {
        var c = ConfigLoader.Parse("""
            algs:
              ftp: { ports: [21, 2121] }
              irc: true
              tftp: false
              pptp: { enabled: false }
              ipsec: { init-timeout: 5, init-retries: 3, parallel: true, esp-timeout: 600, isakmp-timeout: 3600 }
              expectation-timeout: 30
            triggers:
              - preset: realaudio
              - { name: game, protocol: tcp, ports: 27000-27010, open: { protocol: udp, ports: 27500-27600 } }
            """, "t.yaml");
        var a = c.Nat.Algs;
        Assert.Equal(AlgKind.Ftp, a.Classify(IpProtocol.Tcp, 2121));
        Assert.Equal(AlgKind.Irc, a.Classify(IpProtocol.Tcp, 6667));
        Assert.Equal(AlgKind.None, a.Classify(IpProtocol.Udp, 69));
        Assert.Equal(AlgKind.None, a.Classify(IpProtocol.Tcp, 1723));
        Assert.Equal(new IpsecSettings(true, 5, 3, true, 600, 3600), a.Ipsec);
        Assert.Equal(30, a.ExpectationTimeout);
        Assert.Equal(2, a.Triggers.Count);
        Assert.Equal(new PortTrigger("realaudio", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(6970, 7170)), a.Triggers[0]);
        Assert.Equal(new PortTrigger("game", IpProtocol.Tcp, new PortRange(27000, 27010), IpProtocol.Udp, new PortRange(27500, 27600)), a.Triggers[1]);
    }

    [Theory]
    [InlineData("algs:\n  ftp: { ports: [21, 0] }\n", "algs.ftp.ports[1]", "is not a port")]
    [InlineData("algs:\n  ftp: { ports: [21] }\n  irc: { enabled: true, ports: [21] }\n", "algs.irc.ports", "already algs.ftp's")]
    [InlineData("algs:\n  ftp: { ports: [] }\n", "algs.ftp.ports", "at least one port")]
    [InlineData("algs:\n  sip: true\n", "algs.sip", "unknown key")]
    [InlineData("algs:\n  ipsec: { init-timeout: 0 }\n", "algs.ipsec.init-timeout", "from 1 to 300")]
    [InlineData("triggers:\n  - preset: doom\n", "triggers[0].preset", "unknown preset 'doom'")]
    [InlineData("triggers:\n  - { preset: quake, ports: 1 }\n", "triggers[0].ports", "a preset sets its own ports")]
    [InlineData("triggers:\n  - { protocol: gre, ports: 1, open: { protocol: udp, ports: 2000 } }\n", "triggers[0].protocol", "needs tcp or udp")]
    [InlineData("triggers:\n  - { protocol: tcp, ports: 7070 }\n", "triggers[0].open", "needs what it opens")]
    [InlineData("triggers:\n  - preset: realaudio\n  - { protocol: tcp, ports: 1, open: { protocol: udp, ports: 7000-7200 } }\n", "triggers[1].open.ports", "overlaps trigger 'realaudio'")]
    [InlineData("triggers:\n  - { protocol: tcp, ports: 1, open: { protocol: udp, ports: 2000-9000 } }\n", "triggers[0].open.ports", "at most 1024")]
    [InlineData("nat:\n  ports: 10000-20000\ntriggers:\n  - preset: realaudio\n", "triggers[0].open.ports", "outside nat.ports")]
    public void Mistakes_are_rejected_with_the_key_and_a_reason(string yaml, string path, string fragment)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.Contains(e.Errors, d => d.Path == path && d.Message.Contains(fragment, StringComparison.Ordinal));
    }
}
