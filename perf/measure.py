#!/usr/bin/env python3
"""Measurement helpers for perf/run.sh (vpnfast's side-by-side benchmark).

Subcommands:

  block      run every traffic test of one block (one implementation, one
             round) between two namespaces and write one JSON record:
             TCP throughput (1 and 4 streams, both directions) with the CPU
             time of both tunnel endpoints over each test, the UDP rate
             search for each payload size, and the endpoints' peak RSS
  crypto     normalise the JSON of `vpnfast bench crypto --json` (tolerant
             of field names) into {"rows": [...], "auto": ..., "cpu": ...}
  record     merge KEY=STRING and KEY:=JSON pairs into a JSON file (dotted
             KEYs make nested objects)
  lock-holder  print the PID of an ancestor of this process that holds an
             flock on FILE (so run.sh does not wait for a lock its own
             caller holds), or nothing

Everything here is bounded: every child process has a timeout, every wait a
limit, and the UDP search a maximum number of probes. The only addresses
used are the ones run.sh passes in (inside namespaces it created).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOSS_LIMIT = 1.0  # percent; a UDP probe "passes" below this


# ---------------------------------------------------------------- /proc readers


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds, or None."""
    if not pid:
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    rest = stat[stat.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_kib(pid, key):
    if not pid:
        return None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _ancestors():
    pids, pid = set(), os.getpid()
    for _ in range(64):
        pids.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
        if pid <= 1:
            break
    return pids


def other_cpu_sample(exclude_netns):
    """CPU seconds so far of every user-space process outside our namespaces.

    Keyed by (pid, start time) so a reused PID is not mixed up. Includes the
    reaped children's time (cutime/cstime), so short jobs started by a
    long-lived parent (a test runner, make) show up too. Kernel threads are
    left out: softirq work for the tunnel's own packets runs in ksoftirqd.
    This harness (this process and its ancestors) is left out as well.
    """
    mine = _ancestors()
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in mine:
            continue
        try:
            if os.stat("/proc/%d/ns/net" % pid).st_ino in exclude_netns:
                continue
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if int(rest[6]) & 0x00200000 or int(rest[1]) == 2 or pid == 2:  # PF_KTHREAD
            continue
        cpu = sum(int(x) for x in rest[11:15]) / CLK_TCK
        out[(pid, rest[19])] = (cpu, stat[stat.index("(") + 1:stat.rindex(")")], int(rest[1]))
    return out


def other_cpu_delta(before, after):
    """CPU used between two samples by processes outside our namespaces.

    A process that ended in between shows up as its whole lifetime in its
    parent's cutime/cstime; what it had used before the first sample is taken
    back out again, so only the time inside the window counts.
    """
    total, per = 0.0, {}
    for key, (cpu, comm, _ppid) in after.items():
        d = cpu - before.get(key, (0.0, comm, 0))[0]
        if d > 0:
            total += d
            per[comm] = per.get(comm, 0.0) + d
    before_by_pid = {pid: key for key in before for pid in [key[0]]}
    for key, (cpu, comm, ppid) in before.items():
        if key in after:
            continue
        # Climb through parents that ended too (a compiler's driver and its
        # jobs) to the first one still running: it holds the reaped time.
        holder, hops = None, 0
        while ppid in before_by_pid and hops < 32:
            pkey = before_by_pid[ppid]
            if pkey in after:
                holder = after[pkey][1]
                break
            ppid = before[pkey][2]
            hops += 1
        if holder is None:
            continue
        total -= cpu
        per[holder] = per.get(holder, 0.0) - cpu
    total = max(0.0, total)
    per = {c: v for c, v in per.items() if v > 0.005}
    top = sorted(per.items(), key=lambda kv: -kv[1])[:5]
    return total, [{"comm": c, "cpu_seconds": round(v, 2)} for c, v in top]


def cpu_times():
    """(steal, total) jiffies of all CPUs from /proc/stat's first line, or None. Steal is time the hypervisor ran
    something else while this VM's vCPU had work."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user/nice]
    return fields[7], sum(fields[:8])


def steal_share(before, after):
    """The share of all vCPU time stolen between two cpu_times() samples, or None."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


# ---------------------------------------------------------------- iperf3


class Iperf:
    """Runs one-shot iperf3 servers in namespace B and clients in namespace A."""

    def __init__(self, ns_a, ns_b, dst, port_base, logdir):
        self.ns_a, self.ns_b, self.dst = ns_a, ns_b, dst
        self.port = port_base
        self.logdir = logdir
        self.seq = 0

    def _listening(self, port):
        try:
            out = subprocess.run(
                ["ip", "netns", "exec", self.ns_b, "ss", "-Hlntu", "sport = :%d" % port],
                capture_output=True, text=True, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return False
        return bool(out.strip())

    def run(self, client_args, seconds):
        """One test: returns (parsed JSON or None, error text or None)."""
        self.seq += 1
        port = self.port + self.seq
        slog = open(os.path.join(self.logdir, "iperf-server-%d.log" % port), "w")
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns_b, "timeout", str(int(seconds) + 40),
             "iperf3", "-s", "-1", "-B", self.dst, "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=slog, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 5
            while not self._listening(port):
                if time.monotonic() > deadline or server.poll() is not None:
                    return None, "iperf3 server did not start listening on port %d" % port
                time.sleep(0.05)
            cmd = ["ip", "netns", "exec", self.ns_a, "iperf3", "-c", self.dst, "-p", str(port),
                   "-J"] + client_args
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=seconds + 30, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return None, "iperf3 client timed out after %d s" % (seconds + 30)
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                return None, "iperf3 gave no JSON (status %d): %s" % (
                    proc.returncode, (proc.stderr or proc.stdout)[:200].replace("\n", " "))
            if "error" in data:
                return None, "iperf3: %s" % data["error"]
            return data, None
        finally:
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.terminate()
                try:
                    server.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=3)
            slog.close()


def tcp_test(ip, pids, seconds, streams, reverse):
    args = ["-t", str(seconds)]
    if streams > 1:
        args += ["-P", str(streams)]
    if reverse:
        args.append("-R")
    before = [cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    data, err = ip.run(args, seconds)
    wall = time.monotonic() - t0
    after = [cpu_seconds(p) for p in pids]
    rec = {"streams": streams, "reverse": reverse, "seconds": seconds}
    if err:
        rec["error"] = err
        return rec
    try:
        recv = data["end"]["sum_received"]
        sent = data["end"]["sum_sent"]
        rec["bytes"] = int(recv["bytes"])
        rec["receiver_seconds"] = float(recv["seconds"])
        rec["gbps"] = float(recv["bits_per_second"]) / 1e9
        rec["retransmits"] = sent.get("retransmits")
    except (KeyError, TypeError, ValueError) as e:
        rec["error"] = "unexpected iperf3 JSON: missing %s" % e
        return rec
    rec["wall_seconds"] = wall
    if pids and all(p for p in pids) and None not in before and None not in after:
        cpu = sum(a - b for a, b in zip(after, before))
        rec["endpoint_cpu_seconds"] = cpu
        rec["endpoint_cpu_per_side"] = [a - b for a, b in zip(after, before)]
        if rec["bytes"] > 0:
            rec["cpu_s_per_gb"] = cpu / (rec["bytes"] / 1e9)
        rec["endpoint_cpu_percent"] = 100.0 * cpu / wall if wall > 0 else None
    else:
        rec["cpu_note"] = "no endpoint process to measure (in-kernel or exited)"
    return rec


def udp_probe(ip, size, pps, seconds):
    """One UDP run at `pps` packets/s of `size`-byte payloads (pps 0 = unlimited)."""
    bps = int(round(pps * size * 8))
    args = ["-u", "-l", str(size), "-b", str(bps), "-t", str(seconds)]
    data, err = ip.run(args, seconds)
    probe = {"requested_pps": pps, "size": size, "seconds": seconds}
    if err:
        probe["error"] = err
        return probe
    end = data.get("end", {})
    # iperf3 3.12 reports the sender's packet count with the server's loss in
    # end.sum; newer versions also give sum_sent / sum_received.
    s = end.get("sum") or end.get("sum_sent") or {}
    r = end.get("sum_received") or s
    try:
        packets = int(s.get("packets", r.get("packets")))
        lost = int(r.get("lost_packets", s.get("lost_packets", 0)))
        secs = float(s.get("seconds") or seconds)
        lost_pct = r.get("lost_percent", s.get("lost_percent"))
        lost_pct = float(lost_pct) if lost_pct is not None else (100.0 * lost / packets if packets else 100.0)
    except (TypeError, ValueError) as e:
        probe["error"] = "unexpected iperf3 UDP JSON: %s" % e
        return probe
    if packets <= 0:
        probe["error"] = "iperf3 sent no packets"
        return probe
    probe.update({
        "sent_packets": packets,
        "lost_packets": lost,
        "lost_percent": lost_pct,
        "sent_pps": packets / secs,
        "delivered_pps": max(0, packets - lost) / secs,
        "ok": lost_pct < LOSS_LIMIT,
    })
    return probe


def udp_search(ip, size, seconds, max_probes):
    """Highest offered rate with < 1 % loss, by a bounded search.

    Probe 1 sends as fast as iperf3 can (-b 0). If that loses < 1 %, the
    answer is iperf3's own send rate and the result is only a lower bound
    ("sender_limited"). Otherwise the first guess is 90 % of what got through,
    halved until a probe passes, then geometric bisection between the best
    passing and the lowest failing send rate until they are within 5 % or the
    probe budget is spent. Rates are the send rates iperf3 measured, not the
    ones requested.
    """
    probes = []
    res = {"size": size, "probe_seconds": seconds, "max_probes": max_probes, "probes": probes}
    first = udp_probe(ip, size, 0, seconds)
    probes.append(first)
    if "error" in first:
        res["error"] = first["error"]
        return res
    if first["ok"]:
        res.update({"pps": first["sent_pps"], "delivered_pps": first["delivered_pps"],
                    "sender_limited": True})
        return res
    lo, lo_probe = None, None
    hi = first["sent_pps"]
    guess = max(1000.0, 0.9 * first["delivered_pps"])
    while len(probes) < max_probes:
        if lo is None:
            rate = min(guess, hi * 0.95)
        else:
            if hi / lo < 1.05:
                break
            rate = math.sqrt(lo * hi)
        p = udp_probe(ip, size, rate, seconds)
        probes.append(p)
        if "error" in p:
            res["error"] = p["error"]
            break
        sent = p["sent_pps"]
        if p["ok"]:
            if lo is None or sent > lo:
                lo, lo_probe = sent, p
            if sent < 0.9 * rate:
                # iperf3 could not send as fast as asked, yet nothing was lost:
                # the sender is the limit at this rate.
                res["sender_limited"] = True
                break
        else:
            hi = min(hi, sent)
            if lo is None:
                guess = rate / 2
    if lo is None:
        res.setdefault("error", "no probe down to %.0f packets/s had < %g %% loss"
                       % (min(p.get("sent_pps", 0) for p in probes), LOSS_LIMIT))
        return res
    res.update({"pps": lo, "delivered_pps": lo_probe["delivered_pps"],
                "lowest_failing_pps": hi, "sender_limited": res.get("sender_limited", False)})
    res.pop("error", None)
    return res


def cmd_block(a):
    os.makedirs(a.logdir, exist_ok=True)
    pids = [int(p) for p in a.pids.split(",") if p.strip()] if a.pids else []
    ip = Iperf(a.ns_a, a.ns_b, a.dst, a.port_base, a.logdir)
    exclude = netns_inodes([a.ns_a, a.ns_b])
    bg0, t0 = other_cpu_sample(exclude), time.monotonic()
    rec = {"loadavg_start": loadavg(), "started": time.time(), "tcp": {}, "udp": {}}
    for spec in [s for s in a.tcp.split(",") if s]:
        streams, direction = spec.split(":")
        name = "tcp%s_%s" % (streams, direction)
        print("perf:   %s ..." % name, file=sys.stderr, flush=True)
        rec["tcp"][name] = tcp_test(ip, pids, a.seconds, int(streams), direction == "rev")
    for size in [int(s) for s in a.udp_sizes.split(",") if s]:
        name = "udp%d" % size
        print("perf:   %s ..." % name, file=sys.stderr, flush=True)
        rec["udp"][name] = udp_search(ip, size, a.udp_probe_seconds, a.udp_probes)
    rec["rss_kib"] = [status_kib(p, "VmHWM") for p in pids]
    rec["alive_at_end"] = [cpu_seconds(p) is not None for p in pids]
    rec["loadavg_end"] = loadavg()
    wall = time.monotonic() - t0
    bg, top = other_cpu_delta(bg0, other_cpu_sample(exclude))
    rec["background"] = {"cpu_seconds": bg, "wall_seconds": wall,
                         "vcpu_share": bg / wall if wall > 0 else None, "top": top}
    rec["finished"] = time.time()
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=1)


def netns_inodes(names):
    out = set()
    for ns in names:
        if ns:
            try:
                out.add(os.stat("/run/netns/" + ns).st_ino)
            except OSError:
                pass
    return out


def cmd_quiet(a):
    """Wait (bounded) until other processes use < threshold of one vCPU over a window."""
    exclude = netns_inodes(a.exclude_ns.split(","))
    t0 = time.monotonic()
    share = None
    while True:
        before = other_cpu_sample(exclude)
        time.sleep(a.window)
        cpu, top = other_cpu_delta(before, other_cpu_sample(exclude))
        share = cpu / a.window
        waited = time.monotonic() - t0
        if share < a.threshold or waited + a.window > a.max_wait:
            print(json.dumps({"quiet": share < a.threshold, "share": share, "waited_seconds": waited,
                              "top": top}))
            return
        print("perf:   other processes use %.0f %% of a vCPU (%s); waiting for a quieter moment"
              % (100 * share, ", ".join(t["comm"] for t in top[:3])), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- crypto bench


def _num(d, *keys):
    for k in keys:
        if k in d and d[k] is not None:
            try:
                return float(d[k])
            except (TypeError, ValueError):
                pass
    return None


def normalise_crypto(doc):
    """Rows {impl, size, op, gbps (GB/s), mpps} from any of the shapes we know.

    Accepts rows with an "op" field ({"impl","size","op","gbps","mpps"}) and
    rows with per-op fields ({"implementation","bytes","sealGBps","sealMpps",
    "openGBps","openMpps"}, snake_case too). "gbps" is taken as gigabytes per
    second, as vpnfast's bench prints it; GB/s is derived from Mpps x size when
    only the packet rate is given.
    """
    rows = []
    items = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        items = []
    for it in items:
        if not isinstance(it, dict):
            continue
        impl = it.get("impl") or it.get("implementation") or it.get("library") or it.get("name")
        size = _num(it, "size", "bytes", "packetSize", "packet_size", "len")
        if impl is None or size is None:
            continue
        size = int(size)
        ops = []
        if "op" in it:
            ops.append((str(it["op"]), _num(it, "gbps", "GBps", "gb_per_s", "GBs"),
                        _num(it, "mpps", "Mpps")))
        for op in ("seal", "open"):
            g = _num(it, op + "GBps", op + "_gbps", op + "Gbps", op + "_GBps", op + "_gb_per_s")
            m = _num(it, op + "Mpps", op + "_mpps")
            if g is not None or m is not None:
                ops.append((op, g, m))
        for op, g, m in ops:
            if g is None and m is not None:
                g = m * 1e6 * size / 1e9
            if m is None and g is not None and size > 0:
                m = g * 1e9 / size / 1e6
            rows.append({"impl": str(impl), "size": size, "op": op, "gbps": g, "mpps": m})
    out = {"rows": rows}
    if isinstance(doc, dict):
        for k in ("auto", "cpu", "seconds", "unavailable"):
            if k in doc:
                out[k] = doc[k]
    seal1420 = [r for r in rows if r["op"] == "seal" and r["size"] == 1420 and r["gbps"]]
    if seal1420:
        best = max(seal1420, key=lambda r: r["gbps"])
        out["ceiling"] = {"impl": best["impl"], "size": 1420, "op": "seal", "gbps": best["gbps"],
                          "mpps": best["mpps"]}
    return out


def cmd_crypto(a):
    text = open(a.file).read()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        print(json.dumps({"available": False, "reason": "no JSON document in the output"}))
        return
    try:
        # Tolerate log lines before the JSON document.
        doc = json.loads(text[min(starts):])
    except ValueError as e:
        print(json.dumps({"available": False, "reason": "output is not JSON: %s" % e}))
        return
    out = normalise_crypto(doc)
    if not out["rows"]:
        out = {"available": False, "reason": "JSON had no result rows that could be read", "raw": doc}
    else:
        out["available"] = True
        if "ceiling" not in out:
            out["ceiling_note"] = "no 1420-byte seal result"
    print(json.dumps(out))


# ---------------------------------------------------------------- record


def cmd_record(a):
    try:
        with open(a.file) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    for pair in a.pairs:
        key, _, value = pair.partition("=")
        if key.endswith(":"):
            key = key[:-1]
            try:
                value = json.loads(value)
            except ValueError:
                pass
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    tmp = a.file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, a.file)


# ---------------------------------------------------------------- lock holder


def cmd_lock_holder(a):
    try:
        st = os.stat(a.file)
    except OSError:
        return
    dev = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders = set()
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                # "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END"; blocked
                # waiters have a "->" field first.
                if "->" in parts:
                    continue
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].lower() == dev:
                    holders.add(int(parts[4]))
    except OSError:
        return
    pid = os.getppid()
    for _ in range(64):
        if pid in holders:
            print(pid)
            return
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            return
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid <= 1:
            return
        pid = ppid


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("block")
    b.add_argument("--ns-a", required=True)
    b.add_argument("--ns-b", required=True)
    b.add_argument("--dst", required=True, help="tunnel address of side B")
    b.add_argument("--pids", default="", help="endpoint PIDs, comma-separated (empty: none)")
    b.add_argument("--seconds", type=int, default=10)
    b.add_argument("--tcp", default="1:fwd,1:rev,4:fwd,4:rev")
    b.add_argument("--udp-sizes", default="64,1392")
    b.add_argument("--udp-probe-seconds", type=int, default=3)
    b.add_argument("--udp-probes", type=int, default=6)
    b.add_argument("--port-base", type=int, default=5300)
    b.add_argument("--logdir", required=True)
    b.add_argument("--out", required=True)
    b.set_defaults(fn=cmd_block)
    c = sub.add_parser("crypto")
    c.add_argument("file")
    c.set_defaults(fn=cmd_crypto)
    q = sub.add_parser("quiet")
    q.add_argument("--exclude-ns", default="")
    q.add_argument("--threshold", type=float, default=0.25, help="share of one vCPU")
    q.add_argument("--window", type=float, default=2.0)
    q.add_argument("--max-wait", type=float, default=60.0)
    q.set_defaults(fn=cmd_quiet)
    r = sub.add_parser("record")
    r.add_argument("file")
    r.add_argument("pairs", nargs="*")
    r.set_defaults(fn=cmd_record)
    lk = sub.add_parser("lock-holder")
    lk.add_argument("file")
    lk.set_defaults(fn=cmd_lock_holder)
    a = p.parse_args()
    if a.cmd == "block" and not (1 <= a.udp_probes <= 20):
        p.error("--udp-probes must be from 1 to 20")
    a.fn(a)


if __name__ == "__main__":
    main()
