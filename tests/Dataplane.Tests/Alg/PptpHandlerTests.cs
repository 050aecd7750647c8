using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Alg.PptpFrames;

namespace Natd.Tests.Alg;

/// <summary>RFC 2637 Call ID masquerading by the PPTP ALG's handler (control channel, TCP 1723).</summary>
public class PptpHandlerTests
{
    private static (PptpHandler H, PptpControl A, PptpControl B) TwoClients()
    {
        var h = new PptpHandler(seed: 0x7000);
        return (h, new PptpControl(h, "10.0.0.2", 40000, 1024), new PptpControl(h, "10.0.0.3", 40001, 1025));
    }

    private static void Established(PptpControl c)
    {
        c.FromClient(StartControlConnectionRequest());
        c.FromServer(Message(2, 156));
    }

    [Fact]
    public void Two_clients_with_the_same_call_id_to_one_server_get_distinct_external_call_ids()
    {
        var (h, a, b) = TwoClients();
        Established(a);
        Established(b);

        byte[] ra = a.FromClient(OutgoingCallRequest(0x4000));
        byte[] rb = b.FromClient(OutgoingCallRequest(0x4000));
        ushort ea = CallIdAt(ra, 12), eb = CallIdAt(rb, 12);
        Assert.NotEqual(ea, eb);
        Assert.NotEqual(0, ea);
        Assert.NotEqual(0, eb);
        Assert.True(Frames.ChecksumsValid(ra) && Frames.ChecksumsValid(rb), "TCP checksums after the rewrite");
        Assert.Equal(7, CallIdAt(rb, 14)); // the serial number is left alone
        Assert.Equal(2, h.Calls);

        // The server answers each with the external Call ID it saw; each client gets its own back.
        byte[] pa = a.FromServer(OutgoingCallReply(callId: 11, peerCallId: ea));
        Assert.Equal(0x4000, CallIdAt(pa, 14));
        Assert.Equal(11, CallIdAt(pa, 12));
        Assert.True(Frames.ChecksumsValid(pa));
        var ga = Assert.Single(a.Actions.GreCalls);
        Assert.Equal(new GreCall(true, Ipv4.Parse("10.0.0.2"), 0x4000, Ipv4.Parse(PptpControl.Server), 11, Ipv4.Parse(PptpControl.External), ea), ga);

        byte[] pb = b.FromServer(OutgoingCallReply(callId: 12, peerCallId: eb));
        Assert.Equal(0x4000, CallIdAt(pb, 14));
        Assert.True(Frames.ChecksumsValid(pb));
        var gb = Assert.Single(b.Actions.GreCalls);
        Assert.Equal(new GreCall(true, Ipv4.Parse("10.0.0.3"), 0x4000, Ipv4.Parse(PptpControl.Server), 12, Ipv4.Parse(PptpControl.External), eb), gb);
    }

    [Fact]
    public void A_reply_naming_another_connections_external_call_id_is_refused()
    {
        var (_, a, b) = TwoClients();
        ushort ea = CallIdAt(a.FromClient(OutgoingCallRequest(0x4000)), 12);
        byte[] reply = OutgoingCallReply(11, ea);
        byte[] pb = b.FromServer(reply);
        Assert.Equal(ea, CallIdAt(pb, 14)); // unchanged
        Assert.Empty(b.Actions.GreCalls);
        Assert.Equal(1, b.Actions.Refused);
    }

    [Fact]
    public void Messages_sharing_a_segment_and_split_across_segments_are_all_rewritten()
    {
        var (_, a, _) = TwoClients();
        // SCCRQ and the first 5 bytes of an OCRQ in one segment, the rest of the OCRQ plus a Call-Clear-Request in the next.
        byte[] ocrq = OutgoingCallRequest(0x1111);
        byte[] first = [.. StartControlConnectionRequest(), .. ocrq[..5]];
        byte[] second = [.. ocrq[5..], .. CallClearRequest(0x1111)];
        byte[] o1 = a.FromClient(first);
        Assert.Equal(0, a.Actions.Refused);
        Assert.Equal(StartControlConnectionRequest().Length, o1.Length - Frames.L4Offset(o1) - 20); // the OCRQ's first bytes wait
        byte[] o2 = a.FromClient(second);
        Assert.Equal(0, a.Actions.Refused);
        Assert.Equal(2, a.Actions.Rewrites);
        ushort external = CallIdAt(o2, 12); // the held 5 bytes lead the segment again
        Assert.Equal(external, CallIdAt(o2, ocrq.Length + 12)); // the clear request names the same external Call ID
        Assert.True(Frames.ChecksumsValid(o1) && Frames.ChecksumsValid(o2));

        // Reply split inside its body, three messages later in the stream: still parsed.
        byte[] reply = OutgoingCallReply(99, external);
        byte[] s1 = a.FromServer([.. Message(6, 20), .. reply[..20]]); // an echo reply, then the first 20 bytes
        Assert.Equal(0x1111, CallIdAt(s1, 20 + 14));
        Assert.Single(a.Actions.GreCalls);
        a.FromServer(reply[20..]);
        Assert.Equal(0, a.Actions.Refused);
    }

