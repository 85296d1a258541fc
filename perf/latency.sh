#!/usr/bin/env bash
# vpnfast latency under load (issue 4's benchmarks): RTT idle and under bulk
# TCP load through vpnfast (fq_codel), vpnfast --no-aqm and wireguard-go,
# side by side on the same two-namespace topology, implementations
# alternating within each round (the order rotates from round to round).
#
# Scenarios (each block: idle probes, then the load with the probes still on):
#   cpu    4 TCP streams A→B fill the tunnel; the CPU is the bottleneck
#   link   the underlay veth A→B shaped with tbf (100mbit, deep buffer);
#          4 TCP streams A→B; vpnfast also with --rate (when it has it)
#   rrul   the underlay shaped both ways; 4 streams A→B and 4 B→A at once
# The probes, from A to B through the tunnel: ping every 10 ms (fping) and a
# sparse UDP flow (irtt client -i 10ms against an irtt server in B).
#
# Usage (as root, from anywhere):  bash perf/latency.sh [options]
#   --rounds N            rounds; each runs every scenario and implementation once (default 5)
#   --seconds S           length of the load (default 8)
#   --idle-seconds S      probes before the load, the idle window (default 3)
#   --warmup S            seconds of load left out of the loaded window (default 1)
#   --streams N           TCP streams per direction (default 4)
#   --scenarios LIST      any of cpu,link,rrul (default all three)
#   --quick               a smoke test: 1 round, 3 s of load, 2 s idle, 0.5 s warm-up
#   --vpnfast PATH        a prebuilt vpnfast (no build); default: swift build -c release,
#                         then .build/release/vpnfast of this checkout
#   --wireguard-go PATH   the wireguard-go to compare (default /usr/bin/wireguard-go)
#   --link-rate RATE      tbf rate of the shaped underlay (default 100mbit)
#   --tbf-burst SIZE      tbf burst (default 32kb)
#   --tbf-latency T       tbf latency, i.e. its buffer depth (default 300ms)
#   --vpnfast-rate RATE   what `vpnfast --rate` gets in link/rrul (default 95mbit)
#   --cc NAME             TCP congestion control of the iperf3 streams (iperf3 -C; default
#                         cubic, Linux's default and the loss-based kind that fills
#                         buffers; "keep": the namespace default)
#   --tcp-ecn             set net.ipv4.tcp_ecn=1 in both namespaces (default: kernel default)
#   --ping-tool fping|iputils
#                         the ICMP probe (default fping). iputils ping -i 0.01 spins
#                         (sched_yield) while no reply is outstanding, taking CPU from
#                         a CPU-bound load the more the shorter the RTT, and here sends
#                         every 13-16 ms instead of 10; fping sleeps between probes
#   --skip-deps           do not run perf/install-deps.sh first
#   --out DIR             where <UTC timestamp>/ goes (default perf/results)
#   --no-lock             do not take /tmp/vpnfast-build.lock
#   --lock-wait S         longest wait for the build lock, each time (default 3600)
#   --quiet-wait S        before each block, wait up to S s for other processes to use less
#                         than --busy-threshold of a vCPU (default 10; 0: do not wait)
#   --busy-threshold PCT  (default 25)
#
# Like perf/run.sh, each block (one scenario, one implementation, one round)
# runs while this script holds /tmp/vpnfast-build.lock, unless an ancestor
# holds it already (`flock /tmp/vpnfast-build.lock bash perf/latency.sh`).
# Everything happens in namespaces this script creates (underlay
# 198.18.0.0/24, tunnel 198.19.0.0/24); processes are stopped by PID and the
# namespaces deleted on exit.
set -uo pipefail

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$PERF_DIR/.." && pwd)
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=$(command -v python3)
MEASURE="$PERF_DIR/measure.py"
LATENCY="$PERF_DIR/latency.py"
REPORT="$PERF_DIR/latency_report.py"
LOCK_FILE=/tmp/vpnfast-build.lock

