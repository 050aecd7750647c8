#!/usr/bin/python3
"""Builds the fragment replay captures with scapy (RFC 4787 REQ-14 cases for natd's replay tests).

usage: fragment_captures.py OUTDIR [EXTERNAL_PORT]

Writes classic pcaps (the replayer tells the sides by source address):
  udp-out-of-order.pcap   the router's ARP, then a 4000-byte UDP datagram 10.0.0.2:40000 ->
                          203.0.113.53:5000 as three fragments in reverse order, 10 ms apart;
                          with EXTERNAL_PORT, also the server's 3500-byte reply to
                          198.51.100.1:EXTERNAL_PORT, its first fragment last
  teardrop.pcap           the router's ARP, then fragments of one datagram that overlap
                          (offset 0 len 1480, offset 1000 len 1480, then the last at 2480)
"""
import sys
from scapy.all import ARP, Ether, IP, UDP, Raw, fragment, wrpcap

INSIDE_MAC, GW_IN, GW_OUT, ROUTER = "02:00:00:00:00:0a", "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
T0 = 1_700_000_000.0


def payload(n, k):
    return bytes((i * k + 3) & 0xFF for i in range(n))


def stamp(frames, start):
    for i, f in enumerate(frames):
        f.time = start + i * 0.010
    return frames


def router_arp():
    return Ether(src=ROUTER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=ROUTER, psrc="198.51.100.254", pdst="198.51.100.1")


def main():
    out = sys.argv[1]
    ext = int(sys.argv[2]) if len(sys.argv) > 2 else None

    req = IP(src="10.0.0.2", dst="203.0.113.53", id=0x1111, ttl=64) / UDP(sport=40000, dport=5000) / Raw(payload(4000, 7))
    frags = [Ether(src=INSIDE_MAC, dst=GW_IN) / f for f in fragment(req, fragsize=1480)]
    frames = [router_arp()] + list(reversed(frags))
    if ext is not None:
        rep = IP(src="203.0.113.53", dst="198.51.100.1", id=0x2222, ttl=60) / UDP(sport=5000, dport=ext) / Raw(payload(3500, 11))
        back = [Ether(src=ROUTER, dst=GW_OUT) / f for f in fragment(rep, fragsize=1480)]
        frames += back[1:] + back[:1]
    wrpcap(f"{out}/udp-out-of-order.pcap", stamp(frames, T0))

    data = payload(4000, 5)
    udp = bytes(UDP(sport=40001, dport=5000, len=8 + len(data)) / Raw(data))
    base = dict(src="10.0.0.2", dst="203.0.113.53", id=0x3333, proto=17, ttl=64)
    tear = [
        Ether(src=INSIDE_MAC, dst=GW_IN) / IP(flags="MF", frag=0, **base) / Raw(udp[0:1480]),
        Ether(src=INSIDE_MAC, dst=GW_IN) / IP(flags="MF", frag=1000 // 8, **base) / Raw(udp[1000:2480]),
        Ether(src=INSIDE_MAC, dst=GW_IN) / IP(flags=0, frag=2480 // 8, **base) / Raw(udp[2480:]),
    ]
    wrpcap(f"{out}/teardrop.pcap", stamp([router_arp()] + tear, T0))


if __name__ == "__main__":
    main()
