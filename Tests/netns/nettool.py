#!/usr/bin/env python3
"""Small traffic tool for the vpnfast network-namespace tests.

Subcommands (every one is bounded in time and size):

  recv ADDR PORT      accept one TCP connection, read it to EOF, print "BYTES SHA256"
  send ADDR PORT      connect (retrying while the listener is not up yet), send
                      random bytes (--bytes N, or for --seconds S), print "BYTES SHA256"
  flood ADDR PORT     send hostile UDP datagrams at a WireGuard listen port and
                      print a one-line summary of what was sent
  unix PATH           send bytes (--hex) to a Unix stream socket (vpnfast's control
                      socket) and print what comes back (up to 64 KiB, --timeout)
  showcheck           read `vpnfast show --json` on stdin and check the peer sections:
                      non-zero rx/tx bytes, and every queue, sojourn, drop and ECN field
  udp ADDR PORT       one UDP flow: --count datagrams of --size bytes from
                      --src-port, --interval seconds apart; prints "udp: sent=N"

It only ever talks to the address it is given; the test scripts give it
addresses inside the namespaces they created.
"""

import argparse
import hashlib
import os
import random
import socket
import struct
import sys
import time

CHUNK = 64 * 1024


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def cmd_recv(args):
    fam = family_of(args.addr)
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(1)
    srv.settimeout(args.accept_timeout)
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        print("recv: no connection within %.0f s" % args.accept_timeout, file=sys.stderr)
        return 2
    finally:
        srv.close()
    conn.settimeout(args.idle_timeout)
    digest = hashlib.sha256()
    total = 0
    deadline = time.monotonic() + args.max_seconds
    try:
        while True:
            if time.monotonic() > deadline:
                print("recv: gave up after %.0f s" % args.max_seconds, file=sys.stderr)
                return 3
            data = conn.recv(CHUNK)
            if not data:
                break
            digest.update(data)
            total += len(data)
    except socket.timeout:
        print("recv: stalled for %.0f s after %d bytes" % (args.idle_timeout, total), file=sys.stderr)
        return 3
    except OSError as e:
        print("recv: %s after %d bytes" % (e, total), file=sys.stderr)
        return 3
    finally:
        conn.close()
    print(total, digest.hexdigest())
    return 0


def connect_retry(addr, port, seconds):
    """Connect, retrying on refusal/timeout until `seconds` have passed."""
    fam = family_of(addr)
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect((addr, port))
            return s
        except OSError as e:
            last = e
            s.close()
            time.sleep(0.1)
    raise OSError("could not connect to %s port %d within %.0f s: %s" % (addr, port, seconds, last))


def cmd_send(args):
    try:
        s = connect_retry(args.addr, args.port, args.connect_timeout)
    except OSError as e:
        print("send: %s" % e, file=sys.stderr)
        return 2
    s.settimeout(args.idle_timeout)
    digest = hashlib.sha256()
    total = 0
    start = time.monotonic()
    hard_deadline = start + args.max_seconds
    # Optional pacing, so a timed stream leaves room for other traffic.
    rate = args.rate_mbit * 1e6 / 8 if args.rate_mbit > 0 else 0
    try:
        while True:
            now = time.monotonic()
            if now > hard_deadline:
                print("send: gave up after %.0f s with %d bytes sent" % (args.max_seconds, total), file=sys.stderr)
                return 3
            if args.seconds > 0:
                if now - start >= args.seconds:
                    break
                n = CHUNK
            else:
                n = min(CHUNK, args.bytes - total)
                if n <= 0:
                    break
            if rate and total > rate * (now - start):
                time.sleep(min(0.01, total / rate - (now - start)))
                continue
            data = os.urandom(n)
            digest.update(data)
            s.sendall(data)
            total += n
        s.shutdown(socket.SHUT_WR)
        # Wait until the receiver closes, so every byte has been taken.
        while s.recv(CHUNK):
            pass
    except OSError as e:
        print("send: %s after %d bytes" % (e, total), file=sys.stderr)
        return 3
    finally:
        s.close()
    print(total, digest.hexdigest())
    return 0


def le32(v):
    return struct.pack("<I", v)