ORIG_ARGS=("$@")
ROUNDS=5
LOAD_SECONDS=8
IDLE_SECONDS=3
WARMUP=1
STREAMS=4
SCENARIOS="cpu,link,rrul"
VPNFAST_BIN=""
WGGO_BIN=/usr/bin/wireguard-go
LINK_RATE=100mbit
TBF_BURST=32kb
TBF_LATENCY=300ms
VPNFAST_RATE=95mbit
TCP_ECN=""
CC=cubic
PING_TOOL=fping
SKIP_DEPS=0
OUT_BASE="$PERF_DIR/results"
LOCK_MODE=per-block
LOCK_WAIT=3600
QUIET_WAIT=10
BUSY_PCT=25

die() { printf 'latency: %s\n' "$*" >&2; exit 1; }
say() { printf 'latency: %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
in_range() { is_uint "$1" && (($1 >= $2 && $1 <= $3)); }
is_num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

while (($# > 0)); do
    case "$1" in
        --rounds) ROUNDS=${2:-}; shift 2 ;;
        --ping-tool) PING_TOOL=${2:-}; shift 2 ;;
        --seconds) LOAD_SECONDS=${2:-}; shift 2 ;;
        --idle-seconds) IDLE_SECONDS=${2:-}; shift 2 ;;
        --warmup) WARMUP=${2:-}; shift 2 ;;
        --streams) STREAMS=${2:-}; shift 2 ;;
        --scenarios) SCENARIOS=${2:-}; shift 2 ;;
        --quick) ROUNDS=1; LOAD_SECONDS=3; IDLE_SECONDS=2; WARMUP=0.5; QUIET_WAIT=0; shift ;;
        --vpnfast) VPNFAST_BIN=${2:-}; shift 2 ;;
        --wireguard-go) WGGO_BIN=${2:-}; shift 2 ;;
        --link-rate) LINK_RATE=${2:-}; shift 2 ;;
        --tbf-burst) TBF_BURST=${2:-}; shift 2 ;;
        --tbf-latency) TBF_LATENCY=${2:-}; shift 2 ;;
        --vpnfast-rate) VPNFAST_RATE=${2:-}; shift 2 ;;
        --tcp-ecn) TCP_ECN=1; shift ;;
        --cc) CC=${2:-}; shift 2 ;;
        --skip-deps) SKIP_DEPS=1; shift ;;
        --out) OUT_BASE=${2:-}; shift 2 ;;
        --no-lock) LOCK_MODE=off; shift ;;
        --lock-wait) LOCK_WAIT=${2:-}; shift 2 ;;
        --quiet-wait) QUIET_WAIT=${2:-}; shift 2 ;;
        --busy-threshold) BUSY_PCT=${2:-}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

in_range "$ROUNDS" 1 50 || die "--rounds must be 1..50"
in_range "$LOAD_SECONDS" 2 300 || die "--seconds must be 2..300"
if ! is_num "$IDLE_SECONDS" || ! awk -v s="$IDLE_SECONDS" 'BEGIN { exit !(s >= 1 && s <= 60) }'; then
    die "--idle-seconds must be 1..60"
fi
if ! is_num "$WARMUP" || ! awk -v w="$WARMUP" -v s="$LOAD_SECONDS" 'BEGIN { exit !(w < s) }'; then
    die "--warmup must be a number below --seconds"
fi
in_range "$STREAMS" 1 64 || die "--streams must be 1..64"
[[ "$CC" =~ ^[a-z0-9_]+$ ]] || die "bad --cc '$CC'"
if [[ "$CC" != keep ]] && ! grep -qw -- "$CC" /proc/sys/net/ipv4/tcp_available_congestion_control; then
    die "--cc $CC: not available (have: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control))"
