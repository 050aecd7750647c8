#!/usr/bin/env python3
"""PPTP (RFC 2637) control channel and enhanced GRE, played by a server and clients with the
Python standard library (real TCP sockets, GRE through raw IP sockets), to check that a NAT gives
each of several inside clients only its own call's GRE when they call one server with the same
Call ID.

  server --bind ADDR [--calls N] [--seconds S]
      Listens on TCP 1723 of ADDR. Answers Start-Control-Connection-Request and
      Outgoing-Call-Request (a fresh server Call ID per call, Peer's Call ID = the Call ID the
      request carried). Then sends GRE to each call's peer address with the peer's Call ID and the
      payload "srv-call-<server call id>", and counts the GRE it receives: a packet is "ok" when
      its source is the control connection's peer and its key carries that call's server Call ID.
      Prints one JSON line per call, then exits after N calls were served for S seconds.
  client --bind ADDR --server ADDR --call-id ID [--seconds S]
      Connects from ADDR, sets up one call with Call ID ID, sends GRE to the server with the
      server's Call ID, and counts GRE addressed to ADDR: "own" when the key carries ID and the
      payload names its own server Call ID, "foreign" otherwise. Prints one JSON line; exit 0 when
      own > 0 and foreign == 0.
Every wait is bounded; nothing runs longer than --seconds plus a few seconds.
"""
import argparse
import json
import select
import socket
import struct
import sys
import threading
import time

MAGIC = 0x1A2B3C4D
PORT = 1723
IPPROTO_GRE = 47


def message(ctrl_type, body):
    length = 12 + len(body)
    return struct.pack("!HHIHH", length, 1, MAGIC, ctrl_type, 0) + body


def sccrq():
    # protocol version 1.0, framing/bearer capabilities, max channels, firmware, host name, vendor
    return message(1, struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 1, 1) + b"natd-lab".ljust(64, b"\0") + b"pptp_lab".ljust(64, b"\0"))


def sccrp():
    return message(2, struct.pack("!HBBIIHH", 0x0100, 1, 0, 1, 1, 1, 1) + b"server".ljust(64, b"\0") + b"pptp_lab".ljust(64, b"\0"))


def ocrq(call_id, serial):
    # Call ID, serial, min/max bps, bearer, framing, window, delay, phone length, reserved, phone, subaddress
    return message(7, struct.pack("!HHIIIIHHHH", call_id, serial, 300, 100000000, 3, 3, 64, 0, 0, 0) + b"\0" * 64 + b"\0" * 64)


def ocrp(call_id, peer_call_id):
    # result 1 (Connected), error 0, cause 0, connect speed, window, delay, physical channel
    return message(8, struct.pack("!HHBBHIHHI", call_id, peer_call_id, 1, 0, 0, 10000000, 64, 0, 0))


def read_message(sock, deadline):
    """One control message (header fields and the whole message), or None on EOF or timeout."""
    buf = b""
    need = 2
    while len(buf) < need:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(need - len(buf))
        except socket.timeout:
            return None
        if not chunk:
            return None
        buf += chunk
        if len(buf) >= 2:
            need = struct.unpack("!H", buf[:2])[0]
            if need < 12 or need > 1024:
                raise ValueError("bad length %d" % need)
    length, msg_type, magic, ctrl_type, _ = struct.unpack("!HHIHH", buf[:12])
    if magic != MAGIC or msg_type != 1:
        raise ValueError("bad magic or message type")
    return ctrl_type, buf


def gre(call_id, seq, payload):
    # enhanced GRE (RFC 2637 4.1): K and S set, version 1, protocol 0x880B, key = payload length + Call ID
    return struct.pack("!BBHHHI", 0x30, 0x01, 0x880B, len(payload), call_id, seq) + payload


def parse_gre(packet):
    """(source, destination, call id, payload) of an IPv4 packet carrying enhanced GRE, or None."""
    ihl = (packet[0] & 0x0F) * 4
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    g = packet[ihl:]
    if len(g) < 8 or (g[1] & 0x07) != 1 or struct.unpack("!H", g[2:4])[0] != 0x880B:
        return None
    off = 8 + (4 if g[0] & 0x10 else 0) + (4 if g[1] & 0x80 else 0)
    return src, dst, struct.unpack("!H", g[6:8])[0], g[off:]


def gre_socket(bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)
    s.bind((bind, 0))
    return s


