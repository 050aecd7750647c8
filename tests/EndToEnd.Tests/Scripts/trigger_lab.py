#!/usr/bin/python3
"""Port-trigger lab programs (what ipautofw did: a connection out to a trigger port opens a range back).

udp-echo    (inside host)  binds UDP on --bind at each of --ports; prints "ready", then for every
            datagram "got <port> from <addr>:<port> <text>" and answers "echo <text>" from the
            same socket (so from the same port), until --lifetime runs out.
udp-send    (outside host) sends --count datagrams "<tag> <n>" from --src to --dst:--port, waiting
            up to --wait s after each for an answer; prints "reply from <addr>:<port> <text>" per
            answer and finally "udp tag=T replies=N wrong=M", where only answers from
            --dst:--port with this tag count as replies (anything else is wrong).
tcp-server  (outside host) listens on --port; prints "ready", "accepted from <addr>:<port>" and
            "closed <addr>:<port> <how>" (eof or reset), until --lifetime runs out.
tcp-hold    (inside host)  connects from --src (any port) to --dst:--port, prints "connected from <addr>:<port>", holds
            the connection until the file --until exists, then closes it with a RST (SO_LINGER 0)
            and prints "reset"; gives up after --lifetime.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time


def udp_echo(args):
    socks = []
    for port in [int(p) for p in args.ports.split(",")]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.bind, port))
        socks.append(s)
    print("ready", flush=True)
    deadline = time.time() + args.lifetime
    while time.time() < deadline:
        ready, _, _ = select.select(socks, [], [], 0.5)
        for s in ready:
            data, peer = s.recvfrom(2048)
            text = data.decode(errors="replace")
            print(f"got {s.getsockname()[1]} from {peer[0]}:{peer[1]} {text}", flush=True)
            s.sendto(f"echo {text}".encode(), peer)
    return 0


def udp_send(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.src, 0))
    replies = wrong = 0
    for n in range(1, args.count + 1):
        text = f"{args.tag} {n}"
        s.sendto(text.encode(), (args.dst, args.port))
        end = time.time() + args.wait
        while time.time() < end:
            ready, _, _ = select.select([s], [], [], max(0, end - time.time()))
            if not ready:
                break
            data, peer = s.recvfrom(2048)
            answer = data.decode(errors="replace")
            print(f"reply from {peer[0]}:{peer[1]} {answer}", flush=True)
            if peer == (args.dst, args.port) and answer == f"echo {text}":
                replies += 1
                break
            wrong += 1
    print(f"udp tag={args.tag} replies={replies} wrong={wrong}", flush=True)
    return 0


def tcp_server(args):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", args.port))
    ls.listen(4)
    print("ready", flush=True)
    conns = {}
    deadline = time.time() + args.lifetime
    while time.time() < deadline:
        ready, _, _ = select.select([ls] + list(conns), [], [], 0.5)
        for s in ready:
            if s is ls:
                c, peer = ls.accept()
                conns[c] = peer
                print(f"accepted from {peer[0]}:{peer[1]}", flush=True)
                continue
            peer = conns[s]
            try:
                how = "eof" if not s.recv(2048) else None
            except ConnectionResetError:
                how = "reset"
            if how:
                print(f"closed {peer[0]}:{peer[1]} {how}", flush=True)
                del conns[s]
                s.close()
    return 0


def tcp_hold(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    if args.src != "0.0.0.0":
        s.bind((args.src, 0))
    s.connect((args.dst, args.port))
    local = s.getsockname()
    print(f"connected from {local[0]}:{local[1]}", flush=True)
    deadline = time.time() + args.lifetime
    while time.time() < deadline and not os.path.exists(args.until):
        time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("reset", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["udp-echo", "udp-send", "tcp-server", "tcp-hold"])
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--ports", default="6970")
    p.add_argument("--src", default="0.0.0.0")
    p.add_argument("--dst", default="198.51.100.1")
    p.add_argument("--port", type=int, default=6970)
    p.add_argument("--tag", default="T")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--wait", type=float, default=0.5)
    p.add_argument("--until", default="/nonexistent")
    p.add_argument("--lifetime", type=float, default=60.0)
    args = p.parse_args()
    roles = {"udp-echo": udp_echo, "udp-send": udp_send, "tcp-server": tcp_server, "tcp-hold": tcp_hold}
    return roles[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
