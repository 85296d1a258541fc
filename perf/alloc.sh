#!/usr/bin/env bash
# Allocations per packet on vpnfast's data path in steady state.
#
# Runs the DataPathAllocations benchmarks of the Benchmarks/ package (ordo-one/benchmark, whose malloc interposer
# counts every malloc in the process, on every thread; no jemalloc needed) and prints, for the encrypt path, the
# decrypt path and both at once, with 1 and 2 crypto threads: the mallocs counted while packets were pushed,
# divided by the packets. The goal is 0 per packet. A canary run, whose test TUN allocates once per packet on
# purpose, must come out at about 1: otherwise the counting is broken and the zeros mean nothing.
#
# Usage: perf/alloc.sh [--packets N] [--warmup N] [--filter REGEX] [--stacks]
#   --packets N     packets per measured iteration (default 100000)
#   --warmup N      packets streamed after the handshake before measuring (default 50000)
#   --filter REGEX  only benchmarks whose whole name matches, e.g. 'decrypt.*'
#   --stacks        also print where the allocations come from (the library's --allocation-stacks; slow,
#                   so the canary is skipped)
# Exit status: 0 when every data-path benchmark stays under one malloc per 1000 packets and the canary counts
# about one per packet; 1 otherwise.
# Needs Swift 6.1 or newer and the C libraries of scripts/install-deps.sh. Builds hold /tmp/vpnfast-build.lock
# (VPNFAST_BUILD_LOCK), which other builders on a shared machine take too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKETS=100000
WARMUP=50000
FILTER=""
STACKS=0
while (($#)); do
    case "$1" in
        --packets) PACKETS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --filter) FILTER=$2; shift 2 ;;
        --stacks) STACKS=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "alloc.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
LOCK=${VPNFAST_BUILD_LOCK:-/tmp/vpnfast-build.lock}
locked() { if command -v flock >/dev/null 2>&1; then flock "$LOCK" "$@"; else "$@"; fi; }

export VPNFAST_ALLOC_PACKETS=$PACKETS VPNFAST_ALLOC_WARMUP=$WARMUP
cd "$ROOT/Benchmarks"
args=(benchmark run --target DataPathAllocations --no-progress)
[[ -n "$FILTER" ]] && args+=(--filter "$FILTER")

if ((STACKS)); then
    [[ -z "$FILTER" ]] && args+=(--skip "canary.*")
    locked swift package "${args[@]}" --allocation-stacks --allocation-stack-limit 10
    exit 0
fi

out=$(mktemp "${TMPDIR:-/tmp}/vpnfast-alloc.XXXXXX")
trap 'rm -f "$out"' EXIT
echo "== swift package ${args[*]} --format jmh  ($PACKETS packets per iteration, $WARMUP to warm up)" >&2
locked swift package "${args[@]}" --format jmh --path stdout >"$out"

python3 - "$out" "$PACKETS" <<'PY'
import json, re, sys

path, packets = sys.argv[1], int(sys.argv[2])
doc = next((line for line in open(path) if line.startswith("[")), None)
if doc is None:
    sys.exit("alloc.sh: the benchmark printed no results (see the output above)")
rows, ok = [], True
for b in json.loads(doc):
    m = re.search(r"DataPathAllocations\.(.*)_\(packets:_\d+,_threads:_(\d+)\)$", b["benchmark"])
    name, threads = (m.group(1).replace("_", " "), m.group(2)) if m else (b["benchmark"], "?")
    mallocs = b["secondaryMetrics"]["Malloc (total)"]["rawData"][0]
    wall_us = sorted(b["secondaryMetrics"]["Time (wall clock)"]["rawData"][0])
    per_packet = sum(mallocs) / (len(mallocs) * packets)
    pps = packets / (wall_us[len(wall_us) // 2] / 1e6)
    if name == "canary":
        good = 0.9 <= per_packet <= 1.1
    else:
        good = per_packet < 0.001
    ok &= good
    rows.append((name, threads, len(mallocs), sum(mallocs), max(mallocs), per_packet, pps, good))

order = ["encrypt path", "decrypt path", "encrypt+decrypt pair", "canary"]
rows.sort(key=lambda r: (order.index(r[0]) if r[0] in order else len(order), r[0], r[1]))
print(f"{'benchmark':<22} {'threads':>7} {'iters':>5} {'mallocs':>9} {'max/iter':>8} {'per packet':>11} "
      f"{'packets/s':>10}")
for name, threads, iters, total, worst, per_packet, pps, good in rows:
    print(f"{name:<22} {threads:>7} {iters:>5} {total:>9} {worst:>8} {per_packet:>11.6f} {pps:>10.0f}"
          f"{'' if good else '   <-- FAIL'}")
print(f"({packets} packets of 512 bytes per iteration; mallocs are summed over the measured iterations; packets/s "
      "through in-memory doubles, for orientation only; the canary allocates once per packet on purpose)")
if not any(r[0] == "canary" for r in rows):
    print("(no canary in this run: zeros are not proven to be counted)")
print("PASS: no allocation per packet" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