    [Fact]
    public void A_field_split_across_segments_is_held_and_rewritten_and_later_messages_still_parse()
    {
        var (h, a, _) = TwoClients();
        byte[] ocrq = OutgoingCallRequest(0x2222);
        byte[] o1 = a.FromClient(ocrq[..13]); // the Call ID's first byte would go out before natd can know it: held
        byte[] o2 = a.FromClient(ocrq[13..]);
        Assert.Equal(0, a.Actions.Refused);
        Assert.Equal(1, a.Actions.Rewrites);
        Assert.Empty(o1.AsSpan(Frames.L4Offset(o1) + 20).ToArray());
        Assert.Equal(ocrq[14..], o2.AsSpan(Frames.L4Offset(o2) + 20 + 14).ToArray());
        byte[] o3 = a.FromClient(OutgoingCallRequest(0x3333));
        Assert.Equal(0, a.Actions.Refused);
        Assert.Equal(1, a.Actions.Rewrites);
        Assert.True(Frames.ChecksumsValid(o2) && Frames.ChecksumsValid(o3));
        h.Dispose();
    }

    [Fact]
    public void A_retransmitted_segment_gets_the_same_rewrite_and_allocates_nothing()
    {
        var h = new PptpHandler(seed: 0x7000);
        var a = new PptpControl(h, "10.0.0.2", 40000, 1024);
        var b = new PptpControl(h, "10.0.0.3", 40001, 1025);
        b.FromClient(OutgoingCallRequest(0x4000)); // takes 0x4000, so a's call gets another id
        uint seq = a.ClientSeq;
        byte[] first = a.FromClient(OutgoingCallRequest(0x4000));
        byte[] again = a.FromClient(OutgoingCallRequest(0x4000), seq);
        Assert.Equal(first, again);
        Assert.Equal(1, a.Actions.Rewrites);
        Assert.Equal(2, h.Calls);
    }

    [Fact]
    public void Clear_disconnect_wan_error_and_set_link_info_follow_the_call()
    {
        var h = new PptpHandler(seed: 0x7000);
        var c1 = new PptpControl(h, "10.0.0.2", 40000, 1024);
        var c2 = new PptpControl(h, "10.0.0.3", 40001, 1025);
        byte[] own = c1.FromClient(OutgoingCallRequest(0x0005));
        Assert.Equal(5, CallIdAt(own, 12)); // the client's own Call ID is free: natd keeps it
        ushort ext = CallIdAt(c2.FromClient(OutgoingCallRequest(0x0005)), 12);
        Assert.NotEqual(5, ext);
        c2.FromServer(OutgoingCallReply(77, ext));

        byte[] wen = c2.FromServer(WanErrorNotify(ext));
        Assert.Equal(5, CallIdAt(wen, 12));
        byte[] sliIn = c2.FromServer(SetLinkInfo(ext));
        Assert.Equal(5, CallIdAt(sliIn, 12));
        byte[] sliOut = c2.FromClient(SetLinkInfo(77)); // from the client it names the server's Call ID
        Assert.Equal(77, CallIdAt(sliOut, 12));
        byte[] clear = c2.FromClient(CallClearRequest(5));
        Assert.Equal(ext, CallIdAt(clear, 12));
        Assert.True(Frames.ChecksumsValid(wen) && Frames.ChecksumsValid(sliIn) && Frames.ChecksumsValid(clear));

        byte[] cdn = c2.FromServer(CallDisconnectNotify(77));
        Assert.Equal(77, CallIdAt(cdn, 12)); // the server's own Call ID (RFC 2637 2.13): unchanged
        var removed = Assert.Single(c2.Actions.GreCalls);
        Assert.False(removed.Add);
        Assert.Equal((Ipv4.Parse("10.0.0.3"), (ushort)5, (ushort)77, ext), (removed.InsideAddress, removed.InsideCallId, removed.RemoteCallId, removed.ExternalCallId));
        Assert.Equal(1, h.Calls); // c1's call remains
    }

    [Fact]
    public void A_refused_outgoing_call_registers_no_gre_and_frees_its_call_id()
    {
        var h = new PptpHandler(seed: 1);
        var a = new PptpControl(h, "10.0.0.2", 40000, 1024);
        ushort e = CallIdAt(a.FromClient(OutgoingCallRequest(0x0042)), 12);
        a.FromServer(OutgoingCallReply(3, e, result: 2)); // General Error
        Assert.Empty(a.Actions.GreCalls);
        Assert.Equal(0, h.Calls);
    }

