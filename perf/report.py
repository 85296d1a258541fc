#!/usr/bin/env python3
"""Summarise one perf/run.sh results directory.

Reads RESULTS_DIR/meta.json, RESULTS_DIR/crypto.json and the per-block
records in RESULTS_DIR/blocks/, and writes:

  results.json      everything: settings, machine, raw blocks, per-metric
                    median / min / max per implementation, ratios
  results.md        Markdown tables (machine, command, medians with min-max)
  throughput.png    TCP Gbit/s and UDP packets/s bars with min-max error bars
  cpu.png           endpoint CPU seconds per GB bars with min-max error bars

Only numbers found in the records are reported; a metric with no
measurement is printed as "n/a" with the reason when one was recorded.
"""

import glob
import json
import os
import re
import statistics
import sys

TCP_TESTS = [
    ("tcp1_fwd", "TCP 1 stream A→B"),
    ("tcp1_rev", "TCP 1 stream B→A (-R)"),
    ("tcp4_fwd", "TCP 4 streams A→B (-P 4)"),
    ("tcp4_rev", "TCP 4 streams B→A (-P 4 -R)"),
]


def metric_defs(udp_sizes):
    """(key, label, unit, better, extract(block) -> (value, note))."""
    defs = []

    def tcp_get(name, field, scale=1.0):
        def get(b):
            t = b.get("tcp", {}).get(name)
            if t is None:
                return None, None
            if "error" in t:
                return None, t["error"]
            v = t.get(field)
            if v is None:
                return None, t.get("cpu_note")
            return v * scale, None
        return get

    for name, label in TCP_TESTS:
        defs.append((name, label, "Gbit/s", "higher", tcp_get(name, "gbps")))
    for size in udp_sizes:
        def get(b, size=size):
            u = b.get("udp", {}).get("udp%d" % size)
            if u is None:
                return None, None
            if u.get("pps") is None:
                return None, u.get("error", "no passing probe")
            return u["pps"] / 1e3, ("sender-limited" if u.get("sender_limited") else None)
        frag = " (IP-fragmented: above the 1420 MTU)" if size > 1392 else ""
        defs.append(("udp%d" % size, "UDP %d B payload%s, highest rate with < 1%% loss" % (size, frag),
                     "kpps", "higher", get))
    for name, label in TCP_TESTS:
        defs.append(("cpu_" + name, "CPU per GB, " + label, "s/GB", "lower",
                     tcp_get(name, "cpu_s_per_gb")))
    for side, idx in (("A", 0), ("B", 1)):
        def get(b, idx=idx):
            rss = b.get("rss_kib")
            if not rss or len(rss) <= idx or rss[idx] is None:
                return None, ("no endpoint process" if "rss_kib" in b else None)
            return rss[idx] / 1024.0, None
        defs.append(("rss_" + side.lower(), "Peak RSS (VmHWM), endpoint " + side, "MiB", "lower", get))

    def bg(b):
        share = (b.get("background") or {}).get("vcpu_share")
        return (None, None) if share is None else (100.0 * share, None)
    defs.append(("background", "Context: other processes' CPU during the block", "% of a vCPU", "context", bg))
    return defs


