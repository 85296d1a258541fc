#!/usr/bin/env python3
"""Summarise one perf/latency.sh results directory.

Reads RESULTS_DIR/meta.json and RESULTS_DIR/blocks/*.json and writes:

  results.json            settings, machine, per-scenario and per-implementation
                          medians (with min-max over rounds) of every RTT figure,
                          throughput, the targets, and the per-block records
                          without their raw series
  results.md              the tables
  rtt-time-SCENARIO.png   RTT of every probe over time, one panel per implementation
  rtt-cdf-SCENARIO.png    RTT CDF, idle and loaded, ping and irtt

Only what the blocks recorded is reported; anything missing is "n/a" with
the reason.
"""

import glob
import json
import os
import statistics
import sys

SCENARIOS = {
    "cpu": "CPU-bound: %d TCP streams A→B, no shaping",
    "link": "Link-bound: underlay A→B shaped (tbf %s, burst %s, latency %s), %d TCP streams A→B",
    "rrul": "RRUL-like: underlay shaped both ways (tbf %s), %d TCP streams A→B and %d B→A at once",
}
# The rows the issue sets targets for: fq_codel vpnfast in the CPU-bound and link-bound cases.
TARGET_ROWS = {("cpu", "vpnfast"), ("link", "vpnfast-rate")}
LAT_SLACK_MS = 10.0
TPUT_FRACTION = 0.95
STATS = ("p50", "p90", "p99", "max")


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(v, digits=None):
    if v is None:
        return "n/a"
    if digits is not None:
        return "%.*f" % (digits, v)
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def summarise(blocks):
    """Per-config summary of a scenario's blocks (one per round)."""
    s = {"rounds": len(blocks), "errors": sorted({e for b in blocks for e in b.get("errors", [])}
                                                 | {b["error"] for b in blocks if b.get("error")})}
    for probe in ("ping", "irtt"):
        for win in ("idle", "loaded"):
            for st in STATS + ("loss_pct",):
                s["%s_%s_%s" % (probe, win, st)] = med(
                    [((b.get("probes") or {}).get(probe) or {}).get(win, {}).get(st) for b in blocks])
        deltas = []
        for b in blocks:
            p = (b.get("probes") or {}).get(probe) or {}
            i, l = p.get("idle", {}).get("p99"), p.get("loaded", {}).get("p99")
            deltas.append(None if i is None or l is None else l - i)
        s["%s_delta_p99" % probe] = med(deltas)
    s["throughput_mbps"] = med([b.get("throughput_mbps") for b in blocks])
    for d in ("fwd", "rev"):
        s["throughput_%s_mbps" % d] = med([((b.get("throughput") or {}).get(d) or {}).get("mbps") for b in blocks])
        s["retransmits_%s" % d] = med([((b.get("throughput") or {}).get(d) or {}).get("retransmits")
                                       for b in blocks])
    s["background_pct"] = med([100 * b["background"]["vcpu_share"] for b in blocks
                               if (b.get("background") or {}).get("vcpu_share") is not None])
    drops = []
    for b in blocks:
        q = (b.get("qdisc") or {}).get("a") or []
        drops.append(sum(x.get("drops", 0) for x in q if x.get("kind") == "tbf") if q else None)
    s["tbf_drops_a"] = med(drops)
    s["steal_pct"] = med([100 * b["steal_share"] for b in blocks if b.get("steal_share") is not None])
    s["ping_cpu_pct"] = med([100 * b["ping_cpu_share"] for b in blocks if b.get("ping_cpu_share") is not None])
    return s