def server(args):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.bind, PORT))
    listener.listen(8)
    raw = gre_socket(args.bind)
    calls = []  # dicts: peer, peer_call_id, server_call_id, ok, bad, sent
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    print(json.dumps({"listening": args.bind}), flush=True)

    def control(conn, peer):
        deadline = stop
        try:
            while True:
                m = read_message(conn, deadline)
                if m is None:
                    return
                ctrl_type, data = m
                if ctrl_type == 1:
                    conn.sendall(sccrp())
                elif ctrl_type == 7:
                    peer_call_id = struct.unpack("!H", data[12:14])[0]
                    with lock:
                        server_call_id = 100 + len(calls)
                        calls.append({"peer": peer[0], "peer_call_id": peer_call_id, "server_call_id": server_call_id, "ok": 0, "bad": 0, "sent": 0})
                    conn.sendall(ocrp(server_call_id, peer_call_id))
        except (OSError, ValueError) as e:
            print(json.dumps({"control_error": str(e), "peer": peer[0]}), flush=True)
        finally:
            conn.close()

    def accept():
        listener.settimeout(0.2)
        while time.monotonic() < stop:
            try:
                conn, peer = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=control, args=(conn, peer), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    seq = 0
    next_send = time.monotonic()
    while time.monotonic() < stop:
        now = time.monotonic()
        if now >= next_send:
            next_send = now + 0.1
            with lock:
                snapshot = list(calls)
            for c in snapshot:
                seq += 1
                raw.sendto(gre(c["peer_call_id"], seq, b"srv-call-%d" % c["server_call_id"]), (c["peer"], 0))
                c["sent"] += 1
        r, _, _ = select.select([raw], [], [], 0.05)
        if r:
            packet = raw.recv(4096)
            g = parse_gre(packet)
            if g is None:
                continue
            src, _, call_id, _ = g
            with lock:
                match = [c for c in calls if c["server_call_id"] == call_id]
                if match and match[0]["peer"] == src:
                    match[0]["ok"] += 1
                elif match:
                    match[0]["bad"] += 1
    with lock:
        for c in calls:
            print(json.dumps(c), flush=True)
    return 0 if len(calls) >= args.calls and all(c["ok"] > 0 and c["bad"] == 0 for c in calls) else 1


def client(args):
    raw = gre_socket(args.bind)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((args.bind, 0))
    sock.settimeout(5)
    result = {"client": args.bind, "call_id": args.call_id, "own": 0, "foreign": 0, "server_call_id": None}
    try:
        sock.connect((args.server, PORT))
        deadline = time.monotonic() + 5
        sock.sendall(sccrq())
        m = read_message(sock, deadline)
        if m is None or m[0] != 2:
            raise ValueError("no Start-Control-Connection-Reply")
        sock.sendall(ocrq(args.call_id, 1))
        m = read_message(sock, deadline)
        if m is None or m[0] != 8:
            raise ValueError("no Outgoing-Call-Reply")
        server_call_id, peer_call_id = struct.unpack("!HH", m[1][12:16])
        result["server_call_id"] = server_call_id
        result["reply_peer_call_id"] = peer_call_id
        if peer_call_id != args.call_id:
            raise ValueError("Outgoing-Call-Reply names Call ID %d, not ours" % peer_call_id)
    except (OSError, ValueError) as e:
        result["error"] = str(e)
        print(json.dumps(result), flush=True)
        return 2
    want = b"srv-call-%d" % server_call_id
    stop = time.monotonic() + args.seconds
    seq = 0
    next_send = time.monotonic()
    while time.monotonic() < stop:
        now = time.monotonic()
        if now >= next_send:
            next_send = now + 0.1
            seq += 1
            raw.sendto(gre(server_call_id, seq, b"cli-" + args.bind.encode()), (args.server, 0))
        r, _, _ = select.select([raw], [], [], 0.05)
        if not r:
            continue
        g = parse_gre(raw.recv(4096))
        if g is None:
            continue
        src, dst, call_id, payload = g
        if dst != args.bind or src != args.server:
            continue  # the other client's address on the same host, or our own packets
        if call_id == args.call_id and payload == want:
            result["own"] += 1
        else:
            result["foreign"] += 1
            result.setdefault("foreign_examples", []).append([call_id, payload.decode("ascii", "replace")])
    sock.close()
    print(json.dumps(result), flush=True)
    return 0 if result["own"] > 0 and result["foreign"] == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--calls", type=int, default=2)
    s.add_argument("--seconds", type=float, default=8)
    c = sub.add_parser("client")
    c.add_argument("--bind", required=True)
    c.add_argument("--server", required=True)
    c.add_argument("--call-id", type=lambda v: int(v, 0), required=True)
    c.add_argument("--seconds", type=float, default=3)
    args = p.parse_args()
    return server(args) if args.role == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