def summarise(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def fmt_num(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def fmt_cell(s, rounds, prefix=""):
    if s is None:
        return "n/a"
    text = prefix + fmt_num(s["median"])
    if s["n"] > 1:
        text += " [%s–%s]" % (fmt_num(s["min"]), fmt_num(s["max"]))
    if s["n"] < rounds:
        text += " (n=%d)" % s["n"]
    return text


def read_counters(path):
    counters = {}
    try:
        with open(path, errors="replace") as f:
            for m in re.finditer(r"counter ([A-Za-z0-9_.]+)=(\d+)", f.read()):
                counters[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return counters


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_DIR")
    res = sys.argv[1]
    meta = json.load(open(os.path.join(res, "meta.json")))
    try:
        crypto = json.load(open(os.path.join(res, "crypto.json")))
    except (OSError, ValueError):
        crypto = {"available": False, "reason": "no crypto.json"}
    settings = meta.get("settings", {})
    rounds = settings.get("rounds", 1)
    udp_sizes = settings.get("udp_sizes", [])
    configs = meta.get("configs", {})
    order = sorted(configs, key=lambda c: configs[c].get("order", 0))

    blocks = []
    for path in sorted(glob.glob(os.path.join(res, "blocks", "*.json"))):
        try:
            b = json.load(open(path))
        except ValueError:
            continue
        name = os.path.basename(path)[:-5]
        b["block"] = name
        ctr = {}
        for side in ("a", "b"):
            c = read_counters(os.path.join(res, "logs", "%s-%s.log" % (name, side)))
            if c:
                ctr[side] = {k: v for k, v in c.items() if v}
        if ctr:
            b["counters_nonzero"] = ctr
        blocks.append(b)

    discarded = []
    for path in sorted(glob.glob(os.path.join(res, "discarded", "*.json"))):
        try:
            d = json.load(open(path))
        except ValueError:
            continue
        discarded.append({"block": os.path.basename(path)[:-5], "config": d.get("config"),
                          "background": d.get("background")})

    defs = metric_defs(udp_sizes)
    summary, notes = {}, {}
    for cid in order:
        mine = [b for b in blocks if b.get("config") == cid]
        summary[cid] = {}
        for key, _label, _unit, _better, get in defs:
            vals, why = [], []
            for b in mine:
                if "error" in b and not b.get("tcp"):
                    why.append(b["error"])
                    continue
                v, note = get(b)
                if v is not None:
                    vals.append(v)
                    if note:
                        why.append(note)
                elif note:
                    why.append(note)
            s = summarise(vals)
            if s is not None and why:
                s["notes"] = sorted(set(why))
            summary[cid][key] = s
            if s is None:
                notes.setdefault(cid, {})[key] = sorted(set(why)) or ["no result recorded"]

    # TCP throughput as a fraction of the single-core 1420-byte seal rate.
    ceiling = crypto.get("ceiling") if crypto.get("available") else None
    fractions = {}
    if ceiling and ceiling.get("gbps"):
        ceil_gbit = ceiling["gbps"] * 8
        for cid in order:
            fractions[cid] = {}
            for name, _ in TCP_TESTS:
                s = summary[cid].get(name)
                fractions[cid][name] = None if s is None else {
                    k: s[k] / ceil_gbit for k in ("median", "min", "max")}

    main_cfgs = [c for c in order if configs[c].get("group") == "main"]
    variant_cfgs = [c for c in order if configs[c].get("group") == "variant"]
    wggos = [c for c in main_cfgs if configs[c].get("kind") == "wggo"]
    ratios = {}
    for w in wggos:
        ratios[w] = {}
        for key, *_ in defs:
            a, b = summary.get("vpnfast", {}).get(key), summary[w].get(key)
            ratios[w][key] = (a["median"] / b["median"]) if a and b and b["median"] else None

    out = {
        "schema": 1, "meta": meta, "crypto": crypto, "summary": summary, "ratios_vpnfast_over": ratios,
        "tcp_fraction_of_crypto_ceiling": fractions or None, "not_measured": notes,
        "metrics": [{"key": k, "label": l, "unit": u, "better": bt} for k, l, u, bt, _ in defs],
        "blocks": blocks, "discarded_blocks": discarded,
    }
    with open(os.path.join(res, "results.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)

    write_markdown(res, meta, crypto, configs, main_cfgs, variant_cfgs, wggos, defs, summary,
                   ratios, fractions, ceiling, notes, blocks, rounds, discarded)
    m, st = meta.get("machine", {}), meta.get("settings", {})
    footer = "%s, %s vCPUs, kernel %s — %s — %s round(s), %s s per TCP test" % (
        m.get("cpu", "?"), m.get("vcpus", "?"), m.get("kernel", "?"), meta.get("started_utc", "?"),
        st.get("rounds", "?"), st.get("seconds", "?"))
    plot(res, configs, order, summary, udp_sizes, footer)


def write_markdown(res, meta, crypto, configs, main_cfgs, variant_cfgs, wggos, defs, summary,
                   ratios, fractions, ceiling, notes, blocks, rounds, discarded):
    m = meta.get("machine", {})
    st = meta.get("settings", {})
    vf = meta.get("vpnfast", {})
    L = []
    L.append("# vpnfast vs wireguard-go — %s" % meta.get("started_utc", "?"))
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append("| Date (UTC) | %s → %s |" % (meta.get("started_utc", "?"), meta.get("finished_utc", "?")))
    L.append("| CPU | %s |" % md_escape(m.get("cpu", "?")))
    L.append("| vCPUs | %s |" % m.get("vcpus", "?"))
    L.append("| Kernel | %s |" % md_escape(m.get("kernel", "?")))
    L.append("| Command (as root, in the repository root) | `%s` |" % md_escape(meta.get("command", "?")))
    L.append("| vpnfast | commit %s%s (`%s`) |" % (
        str(vf.get("commit", "?"))[:12], " + uncommitted changes" if vf.get("dirty") else "",
        md_escape(vf.get("binary", "?"))))
    for cid in main_cfgs:
        if configs[cid].get("kind") == "wggo":
            L.append("| %s | `%s` |" % (md_escape(configs[cid]["label"]), md_escape(configs[cid].get("binary", ""))))
    L.append("| iperf3 | %s |" % md_escape(meta.get("tools", {}).get("iperf3", "?")))
    loads = [b.get("loadavg_before") for b in blocks if b.get("loadavg_before")]
    L.append("| Load average (1/5/15 min; counts this run's own processes too) | start %s, end %s; "
             "before each block: %s |" % (
        m.get("loadavg_start", "?"), m.get("loadavg_end", "?"),
        ", ".join(x.split()[0] for x in loads) if loads else "n/a"))
    shares = [(b["background"]["vcpu_share"], b) for b in blocks
              if b.get("background", {}).get("vcpu_share") is not None]
    busy = None
    if shares:
        med = statistics.median(v for v, _ in shares)
        top_share, top_block = max(shares, key=lambda x: x[0])
        who = ", ".join("%s %.1f s" % (t["comm"], t["cpu_seconds"]) for t in top_block["background"]["top"][:3])
        L.append("| CPU used by other processes during the blocks | median %.0f %% of one vCPU, max %.0f %% "
                 "(%s%s) |" % (100 * med, 100 * top_share, top_block["block"], (": " + md_escape(who)) if who else ""))
        busy = top_share
    else:
        L.append("| CPU used by other processes during the blocks | not measured |")
    L.append("| Build lock | %s |" % {
        "per-block": "held by the harness during each block, so builds that take it waited (builds that "
                     "skip it show up in the row above)",
        "inherited": "held by the caller for the whole run (builds that skip it show up in the row above)",
        "off": "NOT taken (--no-lock): builds may have run during measurements"}.get(st.get("lock"), st.get("lock")))
    L.append("| Settings | %s round(s), TCP tests %s s each, UDP probes %s s each (at most %s per search), "
             "tunnel MTU %s, implementations alternate within each round |" % (
                 st.get("rounds"), st.get("seconds"), st.get("udp_probe_seconds"), st.get("udp_probes"),
                 st.get("tunnel_mtu")))
    L.append("")
    limit = st.get("busy_threshold_pct", 25)
    if discarded:
        L.append("%d block(s) were run again because other processes used more than %s %% of a vCPU during "
                 "them (%s); their records are in discarded/ and are not in the tables." % (
                     len(discarded), limit, ", ".join(d["block"] for d in discarded)))
        L.append("")
    if busy is not None and busy * 100 > limit:
        L.append("**Caveat:** other processes on this shared machine still used up to %.0f %% of a vCPU during "
                 "a block that counts (see the context row in the tables and `background` in results.json); "
                 "numbers from such blocks are lower than on an idle machine." % (100 * busy))
        L.append("")
    L.append("Cells: median [min–max] over the rounds; (n=k) when only k rounds gave a value. "
             "Both tunnel endpoints, iperf3 client and server share this machine's %s vCPUs." % m.get("vcpus", "?"))
    L.append("")

    def table(cfgs, with_ratios):
        head = ["Metric", "Unit"] + [md_escape(configs[c]["label"]) for c in cfgs]
        if with_ratios:
            head += ["vpnfast / %s" % md_escape(configs[w]["label"]) for w in wggos]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * 2 + "---:|" * (len(head) - 2))
        for key, label, unit, better, _ in defs:
            row = [label + {"higher": " (higher is better)", "lower": " (lower is better)"}.get(better, ""), unit]
            for c in cfgs:
                s = summary[c].get(key)
                pre = "≥ " if s and "sender-limited" in s.get("notes", []) else ""
                row.append(fmt_cell(s, rounds, pre))
            if with_ratios:
                for w in wggos:
                    r = ratios[w].get(key) if better != "context" else None
                    row.append("n/a" if r is None else "%.2f×" % r)
            L.append("| " + " | ".join(row) + " |")
        L.append("")

    L.append("## vpnfast and the other implementations")
    L.append("")
    table(main_cfgs, True)
    kw = meta.get("kernel_wireguard", {})
    if not kw.get("available"):
        L.append("Kernel WireGuard: not available (%s)." % md_escape(kw.get("reason", "not probed")))
        L.append("")
    if any(s and "sender-limited" in s.get("notes", []) for c in summary for s in summary[c].values()):
        L.append("≥: in at least one round iperf3 could not send faster while the tunnel still delivered "
                 "> 99 %, so the value is a lower bound set by the load generator, not the tunnel.")
        L.append("")

    if variant_cfgs:
        L.append("## vpnfast variants")
        L.append("")
        table(["vpnfast"] + variant_cfgs if "vpnfast" in configs else variant_cfgs, False)
    if not vf.get("io_option"):
        L.append("`--io uring` / `--io mmsg`: not measured — %s." % md_escape(
            vf.get("io_reason", "not requested")))
        L.append("")

    L.append("## Crypto ceiling (`vpnfast bench crypto`, one core)")
    L.append("")
    if crypto.get("available"):
        L.append("| Library | Bytes | Op | GB/s | Mpps |")
        L.append("|---|---:|---|---:|---:|")
        for r in sorted(crypto["rows"], key=lambda r: (r["size"], r["op"] != "seal", r["impl"])):
            L.append("| %s | %d | %s | %s | %s |" % (md_escape(r["impl"]), r["size"], r["op"],
                                                   fmt_num(r["gbps"]), fmt_num(r["mpps"])))
        L.append("")
        if crypto.get("auto"):
            L.append("`auto` picks: %s." % md_escape(crypto["auto"]))
            L.append("")
        if ceiling:
            L.append("Ceiling: %s seal at 1420 B = %s GB/s (%s Gbit/s) on one core. TCP goodput (iperf3 "
                     "payload, a little less than the bytes sealed) as a fraction of it, median [min–max]; "
                     "above 1 would need more than one core's worth of sealing:" % (
                         md_escape(ceiling["impl"]), fmt_num(ceiling["gbps"]), fmt_num(ceiling["gbps"] * 8)))
            L.append("")
            L.append("| Implementation | " + " | ".join(l for _, l in TCP_TESTS) + " |")
            L.append("|---|" + "---:|" * len(TCP_TESTS))
            for c in main_cfgs + variant_cfgs:
                cells = []
                for name, _ in TCP_TESTS:
                    f = fractions.get(c, {}).get(name)
                    if f is None:
                        cells.append("n/a")
                    elif f["min"] == f["max"]:
                        cells.append("%.2f" % f["median"])
                    else:
                        cells.append("%.2f [%.2f–%.2f]" % (f["median"], f["min"], f["max"]))
                L.append("| %s | %s |" % (md_escape(configs[c]["label"]), " | ".join(cells)))
            L.append("")
        else:
            L.append("No 1420-byte seal result, so no ceiling fraction.")
            L.append("")
    else:
        L.append("Not measured: %s." % md_escape(crypto.get("reason", "unknown")))
        L.append("")

    if notes:
        L.append("## Not measured")
        L.append("")
        for c, per in notes.items():
            by_reason = {}
            for key, why in per.items():
                by_reason.setdefault("; ".join(why), []).append(key)
            for why, keys in by_reason.items():
                which = "all metrics" if len(keys) == len(defs) else ", ".join(keys)
                L.append("- %s (%s): %s" % (md_escape(configs[c]["label"]), which, md_escape(why)[:300]))
        L.append("")

    L.append("## What the metrics are")
    L.append("")
    L.append("- TCP: iperf3 through the tunnel from namespace A to B (and B to A with -R), 1 and 4 "
             "streams; Gbit/s as counted by the receiving iperf3 over the whole test.")
    L.append("- UDP: iperf3 -u with -l SIZE; a bounded search (first probe unlimited, then halving and "
             "geometric bisection) for the highest send rate that loses < 1 %; the rate is what iperf3 "
             "actually sent, in thousands of packets per second.")
    L.append("- CPU per GB: utime+stime of both endpoint processes (/proc/PID/stat, all threads) over the "
             "TCP test, divided by the GB (10^9 bytes) iperf3 received. Kernel work done for the tunnel "
             "in softirq or in iperf3's context is not attributed; kernel WireGuard has no process.")
    L.append("- Peak RSS: VmHWM of each endpoint process at the end of its block.")
    L.append("")
    with open(os.path.join(res, "results.md"), "w") as f:
        f.write("\n".join(L))


def plot(res, configs, order, summary, udp_sizes, footer):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing, no plots (bash perf/install-deps.sh)", file=sys.stderr)
        return
    palette = ["#1f6fb4", "#e07b20", "#2f9e44", "#9c36b5", "#c92a2a", "#5c7cfa", "#74b816", "#f59f00",
               "#868e96", "#0ca678"]
    colors = {c: palette[i % len(palette)] for i, c in enumerate(order)}

    def bars(ax, keys, labels, scale=1.0, ylabel=""):
        cfgs = [c for c in order if any(summary[c].get(k) for k in keys)]
        if not cfgs:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            return
        width = 0.8 / len(cfgs)
        for j, c in enumerate(cfgs):
            xs, ys, lo, hi = [], [], [], []
            for i, k in enumerate(keys):
                s = summary[c].get(k)
                if not s:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(s["median"] * scale)
                lo.append((s["median"] - s["min"]) * scale)
                hi.append((s["max"] - s["median"]) * scale)
            hatch = "//" if configs[c].get("group") == "variant" else None
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=configs[c]["label"], color=colors[c],
                   hatch=hatch, edgecolor="white" if hatch else None, linewidth=0)
            for x, y, h in zip(xs, ys, hi):
                # Above the whisker, so the label never hides the min-max range.
                ax.text(x, y + h, " " + fmt_num(y), ha="center", va="bottom", fontsize=7,
                        rotation=0 if len(cfgs) <= 3 else 90)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)

    meta_line = "bars: median; whiskers: min–max over rounds"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, max(1, len(udp_sizes))]})
    bars(axes[0], [k for k, _ in TCP_TESTS], [l.replace(" (", "\n(") for _, l in TCP_TESTS],
         ylabel="Gbit/s (iperf3 receiver)")
    axes[0].set_title("TCP throughput through the tunnel")
    bars(axes[1], ["udp%d" % s for s in udp_sizes], ["%d B payload" % s for s in udp_sizes],
         ylabel="k packets/s")
    axes[1].set_title("UDP: highest rate with < 1% loss")
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4) or 1, fontsize=8,
               bbox_to_anchor=(0.5, 0.04))
    fig.suptitle("vpnfast vs wireguard-go — " + meta_line, fontsize=10)
    fig.text(0.5, 0.01, footer, ha="center", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.13, 1, 0.95))
    fig.savefig(os.path.join(res, "throughput.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 5.5))
    bars(ax, ["cpu_" + k for k, _ in TCP_TESTS], [l.replace(" (", "\n(") for _, l in TCP_TESTS],
         ylabel="CPU seconds per GB (both endpoints)")
    ax.set_title("Endpoint CPU per GB moved (lower is better) — " + meta_line, fontsize=10)
    h, l = ax.get_legend_handles_labels()
    if h:
        fig.legend(h, l, loc="lower center", ncol=min(len(l), 4), fontsize=8, bbox_to_anchor=(0.5, 0.04))
    fig.text(0.5, 0.01, footer, ha="center", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(os.path.join(res, "cpu.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