def cmd_flood(args):
    """Hostile datagrams: random junk plus malformed WireGuard messages."""
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    fam = family_of(args.addr)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if args.src:
        s.bind((args.src, 0))
    dst = (args.addr, args.port)

    def junk(n):
        return rnd.getrandbits(8 * n).to_bytes(n, "little") if n else b""

    plan = []
    plan += [("random", lambda: junk(rnd.randint(0, 1500)))] * args.random
    # Transport-looking messages: type 4, a receiver index nobody owns, any counter.
    plan += [("transport", lambda: le32(4) + junk(4) + junk(8) + junk(rnd.randint(16, 1400)))] * args.transport
    # Initiations cut short (100 bytes instead of 148).
    plan += [("short-init", lambda: le32(1) + junk(96))] * args.short_init
    # Full-size initiations whose mac1 cannot be right.
    plan += [("bad-mac1-init", lambda: le32(1) + junk(144))] * args.bad_init
    # Responses and cookie replies for handshakes that never happened.
    plan += [("bogus-response", lambda: le32(2) + junk(88))] * args.bogus_other
    plan += [("bogus-cookie", lambda: le32(3) + junk(60))] * args.bogus_other
    rnd.shuffle(plan)

    sent = {}
    errors = 0
    start = time.monotonic()
    deadline = start + args.max_seconds
    for i, (kind, make) in enumerate(plan):
        if time.monotonic() > deadline:
            break
        try:
            s.sendto(make(), dst)
            sent[kind] = sent.get(kind, 0) + 1
        except OSError:
            errors += 1  # e.g. ENOBUFS: the flood is lossy by nature
        if args.pps > 0 and i % 100 == 99:
            ahead = (i + 1) / args.pps - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    s.close()
    total = sum(sent.values())
    detail = " ".join("%s=%d" % kv for kv in sorted(sent.items()))
    print("flood: seed=%d sent=%d errors=%d in %.2f s (%s)" % (seed, total, errors, time.monotonic() - start, detail))
    return 0 if total > 0 else 1