fi
for s in ${SCENARIOS//,/ }; do [[ "$s" =~ ^(cpu|link|rrul)$ ]] || die "unknown scenario '$s' (cpu, link, rrul)"; done
[[ -n "${SCENARIOS//,/}" ]] || die "--scenarios is empty"
for v in "$LINK_RATE" "$VPNFAST_RATE"; do [[ "$v" =~ ^[0-9]+(\.[0-9]+)?[kmg]?bit$ ]] || die "bad rate '$v' (e.g. 100mbit)"; done
[[ "$TBF_BURST" =~ ^[0-9]+[kmg]?b?$ ]] || die "bad --tbf-burst '$TBF_BURST' (e.g. 32kb)"
[[ "$TBF_LATENCY" =~ ^[0-9]+(ms|us|s)$ ]] || die "bad --tbf-latency '$TBF_LATENCY' (e.g. 300ms)"
is_uint "$LOCK_WAIT" || die "--lock-wait must be whole seconds"
in_range "$QUIET_WAIT" 0 3600 || die "--quiet-wait must be 0..3600"
in_range "$BUSY_PCT" 1 200 || die "--busy-threshold must be 1..200 (% of one vCPU)"
[[ "$PING_TOOL" == fping || "$PING_TOOL" == iputils ]] || die "--ping-tool must be fping or iputils"

[[ $EUID -eq 0 ]] || die "run as root: it creates network namespaces and TUN devices (sudo bash perf/latency.sh)"
cd "$ROOT" || die "cannot cd to $ROOT"

# shellcheck source=SCRIPTDIR/../Tests/netns/lib.sh
source "$ROOT/Tests/netns/lib.sh"
vf_install_traps

# run_waited CMD...: run CMD in the background and wait, so a signal reaches
# the traps at once and cleanup can stop CMD by its PID.
run_waited() {
    local pid rc
    "$@" &
    pid=$!
    vf_track "$pid" "$1"
    wait "$pid"
    rc=$?
    unset 'VF_LIVE[$pid]'
    return "$rc"
}

# ---------------------------------------------------------------- the build lock (as in run.sh)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
LOCK_FD=""
LOCK_WAITED_MS=0
if [[ "$LOCK_MODE" == per-block ]]; then
    holder=$("$PY" "$MEASURE" lock-holder "$LOCK_FILE" 2>/dev/null)
    if [[ -n "$holder" ]]; then
        LOCK_MODE=inherited
        say "the build lock is held by an ancestor (PID $holder): measuring under it"
    fi
fi
lock_take() {
    local t0
    LOCK_WAITED_MS=0
    [[ "$LOCK_MODE" == per-block ]] || return 0
    t0=$(now_ms)
    exec {LOCK_FD}>>"$LOCK_FILE" || die "cannot open $LOCK_FILE"
    if ! flock -n "$LOCK_FD"; then
        say "waiting for the build lock ($LOCK_FILE; someone is building)"
        run_waited flock -w "$LOCK_WAIT" "$LOCK_FD" || die "no build lock within $LOCK_WAIT s"
    fi
    LOCK_WAITED_MS=$(($(now_ms) - t0))
}
lock_drop() {
    [[ -n "$LOCK_FD" ]] || return 0
    flock -u "$LOCK_FD"
    exec {LOCK_FD}>&-
    LOCK_FD=""
}

# ---------------------------------------------------------------- prerequisites and build

if [[ "$SKIP_DEPS" != 1 ]]; then
    say "prerequisites (perf/install-deps.sh)"
    bash "$PERF_DIR/install-deps.sh" || die "installing prerequisites failed"
fi
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
PING_BIN=$([[ $PING_TOOL == fping ]] && echo fping || echo ping)
for tool in ip tc wg iperf3 irtt "$PING_BIN" ss flock; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool (bash perf/install-deps.sh)"
done

BUILT_HERE=0
if [[ -z "$VPNFAST_BIN" ]]; then
    BUILT_HERE=1
    say "building vpnfast (swift build -c release, under the build lock)"
    lock_take
    run_waited swift build -c release || { lock_drop; die "swift build failed"; }
    lock_drop
    VPNFAST_BIN="$ROOT/.build/release/vpnfast"
fi
[[ "$VPNFAST_BIN" == /* ]] || VPNFAST_BIN="$PWD/$VPNFAST_BIN"
[[ -x "$VPNFAST_BIN" ]] || die "no vpnfast binary at $VPNFAST_BIN"
export VPNFAST="$VPNFAST_BIN"
# shellcheck disable=SC2034 # read by lib.sh; each configuration carries its own arguments
VPNFAST_ARGS=""
[[ "$WGGO_BIN" == /* ]] || WGGO_BIN="$PWD/$WGGO_BIN"
[[ -x "$WGGO_BIN" ]] || die "wireguard-go binary $WGGO_BIN is not executable"
# lib.sh starts "wireguard-go" from PATH: give the chosen binary a directory of its own.
mkdir -p "$VF_TMP/wggo" && ln -sf "$WGGO_BIN" "$VF_TMP/wggo/wireguard-go"
WGGO_VER=$("$WGGO_BIN" --version 2>&1 | head -n1 | sed 's/^wireguard-go //')

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES="$OUT_BASE/$STAMP"
mkdir -p "$RES/blocks" "$RES/logs" || die "cannot create $RES"
META="$RES/meta.json"
rec() { "$PY" "$MEASURE" record "$@"; }
say "results go to $RES"

# --rate: only when `vpnfast up --help` lists it; never pretended.
RATE_SUPPORTED=0
if grep -qE -- '--rate([^-[:alnum:]]|$)' <<<"$("$VPNFAST" up --help 2>&1)"; then
    RATE_SUPPORTED=1
fi

cmd_line="bash perf/latency.sh"
for a in "${ORIG_ARGS[@]}"; do cmd_line+=" $(printf '%q' "$a")"; done
git_commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
git_dirty=false
[[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]] && git_dirty=true
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
rec "$META" "kind=latency" \
    "command=$cmd_line" "started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "machine.cpu=${cpu_model:-unknown}" "machine.vcpus:=$(nproc)" "machine.kernel=$(uname -r)" \
    "machine.hostname=$(uname -n)" "machine.loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "settings.rounds:=$ROUNDS" "settings.load_seconds:=$LOAD_SECONDS" "settings.idle_seconds:=$IDLE_SECONDS" \
    "settings.warmup_seconds:=$WARMUP" "settings.streams:=$STREAMS" "settings.scenarios=$SCENARIOS" \
    "settings.ping_interval_ms:=10" "settings.ping_tool=$PING_TOOL" "settings.irtt_interval_ms:=10" \
    "settings.link_rate=$LINK_RATE" "settings.tbf_burst=$TBF_BURST" "settings.tbf_latency=$TBF_LATENCY" \
    "settings.vpnfast_rate=$VPNFAST_RATE" "settings.tcp_ecn=${TCP_ECN:-kernel default}" \
    "settings.lock=$LOCK_MODE" "settings.quiet_wait:=$QUIET_WAIT" "settings.busy_threshold_pct:=$BUSY_PCT" \
    "settings.tunnel_mtu:=1420" \
    "vpnfast.binary=$VPNFAST_BIN" \
    "vpnfast.commit=$([[ $BUILT_HERE == 1 ]] && echo "$git_commit" || echo "unknown (prebuilt binary given with --vpnfast)")" \
    "vpnfast.dirty:=$([[ $BUILT_HERE == 1 ]] && echo "$git_dirty" || echo false)" \
    "harness.commit=$git_commit" "harness.dirty:=$git_dirty" \
    "vpnfast.rate_option:=$([[ $RATE_SUPPORTED == 1 ]] && echo true || echo false)" \
    "wireguard_go.binary=$WGGO_BIN" "wireguard_go.version=${WGGO_VER:-?}" \
    "tools.iperf3=$(iperf3 --version 2>/dev/null | head -n1)" \
    "tools.irtt=$(irtt version 2>/dev/null | head -n1)" \
    "tools.ping=$(if [[ $PING_TOOL == fping ]]; then fping --version 2>&1; else ping -V 2>/dev/null; fi | head -n1)" || die "cannot write $META"

# The configurations of each scenario, in round 1's order (and the report's); later rounds rotate it (below).
# ID|LABEL|KIND|ARGS|NOTE
cfgs_for() {
    case "$1" in
        cpu)
            echo "vpnfast|vpnfast (fq_codel)|vpnfast||"
            echo "vpnfast-noaqm|vpnfast --no-aqm|vpnfast|--no-aqm|"
            echo "wggo|wireguard-go ${WGGO_VER:-?}|wggo||"
            ;;
        link|rrul)
            if ((RATE_SUPPORTED == 1)); then
                echo "vpnfast-rate|vpnfast --rate $VPNFAST_RATE|vpnfast|--rate $VPNFAST_RATE|"
            else
                echo "vpnfast-rate|vpnfast (fq_codel; no --rate in this build)|vpnfast||no --rate in this build"
            fi
            echo "vpnfast-noaqm|vpnfast --no-aqm|vpnfast|--no-aqm|"
            echo "wggo|wireguard-go ${WGGO_VER:-?}|wggo||"
            ;;
    esac
}
order=0
for scen in ${SCENARIOS//,/ }; do
    while IFS='|' read -r id label kind args note; do
        rec "$META" "configs.$scen.$id.label=$label" "configs.$scen.$id.kind=$kind" \
            "configs.$scen.$id.args=$args" "configs.$scen.$id.note=$note" "configs.$scen.$id.order:=$order"
        order=$((order + 1))
    done < <(cfgs_for "$scen")
done
((RATE_SUPPORTED == 1)) || say "this vpnfast has no --rate: link/rrul run vpnfast without it and say so"

# ---------------------------------------------------------------- topology

say "topology: two namespaces over a veth pair"
vf_topology_up || die "topology: $VF_REASON"
vf_genkeys || die "wg genkey failed"
vf_write_conf a "$VF_TMP/lat-a.conf" v4 "" ""
vf_write_conf b "$VF_TMP/lat-b.conf" v4 "" ""
for s in a b; do
    [[ -n "$TCP_ECN" ]] && ip netns exec "${VF_NS[$s]}" sysctl -qw net.ipv4.tcp_ecn=1
done
rec "$META" "settings.tcp_ecn_value=$(ip netns exec "${VF_NS[a]}" sysctl -n net.ipv4.tcp_ecn)" \
    "settings.tcp_congestion_control=$([[ $CC == keep ]] && ip netns exec "${VF_NS[a]}" sysctl -n net.ipv4.tcp_congestion_control || echo "$CC")"

# What the machine adds on its own: idle ping over the bare underlay, no tunnel.
say "baseline: idle ping over the bare underlay"
lock_take
"$PY" "$LATENCY" baseline --ns-a "${VF_NS[a]}" --dst "${VF_U4[b]}" --seconds "$IDLE_SECONDS" \
    --ping-tool "$PING_TOOL" --logdir "$RES/logs" >"$VF_TMP/baseline.json" && rec "$META" "underlay_baseline:=$(cat "$VF_TMP/baseline.json")"
lock_drop

# shape SCENARIO: tbf on the underlay in the direction(s) the bulk traffic takes.
shape() {
    local sides=""
    case "$1" in link) sides="a" ;; rrul) sides="a b" ;; esac
    for s in $sides; do
        ip netns exec "${VF_NS[$s]}" tc qdisc replace dev ul0 root tbf rate "$LINK_RATE" \
            burst "$TBF_BURST" latency "$TBF_LATENCY" || return 1
    done
    return 0
}
unshape() {
    local s
    for s in a b; do ip netns exec "${VF_NS[$s]}" tc qdisc del dev ul0 root 2>/dev/null; done
    return 0
}

start_side() { # SIDE KIND ARGS
    local s=$1 kind=$2 conf="$VF_TMP/lat-$1.conf" argv
    case "$kind" in
        vpnfast)
            read -r -a argv <<<"$3"
            vf_start "$s" vpnfast "$conf" "${argv[@]}" ;;
        wggo)
            PATH="$VF_TMP/wggo:$PATH" vf_start "$s" wggo "$conf" ;;
    esac
}
declare -A STOP_EXIT=()
stop_sides() {
    local s
    for s in a b; do
        vf_stop "$s"
        STOP_EXIT[$s]=${VF_EXIT:-}
    done
    vf_reap_netns "${VF_NS[a]}" "${VF_NS[b]}"
}

# ---------------------------------------------------------------- the rounds

BLOCK=0
run_block() { # ROUND SCENARIO ID LABEL KIND ARGS
    local r=$1 scen=$2 id=$3 label=$4 kind=$5 args=$6 out name s pids quiet load=fwd
    BLOCK=$((BLOCK + 1))
    name=$(printf 'r%02d-%s-%s' "$r" "$scen" "$id")
    out="$RES/blocks/$name.json"
    say "round $r/$ROUNDS, $scen: $label"
    lock_take
    quiet=null
    if ((QUIET_WAIT > 0)); then
        run_waited "$PY" "$MEASURE" quiet --exclude-ns "${VF_NS[a]},${VF_NS[b]}" --window 1 \
            --threshold "$(awk -v p="$BUSY_PCT" 'BEGIN { print p / 100 }')" --max-wait "$QUIET_WAIT" \
            >"$VF_TMP/quiet.json" && quiet=$(cat "$VF_TMP/quiet.json")
    fi
    rec "$out" "scenario=$scen" "config=$id" "round:=$r" "order:=$BLOCK" "lock_wait_ms:=$LOCK_WAITED_MS" \
        "lock=$LOCK_MODE" "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)" "quiet_before:=${quiet:-null}"
    VF_REASON=""
    [[ "$scen" == rrul ]] && load=both
    if ! shape "$scen"; then
        rec "$out" "error=tc tbf on the underlay failed"
    elif start_side a "$kind" "$args" && start_side b "$kind" "$args" && vf_wait_tunnel a "${VF_T4[b]}" 10; then
        rec "$out" "handshake_ms:=$VF_WAIT_MS"
        pids=""
        [[ -n "${VF_PID[a]:-}" && -n "${VF_PID[b]:-}" ]] && pids="${VF_PID[a]},${VF_PID[b]}"
        run_waited timeout $((LOAD_SECONDS * 2 + ${IDLE_SECONDS%.*} + 150)) \
            "$PY" "$LATENCY" block --ns-a "${VF_NS[a]}" --ns-b "${VF_NS[b]}" --dst "${VF_T4[b]}" \
            --load "$load" --streams "$STREAMS" --idle "$IDLE_SECONDS" --seconds "$LOAD_SECONDS" \
            --warmup "$WARMUP" --cc "$CC" --ping-tool "$PING_TOOL" --pids "$pids" --port-base $((30000 + (BLOCK % 300) * 10)) \
            --logdir "$RES/logs/$name" --out "$out.m" || rec "$out" "error=measurement helper failed (status $?)"
        if [[ -s "$out.m" ]]; then
            "$PY" - "$out" "$out.m" <<'EOF'
import json, sys
base = json.load(open(sys.argv[1]))
base.update(json.load(open(sys.argv[2])))
json.dump(base, open(sys.argv[1], "w"))
EOF
            rm -f "$out.m"
        fi
    else
        say "  could not bring the tunnel up: $VF_REASON"
        rec "$out" "error=tunnel not up: $VF_REASON"
    fi
    stop_sides
    unshape
    lock_drop
    rec "$out" "exit_status.a=${STOP_EXIT[a]:-}" "exit_status.b=${STOP_EXIT[b]:-}"
    for s in a b; do
        [[ -f "${VF_LOG[$s]:-}" ]] && cp "${VF_LOG[$s]}" "$RES/logs/$name-$s.log"
    done
}

# Round r starts each scenario's list at its (r-1)-th configuration (a rotation): over n rounds each configuration
# runs once in each position, so the machine's drift from block to block is not pinned to one configuration as a
# fixed order would pin it. The report pairs blocks by round, whatever their order.
for ((r = 1; r <= ROUNDS; r++)); do
    for scen in ${SCENARIOS//,/ }; do
        mapfile -t cfg_lines < <(cfgs_for "$scen")
        n=${#cfg_lines[@]}
        for ((k = 0; k < n; k++)); do
            IFS='|' read -r id label kind args _note <<<"${cfg_lines[$(((k + r - 1) % n))]}"
            run_block "$r" "$scen" "$id" "$label" "$kind" "$args" </dev/null
        done
    done
done

vf_topology_down
rec "$META" "finished_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "machine.loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"

say "report"
"$PY" "$REPORT" "$RES" || die "report failed (raw data kept in $RES)"
ln -sfn "$STAMP" "$OUT_BASE/latest-latency"
say "done: $RES/results.md (also $OUT_BASE/latest-latency)"
cat "$RES/results.md"
