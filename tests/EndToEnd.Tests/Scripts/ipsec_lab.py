#!/usr/bin/python3
"""IPsec masquerading lab peers (VPN Masquerade HOWTO section 6), built with scapy.

server (outside host): answers ISAKMP on UDP 500 (responder cookie derived from the client's tag,
so replies of two clients sharing an initiator cookie differ), ESP on raw IP protocol 50 (reply SPI
derived from the tag) and NAT-T on UDP 4500 (plain UDP echo). Prints "ready" when listening.

client (inside host): one phase per run, prints one line "<phase> tag=T own=N foreign=M ...":
  isakmp  main-mode-like exchange from port 500 to 500, retransmitting the first message until
          answered (natd holds back a colliding initiator cookie), then 3 follow-ups with the
          learned responder cookie;
  esp     ESP packets with the client's SPI; counts replies addressed to this client's address;
  natt    one UDP 4500 exchange.
A reply carrying another client's tag counts as foreign: it must never happen.
"""
import argparse
import select
import socket
import struct
import sys
import time

from scapy.layers.isakmp import ISAKMP
from scapy.layers.ipsec import ESP
from scapy.packet import Raw


def tag_number(tag):
    return sum(tag.encode()) & 0xFFFF


def isakmp_bytes(icookie, rcookie, text):
    pkt = ISAKMP(init_cookie=icookie.to_bytes(8, "big"), resp_cookie=rcookie.to_bytes(8, "big"),
                 next_payload=0, exch_type=2) / Raw(text.encode())
    return bytes(pkt)


def parse_isakmp(data):
    if len(data) < 28:
        return None
    icookie, rcookie = struct.unpack("!QQ", data[:16])
    return icookie, rcookie, data[28:].decode(errors="replace")


def esp_bytes(spi, seq, text):
    return bytes(ESP(spi=spi, seq=seq, data=text.encode()))


def server(args):
    isakmp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    isakmp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    isakmp.bind(("0.0.0.0", 500))
    natt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    natt.bind(("0.0.0.0", 4500))
    esp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    print("ready", flush=True)
    deadline = time.time() + args.lifetime
    held = []  # (due, bytes, peer): first-message replies, held so colliding first messages overlap
    while time.time() < deadline:
        now = time.time()
        for item in [h for h in held if h[0] <= now]:
            isakmp.sendto(item[1], item[2])
            held.remove(item)
        wait = min([0.5] + [max(0, h[0] - now) for h in held])
        ready, _, _ = select.select([isakmp, natt, esp], [], [], wait)
        for s in ready:
            if s is isakmp:
                data, peer = s.recvfrom(2048)
                parsed = parse_isakmp(data)
                if parsed is None:
                    continue
                icookie, rcookie, tag = parsed
                print(f"isakmp from {peer[0]}:{peer[1]} icookie={icookie:016x} rcookie={rcookie:016x} tag={tag}", flush=True)
                if rcookie == 0:
                    rcookie = 0xC0C0_0000_0000_0000 | tag_number(tag)
                    held.append((time.time() + args.hold, isakmp_bytes(icookie, rcookie, tag), peer))
                else:
                    s.sendto(isakmp_bytes(icookie, rcookie, tag), peer)
            elif s is natt:
                data, peer = s.recvfrom(2048)
                print(f"natt from {peer[0]}:{peer[1]} {data.decode(errors='replace')}", flush=True)
                s.sendto(data, peer)
            else:
                data, peer = s.recvfrom(4096)
                ihl = (data[0] & 0x0F) * 4
                body = data[ihl:]
                if len(body) < 8:
                    continue
                spi, seq = struct.unpack("!II", body[:8])
                tag = body[8:].decode(errors="replace")
                print(f"esp from {peer[0]} spi={spi:08x} tag={tag}", flush=True)
                s.sendto(esp_bytes(0x2000_0000 | tag_number(tag), seq, tag), (peer[0], 0))
    return 0


def client_isakmp(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.src, 500))
    own = foreign = sent = 0
    rcookie = 0
    if args.start_at > 0:
        time.sleep(max(0.0, args.start_at - time.time()))  # both clients' first messages at once
    deadline = time.time() + args.timeout
    while rcookie == 0 and time.time() < deadline:
        s.sendto(isakmp_bytes(args.icookie, 0, args.tag), (args.dst, 500))
        sent += 1
        end = time.time() + 0.3
        while time.time() < end:
            ready, _, _ = select.select([s], [], [], max(0, end - time.time()))
            if not ready:
                break
            parsed = parse_isakmp(s.recv(2048))
            if parsed is None:
                continue
            if parsed[2] != args.tag or parsed[0] != args.icookie:
                foreign += 1
                continue
            own += 1
            rcookie = parsed[1]
            break
    for _ in range(3 if rcookie else 0):
        s.sendto(isakmp_bytes(args.icookie, rcookie, args.tag), (args.dst, 500))
        ready, _, _ = select.select([s], [], [], 1.0)
        if ready:
            parsed = parse_isakmp(s.recv(2048))
            if parsed and parsed[2] == args.tag and parsed[1] == rcookie:
                own += 1
            else:
                foreign += 1
    # Anything still queued for this client is counted too.
    time.sleep(0.3)
    while select.select([s], [], [], 0)[0]:
        parsed = parse_isakmp(s.recv(2048))
        if parsed and parsed[2] == args.tag:
            own += 1
        else:
            foreign += 1
    print(f"isakmp tag={args.tag} own={own} foreign={foreign} sent={sent} rcookie={rcookie:016x}", flush=True)
    return 0


def client_esp(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    s.bind((args.src, 0))
    own = foreign = 0
    for seq in range(1, args.count + 1):
        s.sendto(esp_bytes(args.spi, seq, args.tag), (args.dst, 0))
        end = time.time() + args.wait
        while time.time() < end:
            ready, _, _ = select.select([s], [], [], max(0, end - time.time()))
            if not ready:
                break
            data = s.recv(4096)
            if socket.inet_ntoa(data[16:20]) != args.src:
                continue  # the other client's address: its own socket judges it
            ihl = (data[0] & 0x0F) * 4
            body = data[ihl:]
            tag = body[8:].decode(errors="replace")
            if tag == args.tag:
                own += 1
                break
            foreign += 1
    print(f"esp tag={args.tag} own={own} foreign={foreign}", flush=True)
    return 0


def client_natt(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.src, 4500))
    s.settimeout(args.timeout)
    own = foreign = 0
    s.sendto(f"natt {args.tag}".encode(), (args.dst, 4500))
    try:
        data = s.recv(2048).decode(errors="replace")
        if data == f"natt {args.tag}":
            own += 1
        else:
            foreign += 1
    except socket.timeout:
        pass
    print(f"natt tag={args.tag} own={own} foreign={foreign}", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "isakmp", "esp", "natt"])
    p.add_argument("--src", default="10.0.0.2")
    p.add_argument("--dst", default="198.51.100.2")
    p.add_argument("--tag", default="A")
    p.add_argument("--icookie", type=lambda v: int(v, 0), default=0x1111222233334444)
    p.add_argument("--spi", type=lambda v: int(v, 0), default=0x1001)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--wait", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--lifetime", type=float, default=120.0)
    p.add_argument("--hold", type=float, default=0.2, help="server: seconds a reply to a first ISAKMP message is held")
    p.add_argument("--start-at", type=float, default=0.0, help="client: wall-clock time (epoch s) to send the first message")
    args = p.parse_args()
    return {"server": server, "isakmp": client_isakmp, "esp": client_esp, "natt": client_natt}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
