#!/usr/bin/env bash
# vpnfast side-by-side benchmark: vpnfast against wireguard-go (and kernel
# WireGuard where the kernel has it) on the same two-namespace topology, in
# one run, implementations alternating round by round.
#
# Usage (as root, from anywhere):  bash perf/run.sh [options]
#   --rounds N            rounds; each round runs every implementation once (default 3)
#   --seconds S           length of each TCP test (default 10)
#   --wireguard-go PATH   a wireguard-go binary to compare; repeatable (default /usr/bin/wireguard-go)
#   --vpnfast PATH        the vpnfast binary (default .build/release/vpnfast of this checkout)
#   --skip-build          do not run `swift build -c release` first
#   --skip-deps           do not run perf/install-deps.sh first
#   --variants LIST       vpnfast variants to add: threads, io, both "threads,io" (default) or "none"
#   --udp-sizes LIST      UDP payload sizes in bytes (default 64,1392; 1392 is the largest
#                         payload that fits the tunnel MTU of 1420 without IP fragments)
#   --udp-probes N        iperf3 runs per UDP rate search, at most (default 6)
#   --udp-probe-seconds S length of each UDP probe (default: the smaller of 3 and --seconds)
#   --crypto-seconds S    seconds per measurement of `vpnfast bench crypto` (default 1)
#   --out DIR             where results/<UTC timestamp>/ goes (default perf/results)
#   --no-lock             do not take /tmp/vpnfast-build.lock (only when nothing else builds)
#   --lock-wait S         longest wait for the build lock, each time (default 3600)
#   --quiet-wait S        before each block, wait up to S s for other processes to use less
#                         than --busy-threshold of a vCPU (default 60; 0: do not wait)
#   --busy-threshold PCT  other processes' CPU, in % of one vCPU, above which a block
#                         counts as disturbed (default 25)
#   --busy-retries N      run a disturbed block again, at most N times (default 1); the
#                         disturbed records are kept in discarded/ and counted in the report
#
# Every measurement (and the build) runs while this script holds the shared
# build lock /tmp/vpnfast-build.lock, so no compiler runs next to it; the
# lock is taken per block (one implementation, one round) and dropped in
# between so other engineers' builds are not starved. If an ancestor process
# already holds the lock (`flock /tmp/vpnfast-build.lock bash perf/run.sh`),
# the whole run is measured under that lock instead.
#
# Everything happens inside network namespaces this script creates (veth
# underlay 198.18.0.0/24, tunnel 198.19.0.0/24); processes are stopped by
# PID and the namespaces deleted on exit.
set -uo pipefail

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$PERF_DIR/.." && pwd)
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=$(command -v python3)
MEASURE="$PERF_DIR/measure.py"
REPORT="$PERF_DIR/report.py"
LOCK_FILE=/tmp/vpnfast-build.lock

ORIG_ARGS=("$@")
ROUNDS=3
SECONDS_PER_TEST=10
WGGO_BINS=()
VPNFAST_BIN=""
SKIP_BUILD=0
SKIP_DEPS=0
VARIANTS="threads,io"
UDP_SIZES="64,1392"
UDP_PROBES=6
UDP_PROBE_SECONDS=""
CRYPTO_SECONDS=1
OUT_BASE="$PERF_DIR/results"
LOCK_MODE=per-block
LOCK_WAIT=3600
QUIET_WAIT=60
BUSY_PCT=25
BUSY_RETRIES=1

