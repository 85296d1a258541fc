#!/usr/bin/env python3
"""One block of perf/latency.sh: RTT idle and under load through a tunnel.

    latency.py block --ns-a NS --ns-b NS --dst ADDR --load fwd|both --out FILE ...

Between two namespaces whose tunnel is already up (A is the client side, B
the server side), it runs for the whole block:

  - ping from A to ADDR every --ping-interval seconds (`fping -D`, or
    `ping -D` with --ping-tool iputils, so each reply carries the wall-clock
    time it arrived);
  - a sparse UDP flow, `irtt client -i INTERVAL` from A to an irtt server in
    B (JSON with the send and receive time of every round trip);

and in the middle of it the bulk load: `iperf3 -P STREAMS` from A to B
(`--load fwd`), or that and `iperf3 -P STREAMS -R` at the same time
(`--load both`, RRUL-like). The first --idle seconds are the idle window;
the loaded window runs from --warmup seconds after the load starts to the
end of the load. Every probe is placed in a window by the time it was sent.

The record written to --out holds, per probe (ping, irtt) and window (idle,
loaded): sample count, losses, p50/p90/p99/max/mean RTT in ms; the
throughput iperf3's receivers counted; the endpoints' CPU time over the
load; the qdisc statistics of the shaped underlay device(s); other
processes' CPU use during the block; and the raw series (send time relative
to the start of the load, RTT in ms; lost probes as null) for the plots.

Every child process runs under `timeout` and every wait is bounded; the
only addresses used are the ones latency.sh passes in.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (perf/measure.py: /proc readers, background CPU)

PING_LINE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) .*time=([0-9.]+) ms")
PING_SENT = re.compile(r"^(\d+) packets transmitted")
FPING_LINE = re.compile(r"^\[(\d+\.\d+)\] \S+ : \[(\d+)\], \d+ bytes, ([0-9.]+) ms")
FPING_SENT = re.compile(r"^\S+ : xmt/rcv/%loss = (\d+)/")


def ping_command(tool, interval, seconds, dst):
    """The ICMP probe's command line: `interval` seconds apart for `seconds` seconds, each reply timestamped.

    fping (the default) sends on its schedule and sleeps in between. iputils ping with an interval under one
    clock tick (10 ms at USER_HZ 100) spins on sched_yield and non-blocking reads while no reply is outstanding,
    so its CPU use grows as the RTT shrinks, and it sent every 13-16 ms instead of 10 here. fping counts a reply
    later than -t as lost (iputils prints late replies), so -t is far above any RTT the scenarios produce.
    """
    if tool == "fping":
        return ["fping", "-D", "-c", str(max(1, int(round(seconds / interval)))), "-p", "%d" % round(interval * 1000),
                "-t", "10000", dst]
    return ["ping", "-D", "-n", "-i", str(interval), "-W", "2", "-w", "%d" % int(round(seconds)), dst]


def percentile(sorted_vals, q):
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    if not sorted_vals:
        return None
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def window_stats(series, t0, t1):
    """Stats of the (send_time, rtt_ms or None) samples sent in [t0, t1)."""
    rtts, lost = [], 0
    for t, rtt in series:
        if t0 <= t < t1:
            if rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
    rtts.sort()
    n = len(rtts) + lost
    out = {"window_s": [round(t0, 3), round(t1, 3)], "sent": n, "received": len(rtts), "lost": lost,
           "loss_pct": (100.0 * lost / n) if n else None}
    if rtts:
        out.update({"p50": percentile(rtts, 50), "p90": percentile(rtts, 90), "p99": percentile(rtts, 99),
                    "max": rtts[-1], "min": rtts[0], "mean": sum(rtts) / len(rtts)})
    return out


def parse_ping(path, tool="fping"):
    """[(send wall time, rtt ms or None)] from the probe's output (`ping -D -n` or `fping -D -c`), and an error
    or None.

    Both print the time a reply arrived; the send time is that minus the RTT. A lost probe's send time is
    interpolated from its neighbours' (both send on a fixed schedule, so this is close).
    """
    line_re, sent_re, first = (FPING_LINE, FPING_SENT, 0) if tool == "fping" else (PING_LINE, PING_SENT, 1)
    got, sent = {}, None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = line_re.match(line)
                if m:
                    seq, rtt = int(m.group(2)), float(m.group(3))
                    got.setdefault(seq, (float(m.group(1)) - rtt / 1000.0, rtt))
                    continue
                m = sent_re.match(line)
                if m:
                    sent = int(m.group(1))
    except OSError as e:
        return [], "no ping output: %s" % e
    if not got:
        return [], "ping got no replies"
    seqs = sorted(got)
    # Sequence numbers start at `first` (iputils 1, fping 0) and wrap at 65536 (never within a block at 100/s).
    last = max(seqs[-1], first + (sent or 0) - 1)
    out, known = [], [(s, got[s][0]) for s in seqs]
    k = 0
    for seq in range(first, last + 1):
        if seq in got:
            out.append(got[seq])
            continue
        while k + 1 < len(known) and known[k + 1][0] < seq:
            k += 1
        (sa, ta) = known[k]
        if k + 1 < len(known) and known[k + 1][0] > seq:
            sb, tb = known[k + 1]
            t = ta + (tb - ta) * (seq - sa) / (sb - sa)
        else:
            step = (known[-1][1] - known[0][1]) / max(1, known[-1][0] - known[0][0])
            t = ta + step * (seq - sa)
        out.append((t, None))
    return out, None


def parse_irtt(path):
    """[(send wall time, rtt ms or None)] from `irtt client -o FILE.json`, and an error or None.

    irtt's RTT excludes the time the server held the packet (its receive and
    send timestamps), so it is the network's share of the round trip.
    """
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return [], "no irtt JSON: %s" % e
    out = []
    for rt in doc.get("round_trips") or []:
        try:
            t = rt["timestamps"]["client"]["send"]["wall"] / 1e9
        except (KeyError, TypeError):
            continue
        lost = str(rt.get("lost", "false")) != "false"
        rtt = (rt.get("delay") or {}).get("rtt")
        out.append((t, None if lost or rtt is None else rtt / 1e6))
    if not out:
        return [], "irtt recorded no round trips"
    return out, None


def listening(ns, port, proto):
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hln" + proto, "sport = :%d" % port],
                             capture_output=True, text=True, timeout=5).stdout
    except subprocess.TimeoutExpired:
        return False
    return bool(out.strip())


def wait_listening(ns, port, proto, proc, limit=5.0):
    deadline = time.monotonic() + limit
    while not listening(ns, port, proto):
        if time.monotonic() > deadline or proc.poll() is not None:
            return False
        time.sleep(0.05)
    return True


def finish(proc, limit):
    """Wait up to `limit` s for proc; then SIGTERM, then SIGKILL. Returns its status."""
    try:
        return proc.wait(timeout=max(0.1, limit))
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            return proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=3)


def iperf_result(path, direction):
    rec = {"direction": direction}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        rec["error"] = "iperf3 gave no JSON: %s" % e
        return rec
    if "error" in data:
        rec["error"] = "iperf3: %s" % data["error"]
        return rec
    try:
        recv, sent = data["end"]["sum_received"], data["end"]["sum_sent"]
        rec.update({"mbps": float(recv["bits_per_second"]) / 1e6, "bytes": int(recv["bytes"]),
                    "seconds": float(recv["seconds"]), "retransmits": sent.get("retransmits"),
                    "sender_cc": data["end"].get("sender_tcp_congestion"),
                    "receiver_cc": data["end"].get("receiver_tcp_congestion")})
    except (KeyError, TypeError, ValueError) as e:
        rec["error"] = "unexpected iperf3 JSON: missing %s" % e
    return rec


def child_pid(pid):
    """The first child of process `pid`, or None."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def qdisc_stats(ns, dev):
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev],
                             capture_output=True, text=True, timeout=5).stdout
        rows = json.loads(out)
    except (subprocess.TimeoutExpired, ValueError):
        return None
    keep = ("kind", "handle", "bytes", "packets", "drops", "overlimits", "requeues", "backlog", "qlen")
    return [{k: r[k] for k in keep if k in r} for r in rows if r.get("root")]


