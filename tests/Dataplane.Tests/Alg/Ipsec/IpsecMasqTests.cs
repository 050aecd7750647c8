using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ipsec;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Alg.Ipsec;

/// <summary>The VPN Masquerade HOWTO section 6 cases, on the state machine alone.</summary>
public sealed class IpsecMasqTests
{
    private static readonly uint A = Ipv4.Parse("10.0.0.2");
    private static readonly uint B = Ipv4.Parse("10.0.0.3");
    private static readonly uint C = Ipv4.Parse("10.0.0.4");
    private static readonly uint Remote = Ipv4.Parse("203.0.113.5");
    private static readonly uint Remote2 = Ipv4.Parse("203.0.113.6");
    private static readonly uint Ext = Ipv4.Parse("198.51.100.1");
    private const long T0 = 1_000_000;

    private static IpsecMasq Masq(bool parallel = false, int initTimeout = 10, int retries = 3, int esp = 1800, int isakmp = 28800)
        => new(new IpsecSettings(true, initTimeout, retries, parallel, esp, isakmp), 256);

    private static uint In(IpsecMasq m, uint spi, long now, uint remote = 0)
    {
        Assert.Equal(IpsecVerdict.Forward, m.EspIn(remote == 0 ? Remote : remote, Ext, spi, now, out uint host));
        return host;
    }

    [Fact]
    public void Zero_spi_is_dropped_both_ways()
    {
        var m = Masq();
        Assert.Equal(IpsecVerdict.ZeroSpi, m.EspOut(A, Remote, 0, Ext, T0));
        Assert.Equal(IpsecVerdict.ZeroSpi, m.EspIn(Remote, Ext, 0, T0, out _));
        Assert.Equal(0, m.EspCount);
    }