def have_matplotlib():
    """Whether the plots can be drawn (the Markdown links them only then)."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: latency_report.py RESULTS_DIR")
    res = sys.argv[1]
    meta = json.load(open(os.path.join(res, "meta.json")))
    st = meta.get("settings", {})
    configs = meta.get("configs", {})
    blocks = []
    for path in sorted(glob.glob(os.path.join(res, "blocks", "*.json"))):
        try:
            b = json.load(open(path))
        except ValueError:
            continue
        b["block"] = os.path.basename(path)[:-5]
        blocks.append(b)

    scen_order = [s for s in st.get("scenarios", "").split(",") if s in configs]
    summary, targets = {}, {}
    for scen in scen_order:
        cfgs = sorted(configs[scen], key=lambda c: configs[scen][c].get("order", 0))
        summary[scen] = {}
        mine = {cid: [b for b in blocks if b.get("scenario") == scen and b.get("config") == cid] for cid in cfgs}
        for cid in cfgs:
            summary[scen][cid] = summarise(mine[cid])
        base = (summary[scen].get("vpnfast-noaqm") or {}).get("throughput_mbps")
        base_by_round = {b.get("round"): b.get("throughput_mbps") for b in mine.get("vpnfast-noaqm", [])}
        for cid in cfgs:
            s = summary[scen][cid]
            t = s["throughput_mbps"]
            s["throughput_pct_of_noaqm"] = (100.0 * t["median"] / base["median"]
                                            if t and base and base["median"] else None)
            # Each round's own pair (the blocks alternate within a round), to show how much the ratio moves.
            s["throughput_pct_of_noaqm_per_round"] = [
                100.0 * b["throughput_mbps"] / base_by_round[b.get("round")]
                for b in sorted(mine[cid], key=lambda b: b.get("round") or 0)
                if b.get("throughput_mbps") and base_by_round.get(b.get("round"))]
            if (scen, cid) in TARGET_ROWS:
                targets.setdefault(scen, {})[cid] = judge(s, configs[scen][cid])

    public_blocks = [{k: v for k, v in b.items() if k != "series"} for b in blocks]
    out = {"schema": 1, "kind": "latency", "meta": meta, "summary": summary, "targets": targets,
           "target_rule": {"loaded_ping_p99_minus_idle_p99_ms_at_most": LAT_SLACK_MS,
                           "throughput_fraction_of_no_aqm_at_least": TPUT_FRACTION,
                           "rows": sorted("%s/%s" % r for r in TARGET_ROWS)},
           "blocks": public_blocks}
    with open(os.path.join(res, "results.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    write_markdown(res, meta, configs, scen_order, summary, targets, blocks)
    plot(res, meta, configs, scen_order, blocks)


def judge(s, cfg):
    """PASS / MISS for one target row, with the reason."""
    if cfg.get("note"):
        return {"verdict": "n/a", "why": cfg["note"]}
    d, pct = s.get("ping_delta_p99"), s.get("throughput_pct_of_noaqm")
    if d is None or pct is None:
        return {"verdict": "n/a", "why": "not measured"}
    lat_ok, tput_ok = d["median"] <= LAT_SLACK_MS, pct >= 100 * TPUT_FRACTION
    why = []
    if not lat_ok:
        why.append("loaded p99 %.1f ms above idle" % d["median"])
    if not tput_ok:
        why.append("throughput %.1f %% of --no-aqm" % pct)
    return {"verdict": "PASS" if lat_ok and tput_ok else "MISS", "why": "; ".join(why),
            "delta_p99_ms": d["median"], "throughput_pct": pct}


def baseline_cell(meta):
    b = meta.get("underlay_baseline")
    if not b:
        return "not measured"
    if b.get("error"):
        return "not measured: %s" % md_escape(b["error"])
    return "p50 / p90 / p99 / max %s / %s / %s / %s ms over %d probes, %d lost" % (
        fmt(b.get("p50")), fmt(b.get("p90")), fmt(b.get("p99")), fmt(b.get("max")), b.get("sent", 0), b.get("lost", 0))


def cell4(s, prefix):
    vals = [s.get("%s_%s" % (prefix, k)) for k in STATS]
    return " / ".join(fmt(v["median"]) if v else "n/a" for v in vals)


def write_markdown(res, meta, configs, scen_order, summary, targets, blocks):
    m, st, vf, wg = meta.get("machine", {}), meta.get("settings", {}), meta.get("vpnfast", {}), \
        meta.get("wireguard_go", {})
    rounds = st.get("rounds", 1)
    L = ["# vpnfast latency under load — %s" % meta.get("started_utc", "?"), "",
         "| | |", "|---|---|",
         "| Date (UTC) | %s → %s |" % (meta.get("started_utc", "?"), meta.get("finished_utc", "?")),
         "| CPU | %s, %s vCPUs |" % (md_escape(m.get("cpu", "?")), m.get("vcpus", "?")),
         "| Kernel | %s |" % md_escape(m.get("kernel", "?")),
         "| Command (as root, in the repository root) | `%s` |" % md_escape(meta.get("command", "?")),
         "| vpnfast | %s%s (`%s`); `--rate` option: %s |" % (
             ("commit " + str(vf.get("commit"))[:12]) if not str(vf.get("commit", "?")).startswith("unknown")
             else vf.get("commit", "?"), " + uncommitted changes" if vf.get("dirty") else "",
             md_escape(vf.get("binary", "?")), "yes" if vf.get("rate_option") else "no (not in this build)"),
         "| Harness (perf/latency.sh) | commit %s%s |" % (str(meta.get("harness", {}).get("commit", "?"))[:12],
                                                        " + uncommitted changes" if meta.get("harness", {}).get("dirty") else ""),
         "| wireguard-go | %s (`%s`) |" % (md_escape(wg.get("version", "?")), md_escape(wg.get("binary", "?"))),
         "| Tools | %s; %s; %s |" % tuple(md_escape(meta.get("tools", {}).get(k, "?")) for k in ("iperf3", "irtt", "ping")),
         "| Settings | %s round(s); per block %s s idle, then %s s of load (the first %s s left out of the "
         "loaded window); ping (%s) and irtt every 10 ms; %s TCP streams per direction; TCP ECN sysctl %s, "
         "congestion control %s |" % (rounds, st.get("idle_seconds"), st.get("load_seconds"),
                                       st.get("warmup_seconds"), st.get("ping_tool", "iputils"), st.get("streams"),
                                       st.get("tcp_ecn_value", "?"),
                                       st.get("tcp_congestion_control", "?")),
         "| Shaping (link, rrul) | `tc qdisc add dev ul0 root tbf rate %s burst %s latency %s` on the "
         "underlay veth (A's side; both sides for rrul) |" % (st.get("link_rate"), st.get("tbf_burst"),
                                                                st.get("tbf_latency")),
         "| Bare underlay, idle ping (no tunnel; what the machine adds) | %s |" % baseline_cell(meta),
         "| Build lock | %s |" % {"per-block": "held by the harness during each block",
                                  "inherited": "held by the caller for the whole run",
                                  "off": "NOT taken (--no-lock)"}.get(st.get("lock"), st.get("lock")),
         "| Load average (1/5/15) | start %s, end %s |" % (m.get("loadavg_start", "?"), m.get("loadavg_end", "?")),
         ""]
    shares = [b["background"]["vcpu_share"] for b in blocks if (b.get("background") or {}).get("vcpu_share")
              is not None]
    if shares:
        L.append("Other processes on the machine used a median %.0f %% (max %.0f %%) of one vCPU during the "
                 "blocks (the \"other CPU\" column; builds that take the lock were kept out)." % (
                     100 * statistics.median(shares), 100 * max(shares)))
        L.append("")
    L.append("RTT cells are **p50 / p90 / p99 / max in ms**, each the median over the rounds. Δp99 = loaded p99 − "
             "idle p99 (median of the per-round differences). Throughput: what the iperf3 receiver(s) counted, "
             "Mbit/s (both directions added for rrul); %% of --no-aqm compares the medians, and \"rounds\" lists "
             "each round's own pair (the blocks alternate within a round, in an order that rotates from round to "
             "round). Target (issue 4), for vpnfast with fq_codel in the CPU-bound and link-bound cases: loaded "
             "ping p99 ≤ idle p99 + %g ms and throughput ≥ %.0f %% of `--no-aqm`; the other rows are for "
             "comparison." % (LAT_SLACK_MS, 100 * TPUT_FRACTION))
    L.append("")
    for scen in scen_order:
        title = SCENARIOS[scen]
        if scen == "cpu":
            title %= st.get("streams", 4)
        elif scen == "link":
            title %= (st.get("link_rate"), st.get("tbf_burst"), st.get("tbf_latency"), st.get("streams", 4))
        else:
            title %= (st.get("link_rate"), st.get("streams", 4), st.get("streams", 4))
        L.append("## %s" % title)
        L.append("")
        head = ["Implementation", "Throughput Mbit/s", "% of --no-aqm", "ping idle", "ping loaded", "ping Δp99",
                "ping loss loaded %", "irtt idle", "irtt loaded", "irtt Δp99", "irtt loss loaded %", "Target",
                "other CPU %"]
        L.append("| " + " | ".join(head) + " |")
        L.append("|---|" + "---:|" * (len(head) - 3) + "---|---:|")
        cfgs = sorted(configs[scen], key=lambda c: configs[scen][c].get("order", 0))
        for cid in cfgs:
            s = summary[scen][cid]
            t = s["throughput_mbps"]
            tcell = "n/a" if not t else fmt(t["median"]) + (" [%s–%s]" % (fmt(t["min"]), fmt(t["max"]))
                                                            if t["n"] > 1 else "")
            if t and t["n"] < rounds:
                tcell += " (n=%d)" % t["n"]
            if scen == "rrul" and s["throughput_fwd_mbps"] and s["throughput_rev_mbps"]:
                tcell += " (%s + %s)" % (fmt(s["throughput_fwd_mbps"]["median"]),
                                         fmt(s["throughput_rev_mbps"]["median"]))
            pct = s["throughput_pct_of_noaqm"]
            tg = targets.get(scen, {}).get(cid)
            if tg is None:
                tcell_t = "—"
            else:
                tcell_t = "**%s**" % tg["verdict"] + (" (%s)" % md_escape(tg["why"]) if tg["why"] else "")
            bg = s["background_pct"]
            pcell = "n/a" if pct is None else "%.1f %%" % pct
            per_round = s.get("throughput_pct_of_noaqm_per_round") or []
            if cid != "vpnfast-noaqm" and len(per_round) > 1:
                pcell += " (rounds: %s)" % ", ".join("%.0f" % x for x in per_round)
            row = [md_escape(configs[scen][cid]["label"]), tcell, pcell]
            for probe in ("ping", "irtt"):
                d = s["%s_delta_p99" % probe]
                loss = s["%s_loaded_loss_pct" % probe]
                row += [cell4(s, probe + "_idle"), cell4(s, probe + "_loaded"),
                        "n/a" if not d else "%+.1f" % d["median"],
                        "n/a" if not loss else fmt(loss["median"], 1)]
            row += [tcell_t, "n/a" if not bg else "%.0f" % bg["median"]]
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        extra = []
        for cid in cfgs:
            s = summary[scen][cid]
            bits = []
            if s["tbf_drops_a"]:
                bits.append("tbf drops on A's underlay %d" % s["tbf_drops_a"]["median"])
            for d in ("fwd", "rev"):
                r = s["retransmits_%s" % d]
                if r:
                    bits.append("TCP retransmits %s %d" % ("A→B" if d == "fwd" else "B→A", r["median"]))
            if s["steal_pct"]:
                bits.append("vCPU time stolen by the host during the load %.1f %% (max %.1f)"
                            % (s["steal_pct"]["median"], s["steal_pct"]["max"]))
            if s["ping_cpu_pct"]:
                bits.append("ping's own CPU under load %.1f %% of a vCPU" % s["ping_cpu_pct"]["median"])
            if bits:
                extra.append("%s: %s" % (configs[scen][cid]["label"], ", ".join(bits)))
            for e in s["errors"]:
                extra.append("%s: error: %s" % (configs[scen][cid]["label"], e))
        if extra:
            L.append("Medians per round: " + "; ".join(md_escape(x) for x in extra) + ".")
            L.append("")
        if have_matplotlib():
            L.append("![RTT over time](rtt-time-%s.png) ![RTT CDF](rtt-cdf-%s.png)" % (scen, scen))
        else:
            L.append("(No plots: matplotlib was missing when this report was written.)")
        L.append("")
    L += ["## What the figures are", "",
          "- **ping**: `ping -D -i 0.01` from namespace A to B's tunnel address (ICMP echo, 64 bytes). Each "
          "reply's RTT is placed in a window by its send time (reply time − RTT). Lost probes count in "
          "the loss column, not in the percentiles.",
          "- **irtt**: `irtt client -i 10ms` from A to `irtt server` in B, a sparse UDP flow (60-byte "
          "packets, 100/s). Its RTT leaves out the time the server held the packet.",
          "- **idle**: the probes before the load starts (the first 0.3 s after they start left out). "
          "**loaded**: from the end of the warm-up to the end of the load.",
          "- Percentiles interpolate linearly between ranks. Each round's figure comes from its own block; "
          "cells are medians over rounds. Each block starts both tunnel ends fresh.",
          "- Everything (both tunnel ends, the iperf3 clients and servers, the probes) shares this "
          "machine's vCPUs, so in the CPU-bound case the RTT includes waiting for a CPU, not only for "
          "queues. Other engineers' processes on a shared machine add noise; see the other CPU column.",
          ""]
    with open(os.path.join(res, "results.md"), "w") as f:
        f.write("\n".join(L))


def plot(res, meta, configs, scen_order, blocks):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("latency report: matplotlib missing, no plots (bash perf/install-deps.sh)", file=sys.stderr)
        return
    m, st = meta.get("machine", {}), meta.get("settings", {})
    footer = "%s, %s vCPUs, kernel %s — %s — %s round(s), %s s load, %s s idle" % (
        m.get("cpu", "?"), m.get("vcpus", "?"), m.get("kernel", "?"), meta.get("started_utc", "?"),
        st.get("rounds", "?"), st.get("load_seconds", "?"), st.get("idle_seconds", "?"))
    colors = {"ping": "#1f6fb4", "irtt": "#e07b20"}
    palette = ["#2f9e44", "#9c36b5", "#c92a2a", "#1f6fb4", "#f59f00"]
    for scen in scen_order:
        cfgs = sorted(configs[scen], key=lambda c: configs[scen][c].get("order", 0))
        fig, axes = plt.subplots(len(cfgs), 1, figsize=(11, 2.6 * len(cfgs)), sharex=True, squeeze=False)
        for ax, cid in zip(axes[:, 0], cfgs):
            mine = [b for b in blocks if b.get("scenario") == scen and b.get("config") == cid and b.get("series")]
            for probe in ("ping", "irtt"):
                first = True
                for b in mine:
                    pts = [(t, r) for t, r in b["series"].get(probe, []) if r is not None]
                    if not pts:
                        continue
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ".", ms=2, alpha=0.5,
                            color=colors[probe], label=probe if first else None)
                    first = False
            ax.axvspan(0, st.get("load_seconds", 0), color="#adb5bd", alpha=0.25, lw=0,
                       label="load (iperf3)")
            ax.set_yscale("log")
            ax.set_ylabel("RTT ms")
            ax.set_title(configs[scen][cid]["label"] + ("" if len(mine) <= 1 else " — %d rounds overlaid"
                                                        % len(mine)), fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="upper right")
        axes[-1, 0].set_xlabel("seconds since the load started (probe send time)")
        fig.suptitle("RTT over time through the tunnel — %s" % scen, fontsize=10)
        fig.text(0.5, 0.005, footer, ha="center", fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.02, 1, 0.97))
        fig.savefig(os.path.join(res, "rtt-time-%s.png" % scen), dpi=100)
        plt.close(fig)

        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, probe in zip(axes, ("ping", "irtt")):
            for k, cid in enumerate(cfgs):
                mine = [b for b in blocks if b.get("scenario") == scen and b.get("config") == cid and b.get("series")]
                for win, style in (("idle", "--"), ("loaded", "-")):
                    vals = []
                    for b in mine:
                        p = ((b.get("probes") or {}).get(probe) or {}).get(win) or {}
                        w = p.get("window_s")
                        if not w:
                            continue
                        vals += [r for t, r in b["series"].get(probe, []) if r is not None and w[0] <= t < w[1]]
                    if not vals:
                        continue
                    vals.sort()
                    ys = [(i + 1) / len(vals) for i in range(len(vals))]
                    ax.plot(vals, ys, style, color=palette[k % len(palette)], lw=1.4,
                            label="%s, %s" % (configs[scen][cid]["label"], win))
            ax.set_xscale("log")
            ax.set_xlabel("%s RTT, ms (log)" % probe)
            ax.set_title(probe, fontsize=9)
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel("fraction of probes ≤ x")
        axes[1].legend(fontsize=7, loc="lower right")
        fig.suptitle("RTT CDF — %s (dashed: idle, solid: loaded; rounds pooled)" % scen, fontsize=10)
        fig.text(0.5, 0.005, footer, ha="center", fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 0.95))
        fig.savefig(os.path.join(res, "rtt-cdf-%s.png" % scen), dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