def cmd_block(a):
    os.makedirs(a.logdir, exist_ok=True)
    pids = [int(p) for p in a.pids.split(",") if p.strip()] if a.pids else []
    exclude = measure.netns_inodes([a.ns_a, a.ns_b])
    bg0, w0 = measure.other_cpu_sample(exclude), time.monotonic()
    rec = {"load": a.load, "streams": a.streams, "idle_seconds": a.idle, "load_seconds": a.seconds,
           "warmup_seconds": a.warmup, "ping_interval_s": a.ping_interval, "irtt_interval": a.irtt_interval,
           "loadavg_start": measure.loadavg()}
    log = lambda name: open(os.path.join(a.logdir, name), "w")  # noqa: E731
    ns_a = ["ip", "netns", "exec", a.ns_a]
    ns_b = ["ip", "netns", "exec", a.ns_b]
    procs = []
    errors = []

    def spawn(cmd, out, err=subprocess.STDOUT):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        procs.append(p)
        return p

    probe_s = a.idle + a.seconds + a.tail
    irtt_port = a.port_base
    iperf_ports = [a.port_base + 1, a.port_base + 2] if a.load == "both" else [a.port_base + 1]
    try:
        # Servers in B, before anything is timed.
        irtt_srv = spawn(ns_b + ["timeout", str(int(probe_s + 60)), "irtt", "server", "-b",
                                 "%s:%d" % (a.dst, irtt_port), "-i", "0", "--timeout=30s"],
                         log("irtt-server.log"))
        servers = [spawn(ns_b + ["timeout", str(int(probe_s + 60)), "iperf3", "-s", "-1", "-B", a.dst,
                                 "-p", str(p)], log("iperf-server-%d.log" % p)) for p in iperf_ports]
        if not wait_listening(a.ns_b, irtt_port, "u", irtt_srv):
            raise RuntimeError("irtt server did not start listening on UDP %d" % irtt_port)
        for p, s in zip(iperf_ports, servers):
            if not wait_listening(a.ns_b, p, "t", s):
                raise RuntimeError("iperf3 server did not start listening on TCP %d" % p)

        # The probes run for the whole block.
        ping_out = os.path.join(a.logdir, "ping.txt")
        irtt_json = os.path.join(a.logdir, "irtt.json")
        t_start = time.time()
        ping = spawn(ns_a + ["timeout", str(int(probe_s + 15))] + ping_command(a.ping_tool, a.ping_interval, probe_s,
                                                                           a.dst), open(ping_out, "w"))
        irtt = spawn(ns_a + ["timeout", str(int(probe_s + 30)), "irtt", "client", "-Q", "-i", a.irtt_interval,
                             "-d", "%gs" % probe_s, "--wait=2x1s", "-o", irtt_json,
                             "%s:%d" % (a.dst, irtt_port)], log("irtt-client.log"))
        time.sleep(a.idle)
        # ping itself, below `ip netns exec` (which execs) and `timeout` (which forks it).
        ping_pid = child_pid(ping.pid)

        # The load.
        cpu0 = [measure.cpu_seconds(p) for p in pids]
        ping_cpu0 = measure.cpu_seconds(ping_pid)
        times0 = measure.cpu_times()
        t_load0 = time.time()
        clients = []
        for p in iperf_ports:
            rev = (p != iperf_ports[0])
            out = os.path.join(a.logdir, "iperf-%s.json" % ("rev" if rev else "fwd"))
            cmd = ns_a + ["timeout", str(int(a.seconds + 40)), "iperf3", "-c", a.dst, "-p", str(p), "-J",
                          "-t", str(a.seconds), "-P", str(a.streams)] + (["-R"] if rev else []) \
                + ([] if a.cc == "keep" else ["-C", a.cc])
            clients.append((spawn(cmd, open(out, "w"), log("iperf-client-%d.err" % p)), out, rev))
        for c, _, _ in clients:
            finish(c, a.seconds + 45)
        t_load1 = time.time()
        cpu1 = [measure.cpu_seconds(p) for p in pids]
        ping_cpu1 = measure.cpu_seconds(ping_pid)
        steal = measure.steal_share(times0, measure.cpu_times())
        if steal is not None:
            # Time the hypervisor gave this VM's vCPUs to someone else during the load: a slow block with a
            # high share was slowed by the host, not by what it measured.
            rec["steal_share"] = steal
        if ping_cpu0 is not None and ping_cpu1 is not None and t_load1 > t_load0:
            # The probe's own CPU under load: iputils ping spins (sched_yield, non-blocking recvmsg) until the next
            # send when no reply is outstanding and the interval is under one clock tick, so a tunnel with a short
            # RTT makes ping use more CPU, which the load then lacks.
            rec["ping_cpu_share"] = (ping_cpu1 - ping_cpu0) / (t_load1 - t_load0)
        rec["qdisc"] = {}
        for ns, side in ((a.ns_a, "a"), (a.ns_b, "b")):
            q = qdisc_stats(ns, a.underlay_dev)
            if q is not None:
                rec["qdisc"][side] = q
        rec["throughput"] = {}
        for _, out, rev in clients:
            rec["throughput"]["rev" if rev else "fwd"] = iperf_result(out, "B→A" if rev else "A→B")
        tp = [t.get("mbps") for t in rec["throughput"].values()]
        rec["throughput_mbps"] = sum(tp) if tp and None not in tp else None
        if pids and None not in cpu0 and None not in cpu1:
            rec["endpoint_cpu_seconds"] = [b - c for b, c in zip(cpu1, cpu0)]

        finish(ping, probe_s + 15 - (time.time() - t_start))
        finish(irtt, probe_s + 30 - (time.time() - t_start))
    except RuntimeError as e:
        errors.append(str(e))
        t_start = t_load0 = t_load1 = None
    finally:
        for p in procs:
            if p.poll() is None:
                finish(p, 0.1)

    if t_load0 is not None:
        # Windows, in seconds relative to the start of the load.
        idle_w = (t_start - t_load0 + a.idle_skip, 0.0)
        load_w = (a.warmup, min(t_load1 - t_load0, a.seconds + 1.0))
        rec["t_load_start_wall"] = t_load0
        rec["load_wall_seconds"] = t_load1 - t_load0
        rec["probes"], rec["series"] = {}, {}
        for name, (series, err) in (("ping", parse_ping(ping_out, a.ping_tool)), ("irtt", parse_irtt(irtt_json))):
            if err:
                errors.append("%s: %s" % (name, err))
            rel = [(t - t_load0, r) for t, r in series]
            rec["probes"][name] = {"idle": window_stats(rel, *idle_w), "loaded": window_stats(rel, *load_w)}
            rec["series"][name] = [[round(t, 4), None if r is None else round(r, 3)] for t, r in rel]
        for d, t in rec["throughput"].items():
            if "error" in t:
                errors.append("iperf3 %s: %s" % (d, t["error"]))
    if errors:
        rec["errors"] = errors
    wall = time.monotonic() - w0
    bg, top = measure.other_cpu_delta(bg0, measure.other_cpu_sample(exclude))
    rec["background"] = {"cpu_seconds": bg, "wall_seconds": wall,
                         "vcpu_share": bg / wall if wall > 0 else None, "top": top}
    rec["loadavg_end"] = measure.loadavg()
    with open(a.out, "w") as f:
        json.dump(rec, f)