    [Fact]
    public void First_inbound_spi_is_associated_with_the_host_waiting_and_sticks()
    {
        var m = Masq(parallel: true);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(A, In(m, 0x2001, T0 + 50));
        Assert.Equal(1, m.Associated);
        // B may start now that A is associated (parallel on), and gets the next unknown SPI.
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 100));
        Assert.Equal(B, In(m, 0x2002, T0 + 150));
        Assert.Equal(A, In(m, 0x2001, T0 + 200));
        Assert.Equal(B, In(m, 0x2002, T0 + 200));
    }

    [Fact]
    public void A_second_hosts_new_spi_is_dropped_while_the_first_waits_then_goes_after_association()
    {
        var m = Masq(parallel: true);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(IpsecVerdict.Serialised, m.EspOut(B, Remote, 0x1002, Ext, T0 + 10));
        Assert.Equal(IpsecVerdict.Serialised, m.EspOut(B, Remote, 0x1002, Ext, T0 + 20));
        // Another remote host is not serialised by A's wait.
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote2, 0x3002, Ext, T0 + 20));
        Assert.Equal(A, In(m, 0x2001, T0 + 30));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 40));
        Assert.Equal(B, In(m, 0x2002, T0 + 50));
    }

    [Fact]
    public void The_init_slot_frees_after_the_init_timeout_without_an_answer()
    {
        var m = Masq(parallel: true, initTimeout: 10);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(IpsecVerdict.Serialised, m.EspOut(B, Remote, 0x1002, Ext, T0 + 9_999));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 10_000));
        Assert.Equal(B, In(m, 0x2002, T0 + 10_100)); // B holds the slot now
        // A's SPI still flows outbound (only new SPIs are serialised).
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0 + 10_200));
    }

    [Fact]
    public void Retries_exhausted_refuse_the_spi_for_an_init_timeout()
    {
        var m = Masq(parallel: true, initTimeout: 10, retries: 3);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        for (int i = 1; i <= 3; i++)
        {
            Assert.Equal(IpsecVerdict.Serialised, m.EspOut(B, Remote, 0x1002, Ext, T0 + i));
        }
        Assert.Equal(IpsecVerdict.Refused, m.EspOut(B, Remote, 0x1002, Ext, T0 + 4));
        Assert.Equal(A, In(m, 0x2001, T0 + 5)); // the slot frees, but the refusal holds
        Assert.Equal(IpsecVerdict.Refused, m.EspOut(B, Remote, 0x1002, Ext, T0 + 5_000));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 4 + 10_000));
    }

    [Fact]
    public void Parallel_off_keeps_a_remote_host_to_one_inside_host_until_its_esp_idles_out()
    {
        var m = Masq(parallel: false, esp: 60);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(A, In(m, 0x2001, T0 + 10));
        Assert.Equal(IpsecVerdict.RemoteInUse, m.EspOut(B, Remote, 0x1002, Ext, T0 + 20));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote2, 0x1003, Ext, T0 + 20));
        // A rekeys (new SPI) with the same remote host: allowed, it is the holder.
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1004, Ext, T0 + 30));
        Assert.Equal(IpsecVerdict.RemoteInUse, m.EspOut(B, Remote, 0x1002, Ext, T0 + 60_029));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 60_031));
    }

    [Fact]
    public void Parallel_on_lets_two_hosts_hold_one_remote_host()
    {
        var m = Masq(parallel: true);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(A, In(m, 0x2001, T0 + 10));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 20));
    }

    [Fact]
    public void Unassociated_inbound_goes_to_the_most_recently_rekeyed_host()
    {
        var m = Masq(parallel: true);
        Assert.Equal(IpsecVerdict.NoAssociation, m.EspIn(Remote, Ext, 0x9999, T0, out _));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(A, In(m, 0x2001, T0 + 10));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(B, Remote, 0x1002, Ext, T0 + 20));
        Assert.Equal(B, In(m, 0x2002, T0 + 30));
        // A rekeys with ISAKMP; the remote host starts its new SA before A's new outbound SPI.
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 0xAA, 0xBB, T0 + 1000, out _));
        Assert.Equal(A, In(m, 0x2003, T0 + 1100));
        Assert.Equal(1, m.AssociatedToRekeyed);
        // B rekeys next: the following unknown SPI is B's, and A's stays A's.
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(B, 500, Remote, 500, Ext, 0xCC, 0, T0 + 2000, out _));
        Assert.Equal(B, In(m, 0x2004, T0 + 2100));
        Assert.Equal(A, In(m, 0x2003, T0 + 2200));
    }

    [Fact]
    public void Esp_entries_idle_out_after_the_esp_timeout_and_expire_frees_them()
    {
        var m = Masq(parallel: true, esp: 60);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 0x1001, Ext, T0));
        Assert.Equal(A, In(m, 0x2001, T0 + 10));
        Assert.Equal(A, In(m, 0x2001, T0 + 60_000));
        Assert.Equal(1, m.EspCount);
        Assert.Equal(0, m.Expire(T0 + 59_999, 1000)); // the outbound entry was last used at T0
        Assert.Equal(1, m.EspCount);
        Assert.True(m.Expire(T0 + 200_000, 1000) >= 2);
        Assert.Equal(0, m.EspCount);
        Assert.Equal(0, m.EspInboundCount);
        Assert.Equal(IpsecVerdict.NoAssociation, m.EspIn(Remote, Ext, 0x2001, T0 + 200_001, out _));
    }

    [Fact]
    public void Expire_respects_its_budget()
    {
        var m = Masq(parallel: true, esp: 1);
        for (uint i = 0; i < 20; i++)
        {
            Assert.Equal(IpsecVerdict.Forward, m.EspOut(Ipv4.Parse($"10.0.1.{i + 1}"), Ipv4.Parse($"203.0.113.{i + 1}"), 7, Ext, T0));
        }
        Assert.Equal(5, m.Expire(T0 + 5_000, 5));
        Assert.Equal(15, m.EspCount);
    }

    [Fact]
    public void Isakmp_keeps_port_500_and_routes_replies_by_initiator_cookie()
    {
        var m = Masq();
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 0x1111, 0, T0, out ushort pa));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(B, 500, Remote, 500, Ext, 0x2222, 0, T0, out ushort pb));
        Assert.Equal(500, pa);
        Assert.Equal(500, pb);
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, 0x2222, 0x9B, T0 + 1, out uint h, out ushort port));
        Assert.Equal((B, (ushort)500), (h, port));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, 0x1111, 0x9A, T0 + 1, out h, out _));
        Assert.Equal(A, h);
        Assert.Equal(IpsecVerdict.IsakmpNoEntry, m.IsakmpIn(Remote, 500, Ext, 500, 0x3333, 0x9C, T0 + 1, out _, out _));
        Assert.Equal(IpsecVerdict.IsakmpNoEntry, m.IsakmpIn(Remote2, 500, Ext, 500, 0x1111, 0x9A, T0 + 1, out _, out _));
        // A's responder cookie is learned: a reply with another one is not A's.
        Assert.Equal(IpsecVerdict.IsakmpNoEntry, m.IsakmpIn(Remote, 500, Ext, 500, 0x1111, 0x77, T0 + 2, out _, out _));
    }

    [Fact]
    public void Same_initiator_cookie_from_two_hosts_is_told_apart_by_the_responder_cookie()
    {
        var m = Masq();
        const ulong ic = 0xDEADBEEF_00000001;
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, ic, 0, T0, out _));
        // B collides while A's responder cookie is unknown: held back (B retransmits).
        Assert.Equal(IpsecVerdict.IsakmpCookieCollision, m.IsakmpOut(B, 500, Remote, 500, Ext, ic, 0, T0 + 10, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, ic, 0xA0A0, T0 + 20, out uint h, out _));
        Assert.Equal(A, h);
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(B, 500, Remote, 500, Ext, ic, 0, T0 + 30, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, ic, 0xB0B0, T0 + 40, out h, out _));
        Assert.Equal(B, h);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, ic, 0xA0A0, T0 + 50 + i, out h, out _));
            Assert.Equal(A, h);
            Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, ic, 0xB0B0, T0 + 50 + i, out h, out _));
            Assert.Equal(B, h);
        }
        Assert.Equal(2, m.CookiesLearned);
        // A third host with both cookies equal to A's can never be told apart: refused.
        Assert.Equal(IpsecVerdict.IsakmpCookieCollision, m.IsakmpOut(C, 500, Remote, 500, Ext, ic, 0xA0A0, T0 + 60, out _));
    }

    [Fact]
    public void A_collision_blocks_only_for_the_init_timeout_when_the_remote_never_answers()
    {
        var m = Masq(initTimeout: 10);
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 5, 0, T0, out _));
        Assert.Equal(IpsecVerdict.IsakmpCookieCollision, m.IsakmpOut(B, 500, Remote, 500, Ext, 5, 0, T0 + 9_999, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(B, 500, Remote, 500, Ext, 5, 0, T0 + 10_000, out _));
        // Both unknown now: the reply goes to the host that asked last.
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, 5, 0x42, T0 + 10_001, out uint h, out _));
        Assert.Equal(B, h);
    }

    [Fact]
    public void Isakmp_entries_idle_out_after_the_isakmp_timeout()
    {
        var m = Masq(isakmp: 100);
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 1, 0, T0, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpIn(Remote, 500, Ext, 500, 1, 2, T0 + 99_999, out _, out _));
        Assert.Equal(IpsecVerdict.IsakmpNoEntry, m.IsakmpIn(Remote, 500, Ext, 500, 1, 2, T0 + 99_999 + 100_000, out _, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 1, 2, T0 + 300_000, out _));
        Assert.Equal(1, m.IsakmpCount);
        Assert.True(m.Expire(T0 + 400_000, 100) >= 1);
        Assert.Equal(0, m.IsakmpCount);
    }

    [Fact]
    public void A_full_table_is_reported_not_thrown()
    {
        var m = new IpsecMasq(new IpsecSettings(Parallel: true), 2);
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 1, Ext, T0));
        Assert.Equal(IpsecVerdict.Forward, m.EspOut(A, Remote, 2, Ext, T0));
        Assert.Equal(IpsecVerdict.TableFull, m.EspOut(A, Remote, 3, Ext, T0));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 1, 0, T0, out _));
        Assert.Equal(IpsecVerdict.Forward, m.IsakmpOut(A, 500, Remote, 500, Ext, 2, 0, T0, out _));
        Assert.Equal(IpsecVerdict.TableFull, m.IsakmpOut(A, 500, Remote, 500, Ext, 3, 0, T0, out _));
    }

    /// <summary>A random event for the fuzz: kind, host, remote, SPI or cookie, time step.</summary>
    public sealed record Ev(int Kind, int Host, int Remote, uint Value, ulong Cookie2, int Step);

    [Fact]
    public void Random_event_sequences_never_throw_and_never_move_an_associated_spi_to_another_host()
    {
        var events = (from kind in Gen.Choose(0, 4)
                      from host in Gen.Choose(0, 3)
                      from remote in Gen.Choose(0, 2)
                      from value in Gen.Choose(0, 6).Select(v => (uint)v)
                      from c2 in Gen.Choose(0, 3).Select(v => (ulong)v)
                      from step in Gen.Frequency((5, Gen.Choose(0, 500)), (1, Gen.Choose(0, 40_000)))
                      select new Ev(kind, host, remote, value, c2, step)).ListOf();
        var settings = (from parallel in Gen.Elements(false, true)
                        from retries in Gen.Choose(0, 4)
                        select new IpsecSettings(true, 5, retries, parallel, 30, 20)).ToArbitrary();
        Prop.ForAll(settings, events.ToArbitrary(), (s, evs) =>
        {
            var m = new IpsecMasq(s, 8); // small: the full-table paths run too
            var owner = new Dictionary<(uint Remote, uint Spi), (uint Host, long Last)>();
            long now = T0;
            uint[] hosts = [A, B, C, Ipv4.Parse("10.0.0.9")];
            uint[] remotes = [Remote, Remote2, Ipv4.Parse("203.0.113.77")];
            foreach (var e in evs)
            {
                now += e.Step;
                uint host = hosts[e.Host], remote = remotes[e.Remote];
                switch (e.Kind)
                {
                    case 0:
                        m.EspOut(host, remote, e.Value, Ext, now);
                        break;
                    case 1:
                        if (m.EspIn(remote, Ext, e.Value, now, out uint to) == IpsecVerdict.Forward)
                        {
                            // While the SPI is in use (seen within the ESP timeout) it stays with its host.
                            if (owner.TryGetValue((remote, e.Value), out var prev) && now - prev.Last < 30_000 && prev.Host != to)
                            {
                                return false;
                            }
                            owner[(remote, e.Value)] = (to, now);
                        }
                        break;
                    case 2:
                        m.IsakmpOut(host, 500, remote, 500, Ext, e.Value, e.Cookie2, now, out _);
                        break;
                    case 3:
                        m.IsakmpIn(remote, 500, Ext, 500, e.Value, e.Cookie2, now, out _, out _);
                        break;
                    default:
                        m.Expire(now, e.Value == 0 ? 1 : 16);
                        break;
                }
            }
            return m.EspCount <= 8 && m.IsakmpCount <= 8;
        }).QuickCheckThrowOnFailure();
    }
}