def cmd_unix(args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    s.connect(args.path)
    try:
        s.sendall(bytes.fromhex(args.hex))
    except OSError:
        pass  # the server may answer a too-long request and hang up before taking all of it
    got = b""
    try:
        while len(got) < 65536:
            data = s.recv(4096)
            if not data:
                break
            got += data
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    sys.stdout.write(got.decode("utf-8", "replace"))
    return 0


# Fields every peer section of `vpnfast show --json` carries (sojourn percentiles once packets were sent).
SHOW_PEER_FIELDS = [
    "peer", "rx_bytes", "tx_bytes", "latest_handshake_unix_ns", "queue_packets", "queue_bytes", "active_flows",
    "sojourn_samples", "sojourn_p50_ns", "sojourn_p99_ns", "tx_drop_codel", "tx_drop_aqm_limit",
    "rx_drop_bad_mac", "rx_drop_replay", "rx_drop_ecn_not_ect_ce", "tx_ce_marks", "rx_outer_ce",
    "ecn_anomaly_dangerous", "ecn_anomaly_possibly_dangerous", "rx_codel_drops", "rx_codel_ce_marks",
]


def cmd_showcheck(args):
    import json
    try:
        doc = json.load(sys.stdin)
    except ValueError as e:
        print("showcheck: not JSON: %s" % e)
        return 1
    ifaces = doc.get("interfaces", [])
    if len(ifaces) != 1:
        print("showcheck: %d interfaces, expected 1" % len(ifaces))
        return 1
    iface = ifaces[0]
    for key in ("interface", "listen_port", "threads", "io", "aead", "aqm", "counters"):
        if key not in iface:
            print("showcheck: interface section lacks %s" % key)
            return 1
    peers = iface.get("peers", [])
    if len(peers) != 1:
        print("showcheck: %d peers, expected 1" % len(peers))
        return 1
    peer = peers[0]
    # With --no-aqm there is no fq_codel, so no sojourn times.
    fifo = iface["aqm"] == "off"
    missing = [k for k in SHOW_PEER_FIELDS if k not in peer and not (fifo and k.startswith("sojourn_p"))]
    if missing:
        print("showcheck: peer lacks %s" % ",".join(missing))
        return 1
    for k in ("rx_bytes", "tx_bytes", "latest_handshake_unix_ns") + (() if fifo else ("sojourn_samples",)):
        if not isinstance(peer[k], int) or peer[k] <= 0:
            print("showcheck: peer %s is %r, expected a positive number" % (k, peer[k]))
            return 1
    if args.peer and peer["peer"] != args.peer:
        print("showcheck: peer is %s, expected %s" % (peer["peer"], args.peer))
        return 1
    print("showcheck: rx_bytes=%d tx_bytes=%d sojourn p50=%sns p99=%sns samples=%d queue=%d/%dB" % (
        peer["rx_bytes"], peer["tx_bytes"], peer.get("sojourn_p50_ns", "-"), peer.get("sojourn_p99_ns", "-"),
        peer["sojourn_samples"], peer["queue_packets"], peer["queue_bytes"]))
    return 0


def cmd_udp(args):
    """One small UDP flow from a fixed source port (nobody needs to listen)."""
    s = socket.socket(family_of(args.addr), socket.SOCK_DGRAM)
    s.bind(("", args.src_port))
    sent = 0
    for _ in range(args.count):
        try:
            s.sendto(b"f" * args.size, (args.addr, args.port))
            sent += 1
        except OSError:
            pass  # an ICMP error from an earlier datagram (port unreachable) surfaces here
        time.sleep(args.interval)
    s.close()
    print("udp: sent=%d" % sent)
    return 0 if sent > 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("recv")
    r.add_argument("addr")
    r.add_argument("port", type=int)
    r.add_argument("--accept-timeout", type=float, default=20)
    r.add_argument("--idle-timeout", type=float, default=20)
    r.add_argument("--max-seconds", type=float, default=120)
    r.set_defaults(func=cmd_recv)

    sd = sub.add_parser("send")
    sd.add_argument("addr")
    sd.add_argument("port", type=int)
    sd.add_argument("--bytes", type=int, default=0)
    sd.add_argument("--seconds", type=float, default=0)
    sd.add_argument("--rate-mbit", type=float, default=0)
    sd.add_argument("--connect-timeout", type=float, default=15)
    sd.add_argument("--idle-timeout", type=float, default=20)
    sd.add_argument("--max-seconds", type=float, default=120)
    sd.set_defaults(func=cmd_send)

    f = sub.add_parser("flood")
    f.add_argument("addr")
    f.add_argument("port", type=int)
    f.add_argument("--src", default=None, help="local address to send from")
    f.add_argument("--random", type=int, default=20000)
    f.add_argument("--transport", type=int, default=2000)
    f.add_argument("--short-init", type=int, default=1000)
    f.add_argument("--bad-init", type=int, default=1000)
    f.add_argument("--bogus-other", type=int, default=250)
    f.add_argument("--pps", type=float, default=40000, help="pace to this many datagrams/s (0: unpaced)")
    f.add_argument("--max-seconds", type=float, default=30)
    f.add_argument("--seed", type=int, default=None)
    f.set_defaults(func=cmd_flood)

    u = sub.add_parser("unix")
    u.add_argument("path")
    u.add_argument("--hex", default="", help="bytes to send, in hex")
    u.add_argument("--timeout", type=float, default=5)
    u.set_defaults(func=cmd_unix)

    c = sub.add_parser("showcheck")
    c.add_argument("--peer", default=None, help="the public key the one peer must have")
    c.set_defaults(func=cmd_showcheck)
    u = sub.add_parser("udp")
    u.add_argument("addr")
    u.add_argument("port", type=int)
    u.add_argument("--src-port", type=int, required=True)
    u.add_argument("--count", type=int, default=10)
    u.add_argument("--size", type=int, default=400)
    u.add_argument("--interval", type=float, default=0.02)
    u.set_defaults(func=cmd_udp)

    args = p.parse_args()
    if args.cmd == "udp" and not (0 < args.count <= 10000 and 0 < args.size <= 1400 and 0 <= args.interval <= 1):
        p.error("udp: --count 1..10000, --size 1..1400, --interval 0..1")
    if args.cmd == "send" and args.bytes <= 0 and args.seconds <= 0:
        p.error("send needs --bytes N or --seconds S")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