    [Fact]
    public void Incoming_calls_are_masqueraded_from_the_clients_reply()
    {
        var h = new PptpHandler(seed: 0x100);
        var other = new PptpControl(h, "10.0.0.3", 40001, 1025);
        other.FromClient(OutgoingCallRequest(0x0009));
        var a = new PptpControl(h, "10.0.0.2", 40000, 1024);
        a.FromServer(Message(9, 220, callId: 500)); // Incoming-Call-Request: the server's Call ID only
        byte[] icrp = a.FromClient(IncomingCallReply(0x0009, 500));
        ushort ext = CallIdAt(icrp, 12);
        Assert.NotEqual(9, ext);
        Assert.Equal(500, CallIdAt(icrp, 14));
        var add = Assert.Single(a.Actions.GreCalls);
        Assert.Equal(new GreCall(true, Ipv4.Parse("10.0.0.2"), 9, Ipv4.Parse(PptpControl.Server), 500, Ipv4.Parse(PptpControl.External), ext), add);
        byte[] iccn = a.FromServer(IncomingCallConnected(ext));
        Assert.Equal(9, CallIdAt(iccn, 12));
        Assert.True(Frames.ChecksumsValid(icrp) && Frames.ChecksumsValid(iccn));
    }

    [Fact]
    public void Forget_queues_the_removal_of_its_calls_for_the_next_frame()
    {
        var (h, a, b) = TwoClients();
        ushort e = CallIdAt(a.FromClient(OutgoingCallRequest(0x0100)), 12);
        a.FromServer(OutgoingCallReply(20, e));
        h.Forget(a.Connection);
        Assert.Equal(0, h.Calls);
        b.FromClient(Message(5, 16)); // an echo request of another connection carries the removal along
        var removed = Assert.Single(b.Actions.GreCalls);
        Assert.Equal(new GreCall(false, Ipv4.Parse("10.0.0.2"), 0x0100, Ipv4.Parse(PptpControl.Server), 20, Ipv4.Parse(PptpControl.External), e), removed);
        var actions = new AlgActions();
        Assert.Equal(0, h.TakeRemovedCalls(actions));
    }

    [Fact]
    public void Expire_drops_idle_connections_and_their_calls()
    {
        var (h, a, b) = TwoClients();
        ushort e = CallIdAt(a.FromClient(OutgoingCallRequest(0x0100)), 12);
        a.FromServer(OutgoingCallReply(20, e));
        b.Now = 50_000;
        b.FromClient(Message(5, 16));
        Assert.Equal(1, h.Expire(nowMs: 50_000, idleMs: 30_000));
        Assert.Equal(1, h.Connections);
        var actions = new AlgActions();
        Assert.Equal(1, h.TakeRemovedCalls(actions));
        Assert.False(actions.GreCalls[0].Add);
    }

    [Fact]
    public void A_bad_magic_cookie_is_refused_and_passes_unchanged()
    {
        var (_, a, _) = TwoClients();
        byte[] bad = OutgoingCallRequest(0x0100);
        bad[7] ^= 0xFF;
        byte[] o = a.FromClient(bad);
        Assert.Equal(1, a.Actions.Refused);
        Assert.Equal(a.ClientFrame(bad, a.ClientSeq - (uint)bad.Length), o);
        byte[] next = a.FromClient(OutgoingCallRequest(0x0100));
        Assert.Equal(1, a.Actions.Rewrites);
        Assert.True(Frames.ChecksumsValid(next));
    }

    [Fact]
    public void Non_tcp_or_truncated_frames_are_refused_without_throwing()
    {
        var h = new PptpHandler(seed: 1);
        var a = new PptpControl(h, "10.0.0.2", 40000, 1024);
        var actions = new AlgActions();
        byte[] udp = Frames.Udp("198.51.100.1", 1024, "198.51.100.2", 1723);
        Assert.Equal(udp.Length, h.Handle(a.Connection, AlgDirection.In2Out, udp, udp.Length, 0, actions, 1));
        Assert.Equal(20, h.Handle(a.Connection, AlgDirection.In2Out, udp, 20, 0, actions, 1));
        Assert.Equal(2, actions.Refused);
    }

    [Fact]
    public void A_call_id_rewritten_at_an_odd_payload_offset_keeps_the_tcp_checksum_valid()
    {
        var (_, a, b) = TwoClients();
        a.FromClient(OutgoingCallRequest(0x0777));
        byte[] odd = [.. Message(0x0F, 17), .. OutgoingCallRequest(0x0777)]; // a 17-byte message first: the OCRQ starts at offset 17
        odd[8] = 0; odd[9] = 5; // make the odd-length one an echo request (type 5)
        byte[] o = b.FromClient(odd);
        Assert.Equal(1, b.Actions.Rewrites);
        Assert.NotEqual(0x0777, CallIdAt(o, 17 + 12));
        Assert.True(Frames.ChecksumsValid(o));
    }
}