def cmd_baseline(a):
    """Idle ping over the bare underlay (no tunnel): what the machine itself adds."""
    out = os.path.join(a.logdir, "baseline-ping.txt")
    os.makedirs(a.logdir, exist_ok=True)
    with open(out, "w") as f:
        subprocess.run(["ip", "netns", "exec", a.ns_a, "timeout", str(int(a.seconds + 15))]
                       + ping_command(a.ping_tool, a.ping_interval, a.seconds, a.dst),
                       stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    series, err = parse_ping(out, a.ping_tool)
    rec = {"dst": a.dst, "seconds": a.seconds}
    if err:
        rec["error"] = err
    elif series:
        rec.update(window_stats(series, series[0][0], series[-1][0] + 1))
        rec.pop("window_s", None)
    print(json.dumps(rec))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("block")
    b.add_argument("--ns-a", required=True)
    b.add_argument("--ns-b", required=True)
    b.add_argument("--dst", required=True, help="tunnel address of side B")
    b.add_argument("--load", choices=("fwd", "both"), default="fwd")
    b.add_argument("--streams", type=int, default=4)
    b.add_argument("--idle", type=float, default=3.0, help="idle seconds before the load")
    b.add_argument("--idle-skip", type=float, default=0.3, help="seconds at the start left out of the idle window")
    b.add_argument("--seconds", type=int, default=8, help="length of the load")
    b.add_argument("--warmup", type=float, default=1.0, help="seconds of load left out of the loaded window")
    b.add_argument("--tail", type=float, default=1.5, help="probe seconds after the load")
    b.add_argument("--ping-interval", type=float, default=0.01)
    b.add_argument("--ping-tool", choices=("fping", "iputils"), default="fping")
    b.add_argument("--irtt-interval", default="10ms")
    b.add_argument("--cc", default="keep", help="iperf3 -C ALGO, or keep")
    b.add_argument("--pids", default="")
    b.add_argument("--underlay-dev", default="ul0")
    b.add_argument("--port-base", type=int, default=6000)
    b.add_argument("--logdir", required=True)
    b.add_argument("--out", required=True)
    b.set_defaults(fn=cmd_block)
    bl = sub.add_parser("baseline")
    bl.add_argument("--ns-a", required=True)
    bl.add_argument("--dst", required=True, help="underlay address of side B")
    bl.add_argument("--seconds", type=float, default=3.0)
    bl.add_argument("--ping-interval", type=float, default=0.01)
    bl.add_argument("--ping-tool", choices=("fping", "iputils"), default="fping")
    bl.add_argument("--logdir", required=True)
    bl.set_defaults(fn=cmd_baseline)
    a = p.parse_args()
    if a.cmd == "block" and not 1 <= a.streams <= 64:
        p.error("--streams must be 1..64")
    if a.cmd == "block" and a.warmup >= a.seconds:
        p.error("--warmup must be shorter than --seconds")
    a.fn(a)


if __name__ == "__main__":
    main()