die() { printf 'perf: %s\n' "$*" >&2; exit 1; }
say() { printf 'perf: %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
in_range() { is_uint "$1" && (($1 >= $2 && $1 <= $3)); }

while (($# > 0)); do
    case "$1" in
        --rounds) ROUNDS=${2:-}; shift 2 ;;
        --seconds) SECONDS_PER_TEST=${2:-}; shift 2 ;;
        --wireguard-go) WGGO_BINS+=("${2:-}"); shift 2 ;;
        --vpnfast) VPNFAST_BIN=${2:-}; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --skip-deps) SKIP_DEPS=1; shift ;;
        --variants) VARIANTS=${2:-}; shift 2 ;;
        --udp-sizes) UDP_SIZES=${2:-}; shift 2 ;;
        --udp-probes) UDP_PROBES=${2:-}; shift 2 ;;
        --udp-probe-seconds) UDP_PROBE_SECONDS=${2:-}; shift 2 ;;
        --crypto-seconds) CRYPTO_SECONDS=${2:-}; shift 2 ;;
        --out) OUT_BASE=${2:-}; shift 2 ;;
        --no-lock) LOCK_MODE=off; shift ;;
        --lock-wait) LOCK_WAIT=${2:-}; shift 2 ;;
        --quiet-wait) QUIET_WAIT=${2:-}; shift 2 ;;
        --busy-threshold) BUSY_PCT=${2:-}; shift 2 ;;
        --busy-retries) BUSY_RETRIES=${2:-}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

in_range "$ROUNDS" 1 50 || die "--rounds must be 1..50"
in_range "$SECONDS_PER_TEST" 1 600 || die "--seconds must be 1..600"
in_range "$UDP_PROBES" 1 20 || die "--udp-probes must be 1..20"
[[ -z "$UDP_PROBE_SECONDS" ]] && UDP_PROBE_SECONDS=$((SECONDS_PER_TEST < 3 ? SECONDS_PER_TEST : 3))
in_range "$UDP_PROBE_SECONDS" 1 60 || die "--udp-probe-seconds must be 1..60"
[[ "$UDP_SIZES" =~ ^([0-9]+(,[0-9]+)*)?$ ]] || die "--udp-sizes must be a comma-separated list of sizes"
for sz in ${UDP_SIZES//,/ }; do
    in_range "$sz" 16 8000 || die "UDP size $sz: must be 16..8000"
    ((sz <= 1392)) || say "note: UDP payloads of $sz bytes exceed the 1420 tunnel MTU and are IP-fragmented"
done
[[ "$CRYPTO_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--crypto-seconds must be a number"
is_uint "$LOCK_WAIT" || die "--lock-wait must be whole seconds"
in_range "$QUIET_WAIT" 0 3600 || die "--quiet-wait must be 0..3600"
in_range "$BUSY_PCT" 1 200 || die "--busy-threshold must be 1..200 (% of one vCPU)"
in_range "$BUSY_RETRIES" 0 5 || die "--busy-retries must be 0..5"
case ",$VARIANTS," in *,none,*) VARIANTS="" ;; esac
for v in ${VARIANTS//,/ }; do [[ "$v" == threads || "$v" == io ]] || die "unknown variant '$v' (threads, io, none)"; done
((${#WGGO_BINS[@]} > 0)) || WGGO_BINS=(/usr/bin/wireguard-go)

[[ $EUID -eq 0 ]] || die "run as root: it creates network namespaces and TUN devices (sudo bash perf/run.sh)"
cd "$ROOT" || die "cannot cd to $ROOT"

# Topology, process tracking and cleanup traps (namespaces, PIDs) from the netns tests.
# shellcheck source=SCRIPTDIR/../Tests/netns/lib.sh
source "$ROOT/Tests/netns/lib.sh"
vf_install_traps

# run_waited CMD...: run CMD in the background and wait for it. A signal then
# reaches this script's traps at once (bash holds a trap back until a
# foreground command ends), and cleanup stops CMD by its PID.
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

# ---------------------------------------------------------------- the build lock

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
        # flock(1) in a child locks the open file description this shell holds too.
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
for tool in ip wg iperf3 ss flock; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool (bash perf/install-deps.sh)"
done

if [[ "$SKIP_BUILD" != 1 ]]; then
    [[ -z "$VPNFAST_BIN" ]] || die "--vpnfast PATH names a prebuilt binary: add --skip-build"
    say "building vpnfast (swift build -c release, under the build lock)"
    lock_take
    run_waited swift build -c release || { lock_drop; die "swift build failed"; }
    lock_drop
fi
[[ -n "$VPNFAST_BIN" ]] || VPNFAST_BIN="$ROOT/.build/release/vpnfast"
[[ "$VPNFAST_BIN" == /* ]] || VPNFAST_BIN="$PWD/$VPNFAST_BIN"
[[ -x "$VPNFAST_BIN" ]] || die "no vpnfast binary at $VPNFAST_BIN (build it, or pass --vpnfast PATH)"
export VPNFAST="$VPNFAST_BIN"
# lib.sh adds $VPNFAST_ARGS to every `vpnfast up`; the variants here carry
# their own arguments, so an inherited value must not leak into all of them.
# shellcheck disable=SC2034 # read by lib.sh
VPNFAST_ARGS=""

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES="$OUT_BASE/$STAMP"
mkdir -p "$RES/blocks" "$RES/logs" "$RES/discarded" || die "cannot create $RES"
META="$RES/meta.json"
rec() { "$PY" "$MEASURE" record "$@"; }

say "results go to $RES"
cmd_line="bash perf/run.sh"
for a in "${ORIG_ARGS[@]}"; do cmd_line+=" $(printf '%q' "$a")"; done
git_commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
git_dirty=false
[[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]] && git_dirty=true
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
rec "$META" \
    "command=$cmd_line" "started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "machine.cpu=${cpu_model:-unknown}" "machine.vcpus:=$(nproc)" "machine.kernel=$(uname -r)" \
    "machine.hostname=$(uname -n)" "machine.loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "settings.rounds:=$ROUNDS" "settings.seconds:=$SECONDS_PER_TEST" \
    "settings.udp_sizes:=[${UDP_SIZES}]" "settings.udp_probes:=$UDP_PROBES" \
    "settings.udp_probe_seconds:=$UDP_PROBE_SECONDS" "settings.lock=$LOCK_MODE" \
    "settings.variants=$VARIANTS" "settings.tunnel_mtu:=1420" \
    "settings.quiet_wait:=$QUIET_WAIT" "settings.busy_threshold_pct:=$BUSY_PCT" "settings.busy_retries:=$BUSY_RETRIES" \
    "vpnfast.binary=$VPNFAST_BIN" "vpnfast.commit=$git_commit" "vpnfast.dirty:=$git_dirty" \
    "tools.iperf3=$(iperf3 --version 2>/dev/null | head -n1)" || die "cannot write $META"

# ---------------------------------------------------------------- what is available

# Kernel WireGuard: can a namespace get a wireguard link?
VF_SEQ=$((VF_SEQ + 1))
kns="vf-k-$VF_ID-$VF_SEQ"
KERNEL_WG=0
if ip netns add "$kns" 2>/dev/null; then
    VF_NETNS+=("$kns")
    if kerr=$(ip -n "$kns" link add dev wgprobe0 type wireguard 2>&1); then
        KERNEL_WG=1
        ip -n "$kns" link del dev wgprobe0 2>/dev/null
        rec "$META" "kernel_wireguard.available:=true"
    else
        rec "$META" "kernel_wireguard.available:=false" \
            "kernel_wireguard.reason=ip link add type wireguard failed: ${kerr//$'\n'/ }"
    fi
    ip netns del "$kns" 2>/dev/null
else
    rec "$META" "kernel_wireguard.available:=false" "kernel_wireguard.reason=could not create a probe namespace"
fi
say "kernel WireGuard: $([[ $KERNEL_WG == 1 ]] && echo available || echo 'not available')"

# vpnfast --io: only when `vpnfast up --help` mentions it.
IO_SUPPORTED=0
if grep -q -- '--io' <<<"$("$VPNFAST" up --help 2>&1)"; then
    IO_SUPPORTED=1
    rec "$META" "vpnfast.io_option:=true"
else
    rec "$META" "vpnfast.io_option:=false" "vpnfast.io_reason=\`vpnfast up --help\` has no --io option in this build"
fi

# The implementations, in the order each round runs them.
CFG_IDS=() CFG_LABELS=() CFG_KINDS=() CFG_ARGS=() CFG_BINS=() CFG_GROUPS=() CFG_PATHDIRS=()
add_cfg() { # ID LABEL KIND GROUP BIN ARGS [PATHDIR]
    CFG_IDS+=("$1"); CFG_LABELS+=("$2"); CFG_KINDS+=("$3"); CFG_GROUPS+=("$4")
    CFG_BINS+=("$5"); CFG_ARGS+=("$6"); CFG_PATHDIRS+=("${7:-}")
}
add_cfg vpnfast "vpnfast" vpnfast main "$VPNFAST" ""
n=0
for bin in "${WGGO_BINS[@]}"; do
    n=$((n + 1))
    [[ "$bin" == /* ]] || bin="$PWD/$bin"
    if [[ ! -x "$bin" ]]; then
        say "wireguard-go binary $bin is not executable: left out"
        rec "$META" "missing.wggo$n=wireguard-go binary $bin is not executable"
        continue
    fi
    ver=$("$bin" --version 2>&1 | head -n1 | sed 's/^wireguard-go //')
    # lib.sh starts "wireguard-go" from PATH: give each binary a directory of its own.
    dir="$VF_TMP/wggo$n"
    mkdir -p "$dir" && ln -sf "$bin" "$dir/wireguard-go"
    label="wireguard-go ${ver:-?}"
    ((${#WGGO_BINS[@]} > 1)) && label+=" ($bin)"
    add_cfg "wggo$n" "$label" wggo main "$bin" "" "$dir"
done
((KERNEL_WG == 1)) && add_cfg kernel "kernel WireGuard" kernel main "" ""
case ",$VARIANTS," in *,threads,*)
    for t in 1 2 8; do add_cfg "vpnfast-t$t" "vpnfast --threads $t" vpnfast variant "$VPNFAST" "--threads $t"; done ;;
esac
case ",$VARIANTS," in *,io,*)
    if ((IO_SUPPORTED == 1)); then
        for io in uring mmsg; do add_cfg "vpnfast-io-$io" "vpnfast --io $io" vpnfast variant "$VPNFAST" "--io $io"; done
    fi ;;
esac
for i in "${!CFG_IDS[@]}"; do
    rec "$META" "configs.${CFG_IDS[$i]}.label=${CFG_LABELS[$i]}" "configs.${CFG_IDS[$i]}.kind=${CFG_KINDS[$i]}" \
        "configs.${CFG_IDS[$i]}.group=${CFG_GROUPS[$i]}" "configs.${CFG_IDS[$i]}.binary=${CFG_BINS[$i]}" \
        "configs.${CFG_IDS[$i]}.args=${CFG_ARGS[$i]}" "configs.${CFG_IDS[$i]}.order:=$i"
done
say "implementations per round: $(IFS=,; echo "${CFG_LABELS[*]}")"

# The single-core crypto ceiling, if this vpnfast has `bench crypto`.
say "crypto ceiling (vpnfast bench crypto --json)"
crc=0
# (`vpnfast bench crypto --help` exits 0 even without the subcommand: read the list.)
if ! grep -qE '^[[:space:]]+bench([[:space:]]|$)' <<<"$("$VPNFAST" --help 2>&1)"; then
    crc=none
else
    lock_take
    run_waited timeout 300 "$VPNFAST" bench crypto --seconds "$CRYPTO_SECONDS" --json >"$RES/crypto-raw.json" 2>"$RES/crypto-raw.err"
    crc=$?
    lock_drop
fi
if [[ "$crc" == none ]]; then
    "$PY" -c 'import json,sys; print(json.dumps({"available": False, "reason": sys.argv[1]}))' \
        "this vpnfast build has no \`bench crypto\` subcommand" >"$RES/crypto.json"
elif ((crc == 0)) && [[ -s "$RES/crypto-raw.json" ]]; then
    "$PY" "$MEASURE" crypto "$RES/crypto-raw.json" >"$RES/crypto.json"
else
    reason=$(head -n1 "$RES/crypto-raw.err" | cut -c1-200)
    "$PY" -c 'import json,sys; print(json.dumps({"available": False, "reason": sys.argv[1]}))' \
        "\`vpnfast bench crypto --json\` failed (status $crc): ${reason:-no output}" >"$RES/crypto.json"
    rm -f "$RES/crypto-raw.json"
fi

# ---------------------------------------------------------------- topology

say "topology: two namespaces over a veth pair"
vf_topology_up || die "topology: $VF_REASON"
vf_genkeys || die "wg genkey failed"
vf_write_conf a "$VF_TMP/perf-a.conf" v4 "" ""
vf_write_conf b "$VF_TMP/perf-b.conf" v4 "" ""

# Kernel WireGuard side (only when the probe above found it): a wireguard
# link configured like wireguard-go (wg setconf, addresses, routes).
start_kernel() {
    local s=$1 conf=$2 ns=${VF_NS[$1]} ifname i
    VF_SEQ=$((VF_SEQ + 1))
    ifname="vfk$s$VF_SEQ"
    VF_IMPL[$s]=kernel; VF_IF[$s]=$ifname; VF_CONF[$s]=$conf; VF_PID[$s]=""
    VF_LOG[$s]="$VF_TMP/$s-$VF_SEQ-kernel.log"
    : >"${VF_LOG[$s]}"
    ip -n "$ns" link add dev "$ifname" type wireguard 2>>"${VF_LOG[$s]}" ||
        { VF_REASON="ip link add type wireguard failed"; return 1; }
    vf_configure_wggo "$s" || return 1
    for ((i = 0; i < 50; i++)); do
        [[ -z "$(ip -n "$ns" -6 addr show dev "$ifname" tentative 2>/dev/null)" ]] && return 0
        sleep 0.1
    done
    return 0
}

start_side() { # SIDE CFG-INDEX
    local s=$1 i=$2 conf="$VF_TMP/perf-$1.conf" args
    case "${CFG_KINDS[$i]}" in
        vpnfast)
            read -r -a args <<<"${CFG_ARGS[$i]}"
            vf_start "$s" vpnfast "$conf" "${args[@]}" ;;
        wggo)
            PATH="${CFG_PATHDIRS[$i]}:$PATH" vf_start "$s" wggo "$conf" ;;
        kernel)
            start_kernel "$s" "$conf" ;;
    esac
}

stop_sides() {
    local s
    for s in a b; do
        if [[ "${VF_IMPL[$s]:-}" == kernel ]]; then
            ip -n "${VF_NS[$s]}" link del dev "${VF_IF[$s]}" 2>/dev/null
            STOP_EXIT[$s]=0
        else
            vf_stop "$s"
            STOP_EXIT[$s]=${VF_EXIT:-}
        fi
    done
    vf_reap_netns "${VF_NS[a]}" "${VF_NS[b]}"
}
declare -A STOP_EXIT=()

# ---------------------------------------------------------------- the rounds

BLOCK=0
run_block() { # ROUND CFG-INDEX ATTEMPT
    local r=$1 i=$2 attempt=$3 id=${CFG_IDS[$2]} out name s pids quiet
    BLOCK=$((BLOCK + 1))
    name=$(printf 'r%02d-%02d-%s' "$r" "$i" "$id")
    out="$RES/blocks/$name.json"
    rm -f "$out"
    say "round $r/$ROUNDS: ${CFG_LABELS[$i]}$( ((attempt > 0)) && echo " (again: the last try was disturbed)")"
    lock_take
    quiet=null
    if ((QUIET_WAIT > 0)); then
        # Not in $(...): that would hold back INT/TERM until it returns.
        run_waited "$PY" "$MEASURE" quiet --exclude-ns "${VF_NS[a]},${VF_NS[b]}" \
            --threshold "$(awk -v p="$BUSY_PCT" 'BEGIN { print p / 100 }')" --max-wait "$QUIET_WAIT" \
            >"$VF_TMP/quiet.json" && quiet=$(cat "$VF_TMP/quiet.json")
    fi
    rec "$out" "config=$id" "round:=$r" "order:=$BLOCK" "attempt:=$attempt" "lock_wait_ms:=$LOCK_WAITED_MS" \
        "lock=$LOCK_MODE" "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)" "quiet_before:=${quiet:-null}"
    VF_REASON=""
    if start_side a "$i" && start_side b "$i" && vf_wait_tunnel a "${VF_T4[b]}" 10; then
        rec "$out" "handshake_ms:=$VF_WAIT_MS"
        pids=""
        [[ -n "${VF_PID[a]:-}" && -n "${VF_PID[b]:-}" ]] && pids="${VF_PID[a]},${VF_PID[b]}"
        run_waited timeout $((SECONDS_PER_TEST * 8 + UDP_PROBES * (UDP_PROBE_SECONDS + 15) * 4 + 120)) \
            "$PY" "$MEASURE" block --ns-a "${VF_NS[a]}" --ns-b "${VF_NS[b]}" --dst "${VF_T4[b]}" \
            --pids "$pids" --seconds "$SECONDS_PER_TEST" --udp-sizes "$UDP_SIZES" \
            --udp-probes "$UDP_PROBES" --udp-probe-seconds "$UDP_PROBE_SECONDS" \
            --port-base $((20000 + (BLOCK % 400) * 100)) --logdir "$VF_TMP/iperf-$name" \
            --out "$out.m" || rec "$out" "error=measurement helper failed (status $?)"
        if [[ -s "$out.m" ]]; then
            "$PY" - "$out" "$out.m" <<'EOF'
import json, sys
base = json.load(open(sys.argv[1]))
base.update(json.load(open(sys.argv[2])))
json.dump(base, open(sys.argv[1], "w"), indent=1)
EOF
            rm -f "$out.m"
        fi
    else
        say "  could not bring the tunnel up: $VF_REASON"
        rec "$out" "error=tunnel not up: $VF_REASON"
    fi
    stop_sides
    lock_drop
    rec "$out" "exit_status.a=${STOP_EXIT[a]:-}" "exit_status.b=${STOP_EXIT[b]:-}"
    for s in a b; do
        [[ -f "${VF_LOG[$s]:-}" ]] && cp "${VF_LOG[$s]}" "$RES/logs/$name-$s.log"
    done
}

# block_disturbed FILE: true when other processes used more than the threshold during the block.
block_disturbed() {
    "$PY" - "$1" "$BUSY_PCT" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
share = (b.get("background") or {}).get("vcpu_share")
sys.exit(0 if share is not None and share * 100 > float(sys.argv[2]) else 1)
EOF
}

for ((r = 1; r <= ROUNDS; r++)); do
    for i in "${!CFG_IDS[@]}"; do
        for ((attempt = 0; attempt <= BUSY_RETRIES; attempt++)); do
            run_block "$r" "$i" "$attempt"
            bfile=$(printf '%s/blocks/r%02d-%02d-%s.json' "$RES" "$r" "$i" "${CFG_IDS[$i]}")
            if ((attempt < BUSY_RETRIES)) && block_disturbed "$bfile"; then
                say "  other processes used more than $BUSY_PCT % of a vCPU during it: running it again"
                mv "$bfile" "$RES/discarded/$(basename "$bfile" .json)-try$attempt.json"
                continue
            fi
            break
        done
    done
done

vf_topology_down
rec "$META" "finished_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "machine.loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"

say "report"
"$PY" "$REPORT" "$RES" || die "report failed (raw data kept in $RES)"
ln -sfn "$STAMP" "$OUT_BASE/latest"
say "done: $RES/results.md (also $OUT_BASE/latest)"
cat "$RES/results.md"
