# shellcheck shell=bash
# shellcheck disable=SC2034 # VF_* results are globals read by the scripts that source this
# Helpers for vpnfast's network-namespace tests and demo. Source this file.
#
# Topology (one per vf_topology_up call, names unique to this shell's PID):
#
#   namespace vf-a-ID-N                      namespace vf-b-ID-N
#   ul0 198.18.0.1/24, fd18::1/64  <-veth->  ul0 198.18.0.2/24, fd18::2/64
#   tunnel 198.19.0.1, fd19::1               tunnel 198.19.0.2, fd19::2
#
# Each side runs one implementation: "vpnfast" ($VPNFAST up CONFIG) or
# "wggo" (wireguard-go -f in the foreground, configured with wg setconf).
# Every process started here is recorded by PID and stopped by that PID on
# exit; every wait is bounded.
#
# Results: vf_pass / vf_fail / vf_skip print "ok NAME", "FAIL NAME: reason",
# "skip NAME: reason" and count; vf_summary prints "netns: N passed, M failed".

set -uo pipefail

VF_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VF_ROOT=$(cd "$VF_LIB_DIR/../.." && pwd)
VF_NETTOOL="$VF_LIB_DIR/nettool.py"
VF_PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
VF_ID=${VF_ID:-$$}
VF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vpnfast-netns.XXXXXX")
VF_WG_RUNDIR=/var/run/wireguard

# Background jobs of a non-interactive shell start with SIGINT and SIGQUIT
# ignored; the daemons under test must see them as a terminal user would, so
# they are started through this prefix, which restores the default handling.
if env --default-signal=INT,QUIT true 2>/dev/null; then
    # shellcheck disable=SC2054 # the comma belongs to the option
    VF_SIGRESET=(env --default-signal=INT,QUIT)
else
    VF_SIGRESET=("$VF_PY" -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])')
fi

: "${VPNFAST:=$VF_ROOT/.build/release/vpnfast}"
[[ "$VPNFAST" == /* ]] || VPNFAST="$VF_ROOT/$VPNFAST"
: "${VPNFAST_ARGS:=}"      # extra arguments for every `vpnfast up`, e.g. "--threads 2"
: "${VF_KEEP_LOGS:=0}"     # 1: keep $VF_TMP even when everything passed
: "${VF_VERBOSE:=0}"       # 1: print progress notes

VF_PASSED=0
VF_FAILED=0
VF_SKIPPED=0
VF_SEQ=0        # counter for unique interface names, ports and file names
VF_TOPO=0
VF_REASON=""
VF_EXIT=""
VF_COUNTERS=""
VF_COUNTER_SUM=0
VF_FLOOD=""
VF_XFER=""
VF_WAIT_MS=0
declare -A VF_LIVE=()    # pid -> description, for every process still to stop
declare -a VF_NETNS=()   # namespaces created here
declare -a VF_SOCKS=()   # wireguard-go UAPI sockets created here

# Per-side state, keyed by "a" / "b".
declare -A VF_NS=() VF_IMPL=() VF_PID=() VF_LOG=() VF_IF=() VF_CONF=()
declare -A VF_PRIV=() VF_PUB=()
declare -A VF_PORT=([a]=51820 [b]=51821)
declare -A VF_U4=([a]=198.18.0.1 [b]=198.18.0.2)
declare -A VF_U6=([a]=fd18::1 [b]=fd18::2)
declare -A VF_T4=([a]=198.19.0.1 [b]=198.19.0.2)
declare -A VF_T6=([a]=fd19::1 [b]=fd19::2)

vf_note() { [[ "$VF_VERBOSE" == 1 ]] && printf '# %s\n' "$*" >&2; return 0; }
vf_warn() { printf 'netns: %s\n' "$*" >&2; }
vf_other() { [[ "$1" == a ]] && echo b || echo a; }
vf_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- results

vf_pass() { VF_PASSED=$((VF_PASSED + 1)); printf 'ok %s\n' "$1"; }
vf_fail() { VF_FAILED=$((VF_FAILED + 1)); printf 'FAIL %s: %s\n' "$1" "${2:-failed}"; }
vf_skip() { VF_SKIPPED=$((VF_SKIPPED + 1)); printf 'skip %s: %s\n' "$1" "${2:-skipped}"; }

# vf_check NAME CMD...: run CMD; ok if it succeeds, else FAIL with $VF_REASON.
vf_check() {
    local name=$1; shift
    VF_REASON=""
    if "$@"; then
        vf_pass "$name"
        return 0
    fi
    vf_fail "$name" "${VF_REASON:-command failed: $*}"
    return 1
}

vf_summary() {
    ((VF_SKIPPED > 0)) && printf 'netns: %d skipped\n' "$VF_SKIPPED"
    printf 'netns: %d passed, %d failed\n' "$VF_PASSED" "$VF_FAILED"
}

# ---------------------------------------------------------------- processes

# vf_alive PID: true while PID runs (not a zombie) as a child of this shell;
# every process started here is one, so a recycled PID is never mistaken for it.
vf_alive() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<<"${stat##*) }"
    [[ "${fields[0]}" != Z && "${fields[1]}" == "$$" ]]
}

# vf_track PID DESCRIPTION: remember a process to stop at cleanup.
vf_track() { VF_LIVE[$1]=$2; }

# vf_wait_pid PID SECONDS: wait (bounded) for PID to end; 0 if it did.
# Sets VF_EXIT to its exit status (when it is our child) or "timeout".
vf_wait_pid() {
    local pid=$1 limit=$2 i steps
    steps=$((limit * 10))
    for ((i = 0; i < steps; i++)); do
        vf_alive "$pid" || break
        sleep 0.1
    done
    if vf_alive "$pid"; then
        VF_EXIT=timeout
        return 1
    fi
    VF_EXIT=0
    wait "$pid" 2>/dev/null || VF_EXIT=$?
    unset 'VF_LIVE[$pid]'
    return 0
}

# vf_kill_pid PID [SIGNAL] [SECONDS]: signal PID, wait, then SIGKILL if needed.
vf_kill_pid() {
    local pid=$1 sig=${2:-TERM} limit=${3:-5}
    if vf_alive "$pid"; then
        kill -s "$sig" "$pid" 2>/dev/null
        if ! vf_wait_pid "$pid" "$limit"; then
            kill -s KILL "$pid" 2>/dev/null
            vf_wait_pid "$pid" 2 || true
            VF_EXIT=timeout
            return 1
        fi
        return 0
    fi
    VF_EXIT=0
    wait "$pid" 2>/dev/null || VF_EXIT=$?
    unset 'VF_LIVE[$pid]'
    return 0
}

# vf_reap_netns NS...: end every process left inside these namespaces (all of
# them were made by this run, so whatever runs there is ours): SIGTERM, up to
# 2 s of grace, then SIGKILL.
vf_reap_netns() {
    local ns pid pids i
    for ns in "$@"; do
        [[ -n "$ns" ]] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [[ -n "$pids" ]] || continue
        for pid in $pids; do kill -s TERM "$pid" 2>/dev/null; done
        for ((i = 0; i < 20; i++)); do
            [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
            sleep 0.1
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -s KILL "$pid" 2>/dev/null; done
    done
}

vf_cleanup() {
    local rc=$? pid ns sock
    set +e
    trap - EXIT INT TERM HUP
    for pid in "${!VF_LIVE[@]}"; do
        vf_kill_pid "$pid" TERM 3
    done
    vf_reap_netns "${VF_NETNS[@]}"
    for ns in "${VF_NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    for sock in "${VF_SOCKS[@]}"; do
        rm -f "$VF_WG_RUNDIR/$sock.sock" "$VF_WG_RUNDIR/$sock.name" 2>/dev/null
    done
    if [[ "$VF_KEEP_LOGS" == 1 || $VF_FAILED -gt 0 || $rc -ne 0 ]]; then
        vf_warn "logs kept in $VF_TMP"
    else
        rm -rf "$VF_TMP"
    fi
    return "$rc"
}

vf_install_traps() {
    trap vf_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

vf_require_root() {
    if [[ $EUID -ne 0 ]]; then
        vf_warn "must run as root (it creates network namespaces and TUN devices)"
        exit 2
    fi
}

# ---------------------------------------------------------------- topology

# vf_topology_up: two fresh namespaces joined by a veth pair; sets VF_NS[a|b].
vf_topology_up() {
    local s
    VF_TOPO=$((VF_TOPO + 1))
    VF_NS[a]="vf-a-$VF_ID-$VF_TOPO"
    VF_NS[b]="vf-b-$VF_ID-$VF_TOPO"
    for s in a b; do
        ip netns add "${VF_NS[$s]}" || { VF_REASON="ip netns add ${VF_NS[$s]} failed"; return 1; }
        VF_NETNS+=("${VF_NS[$s]}")
        ip -n "${VF_NS[$s]}" link set lo up
        ip netns exec "${VF_NS[$s]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
            net.ipv6.conf.default.disable_ipv6=0 >/dev/null 2>&1
    done
    # Created straight inside the namespaces, so the name never meets the host's.
    ip link add ul0 netns "${VF_NS[a]}" type veth peer name ul0 netns "${VF_NS[b]}" ||
        { VF_REASON="veth creation failed"; return 1; }
    for s in a b; do
        ip -n "${VF_NS[$s]}" addr add "${VF_U4[$s]}/24" dev ul0
        ip -n "${VF_NS[$s]}" addr add "${VF_U6[$s]}/64" dev ul0 nodad
        ip -n "${VF_NS[$s]}" link set ul0 up
    done
    vf_wait_cmd 5 ip netns exec "${VF_NS[a]}" ping -n -q -c1 -W1 "${VF_U4[b]}" ||
        { VF_REASON="underlay IPv4 does not ping"; return 1; }
    vf_wait_cmd 5 ip netns exec "${VF_NS[a]}" ping -n -q -c1 -W1 "${VF_U6[b]}" ||
        { VF_REASON="underlay IPv6 does not ping"; return 1; }
    return 0
}

# vf_topology_down: stop both sides and delete the namespaces of the current topology.
vf_topology_down() {
    local s ns keep=()
    vf_stop_both
    vf_reap_netns "${VF_NS[a]:-}" "${VF_NS[b]:-}"
    for ns in "${VF_NS[a]:-}" "${VF_NS[b]:-}"; do
        [[ -n "$ns" ]] && ip netns del "$ns" 2>/dev/null
    done
    for ns in "${VF_NETNS[@]}"; do
        [[ "$ns" == "${VF_NS[a]:-}" || "$ns" == "${VF_NS[b]:-}" ]] || keep+=("$ns")
    done
    VF_NETNS=("${keep[@]}")
    VF_NS[a]=""; VF_NS[b]=""
}

# vf_wait_cmd SECONDS CMD...: retry CMD (about once per 0.2 s, or as long as it
# takes) until it succeeds or SECONDS have passed.
vf_wait_cmd() {
    local limit=$1 start; shift
    start=$(date +%s)
    while true; do
        "$@" >/dev/null 2>&1 && return 0
        (( $(date +%s) - start >= limit )) && return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------- keys and configs

# vf_genkeys: fresh key pairs for both sides (and VF_PSK) with wg.
vf_genkeys() {
    local s
    for s in a b; do
        VF_PRIV[$s]=$(wg genkey) || return 1
        VF_PUB[$s]=$(printf '%s\n' "${VF_PRIV[$s]}" | wg pubkey) || return 1
    done
    VF_PSK=$(wg genpsk) || return 1
}

# vf_write_conf SIDE FILE ENDPOINT PSK KEEPALIVE
#   ENDPOINT: v4 | v6 | none (how this side reaches the other one)
#   PSK: a key or ""; KEEPALIVE: seconds or ""
# Writes a wg-quick style config for SIDE with the other side as its one peer.
vf_write_conf() {
    local s=$1 file=$2 ep=$3 psk=$4 ka=$5 o
    o=$(vf_other "$s")
    {
        echo "[Interface]"
        echo "PrivateKey = ${VF_PRIV[$s]}"
        echo "ListenPort = ${VF_PORT[$s]}"
        echo "Address = ${VF_T4[$s]}/24, ${VF_T6[$s]}/64"
        echo "MTU = 1420"
        echo
        echo "[Peer]"
        echo "PublicKey = ${VF_PUB[$o]}"
        [[ -n "$psk" ]] && echo "PresharedKey = $psk"
        echo "AllowedIPs = ${VF_T4[$o]}/32, ${VF_T6[$o]}/128"
        case "$ep" in
            v4) echo "Endpoint = ${VF_U4[$o]}:${VF_PORT[$o]}" ;;
            v6) echo "Endpoint = [${VF_U6[$o]}]:${VF_PORT[$o]}" ;;
        esac
        [[ -n "$ka" ]] && echo "PersistentKeepalive = $ka"
    } >"$file"
    chmod 600 "$file"
}

# vf_conf_values FILE KEY: the comma-separated values of KEY, one per line.
vf_conf_values() {
    sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" | tr ',' '\n' | sed 's/[[:space:]]//g;/^$/d'
}

# ---------------------------------------------------------------- starting and stopping

# vf_start SIDE IMPL CONFIG [extra vpnfast args...]: start SIDE's implementation
# in its namespace and wait (bounded) until its interface is up and its UDP port
# is bound. Sets VF_PID/VF_LOG/VF_IF/VF_IMPL/VF_CONF for SIDE.
vf_start() {
    local s=$1 impl=$2 conf=$3; shift 3
    local ns=${VF_NS[$s]} ifname pid log
    VF_SEQ=$((VF_SEQ + 1))
    ifname="vf$s${VF_ID}x$VF_SEQ"
    ifname=${ifname:0:15}
    log="$VF_TMP/$s-$VF_SEQ-$impl.log"
    VF_IMPL[$s]=$impl; VF_IF[$s]=$ifname; VF_LOG[$s]=$log; VF_CONF[$s]=$conf; VF_PID[$s]=""
    case "$impl" in
        vpnfast)
            # shellcheck disable=SC2086 # VPNFAST_ARGS is a word list on purpose
            ip netns exec "$ns" "${VF_SIGRESET[@]}" "$VPNFAST" up "$conf" --interface "$ifname" $VPNFAST_ARGS "$@" \
                </dev/null >"$log" 2>&1 &
            pid=$!
            vf_track "$pid" "vpnfast $s"
            VF_PID[$s]=$pid
            ;;
        wggo)
            # -f keeps it in the foreground, so $! is wireguard-go itself
            # (ip netns exec, env and the signal reset exec, they do not fork).
            ip netns exec "$ns" "${VF_SIGRESET[@]}" env LOG_LEVEL=verbose WG_PROCESS_FOREGROUND=1 \
                wireguard-go -f "$ifname" </dev/null >"$log" 2>&1 &
            pid=$!
            vf_track "$pid" "wireguard-go $s"
            VF_SOCKS+=("$ifname")
            VF_PID[$s]=$pid
            if ! vf_wait_cmd 5 test -S "$VF_WG_RUNDIR/$ifname.sock"; then
                VF_REASON="wireguard-go made no UAPI socket in 5 s"
                return 1
            fi
            vf_configure_wggo "$s" || return 1
            ;;
        *)
            VF_REASON="unknown implementation '$impl'"
            return 1
            ;;
    esac
    vf_wait_ready "$s"
}

# Configure a running wireguard-go the classic way: wg setconf, then ip.
vf_configure_wggo() {
    local s=$1 ns=${VF_NS[$1]} ifname=${VF_IF[$1]} conf=${VF_CONF[$1]} wgconf a mtu
    wgconf="${conf%.conf}.wg"
    grep -vE '^[[:space:]]*(Address|MTU|DNS|Table|PreUp|PostUp|PreDown|PostDown|SaveConfig)[[:space:]]*=' \
        "$conf" >"$wgconf"
    chmod 600 "$wgconf"
    if ! ip netns exec "$ns" wg setconf "$ifname" "$wgconf" >>"${VF_LOG[$s]}" 2>&1; then
        VF_REASON="wg setconf failed"
        return 1
    fi
    while read -r a; do
        if [[ "$a" == *:* ]]; then
            ip -n "$ns" addr add "$a" dev "$ifname" nodad
        else
            ip -n "$ns" addr add "$a" dev "$ifname"
        fi
    done < <(vf_conf_values "$conf" Address)
    mtu=$(vf_conf_values "$conf" MTU | head -n1)
    ip -n "$ns" link set dev "$ifname" mtu "${mtu:-1420}" up
    while read -r a; do
        ip -n "$ns" route replace "$a" dev "$ifname"
    done < <(vf_conf_values "$conf" AllowedIPs)
}

# vf_wait_ready SIDE: bounded wait until the process is alive, its interface is
# up with the IPv4 tunnel address, its IPv6 address is usable and its UDP port is bound.
vf_wait_ready() {
    local s=$1 ns=${VF_NS[$1]} ifname=${VF_IF[$1]} pid=${VF_PID[$1]} i
    for ((i = 0; i < 100; i++)); do
        if ! vf_alive "$pid"; then
            vf_wait_pid "$pid" 1
            VF_REASON="${VF_IMPL[$s]} ($s) exited early with status $VF_EXIT; log tail: $(tail -n 3 "${VF_LOG[$s]}" | tr '\n' '|')"
            return 1
        fi
        if ip -n "$ns" -o link show dev "$ifname" 2>/dev/null | grep -q '[<,]UP[,>]' &&
            ip -n "$ns" -o -4 addr show dev "$ifname" 2>/dev/null | grep -q "${VF_T4[$s]}/" &&
            ip -n "$ns" -o -6 addr show dev "$ifname" 2>/dev/null | grep -q "${VF_T6[$s]}/" &&
            [[ -z "$(ip -n "$ns" -6 addr show dev "$ifname" tentative 2>/dev/null)" ]] &&
            [[ -n "$(ip netns exec "$ns" ss -Hnlu "sport = :${VF_PORT[$s]}" 2>/dev/null)" ]]; then
            return 0
        fi
        sleep 0.1
    done
    VF_REASON="${VF_IMPL[$s]} ($s) not ready within 10 s (interface $ifname up with addresses, UDP ${VF_PORT[$s]} bound); log tail: $(tail -n 3 "${VF_LOG[$s]}" | tr '\n' '|')"
    return 1
}

# vf_stop SIDE [SIGNAL]: stop SIDE's implementation (vpnfast: SIGINT,
# wireguard-go: SIGTERM) and wait up to 10 s. Sets VF_EXIT; 0 if it ended in time.
vf_stop() {
    local s=$1 sig=${2:-} pid=${VF_PID[$1]:-} rc
    [[ -n "$pid" ]] || { VF_EXIT=""; return 0; }
    [[ -n "$sig" ]] || { [[ "${VF_IMPL[$s]}" == vpnfast ]] && sig=INT || sig=TERM; }
    vf_kill_pid "$pid" "$sig" 10
    rc=$?
    VF_PID[$s]=""
    return "$rc"
}

# vf_stop_both: stop both sides, then anything else left in their namespaces.
vf_stop_both() {
    vf_stop a >/dev/null 2>&1
    vf_stop b >/dev/null 2>&1
    vf_reap_netns "${VF_NS[a]:-}" "${VF_NS[b]:-}"
    return 0
}

# vf_iface_gone SIDE: true when SIDE's tunnel interface no longer exists.
vf_iface_gone() { ! ip -n "${VF_NS[$1]}" link show dev "${VF_IF[$1]}" >/dev/null 2>&1; }

# ---------------------------------------------------------------- traffic

# vf_parse_ping TEXT: read ping's summary into VF_PING_TX, VF_PING_RX and
# VF_PING_RTT ("min/avg/max" in ms, empty without replies).
vf_parse_ping() {
    VF_PING_OUT=$1
    VF_PING_TX=$(sed -n 's/^\([0-9][0-9]*\) packets transmitted.*/\1/p' <<<"$1")
    VF_PING_RX=$(sed -n 's/.* \([0-9][0-9]*\) \(packets \)\{0,1\}received.*/\1/p' <<<"$1")
    VF_PING_RTT=$(sed -n 's|^rtt [^=]*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\1/\2/\3|p' <<<"$1")
    : "${VF_PING_TX:=0}" "${VF_PING_RX:=0}"
}

# vf_ping SIDE DST COUNT INTERVAL: ping from SIDE's namespace (bounded by
# timeout) and parse the result; true if anything answered.
vf_ping() {
    local s=$1 dst=$2 count=$3 interval=$4 limit
    limit=$(awk -v c="$count" -v i="$interval" 'BEGIN { printf "%d", c * i + 6 }')
    vf_parse_ping "$(timeout "$limit" ip netns exec "${VF_NS[$s]}" \
        ping -n -q -c "$count" -i "$interval" -W 2 "$dst" 2>&1)"
    ((VF_PING_RX > 0))
}

# vf_ping_ok SIDE DST COUNT INTERVAL MAXLOST: true if at most MAXLOST were lost.
vf_ping_ok() {
    local lost
    vf_ping "$1" "$2" "$3" "$4"
    lost=$(($3 - VF_PING_RX))
    if ((lost > $5)); then
        VF_REASON="$lost of $3 pings to $2 lost (allowed $5)"
        return 1
    fi
    return 0
}

# vf_wait_tunnel SIDE DST SECONDS: bounded ping loop until DST answers
# (the first packet starts the handshake). Sets VF_WAIT_MS.
vf_wait_tunnel() {
    local s=$1 dst=$2 limit=$3 t0 now
    t0=$(vf_now_ms)
    while true; do
        if timeout 4 ip netns exec "${VF_NS[$s]}" ping -n -q -c1 -W1 "$dst" >/dev/null 2>&1; then
            VF_WAIT_MS=$(($(vf_now_ms) - t0))
            return 0
        fi
        now=$(vf_now_ms)
        if ((now - t0 >= limit * 1000)); then
            VF_REASON="no reply from $dst within $limit s"
            return 1
        fi
        sleep 0.2
    done
}

# vf_transfer FROM TO DST nettool-send-args...: TCP transfer of random data from
# FROM's namespace to a receiver in TO's namespace listening on DST; true when
# both ends saw the same byte count and SHA-256. Sets VF_XFER (a summary).
vf_transfer() {
    local from=$1 to=$2 dst=$3; shift 3
    local port rx tx rpid rc t0 t1 ms
    VF_SEQ=$((VF_SEQ + 1))
    port=$((40000 + VF_SEQ))
    rx="$VF_TMP/xfer-$VF_SEQ.rx"
    tx="$VF_TMP/xfer-$VF_SEQ.tx"
    ip netns exec "${VF_NS[$to]}" timeout 150 "$VF_PY" "$VF_NETTOOL" recv "$dst" "$port" \
        </dev/null >"$rx" 2>"$rx.err" &
    rpid=$!
    vf_track "$rpid" "receiver $to:$port"
    t0=$(vf_now_ms)
    timeout 150 ip netns exec "${VF_NS[$from]}" "$VF_PY" "$VF_NETTOOL" send "$dst" "$port" "$@" \
        </dev/null >"$tx" 2>"$tx.err"
    rc=$?
    t1=$(vf_now_ms)
    # A failed sender means no receiver result is coming: stop it at once.
    if ((rc != 0)) || ! vf_wait_pid "$rpid" 30; then
        vf_kill_pid "$rpid" TERM 2
    fi
    ms=$((t1 - t0)); ((ms > 0)) || ms=1
    local txs rxs
    txs=$(cat "$tx"); rxs=$(cat "$rx")
    if ((rc != 0)) || [[ -z "$txs" ]]; then
        VF_REASON="sender failed (status $rc): $(tr '\n' ' ' <"$tx.err" | cut -c1-200)"
        return 1
    fi
    if [[ -z "$rxs" ]]; then
        VF_REASON="receiver failed: $(tr '\n' ' ' <"$rx.err" | cut -c1-200)"
        return 1
    fi
    if [[ "$txs" != "$rxs" ]]; then
        VF_REASON="mismatch: sent '${txs}' received '${rxs}'"
        return 1
    fi
    VF_XFER="${txs%% *} bytes in ${ms} ms"
    vf_note "transfer: $VF_XFER"
    return 0
}

# vf_flood FROM_SIDE DST PORT SRC [nettool-flood-args...]: hostile datagrams.
vf_flood() {
    local from=$1 dst=$2 port=$3 src=$4; shift 4
    VF_FLOOD=$(timeout 60 ip netns exec "${VF_NS[$from]}" "$VF_PY" "$VF_NETTOOL" flood "$dst" "$port" \
        --src "$src" "$@" 2>&1)
}

# ---------------------------------------------------------------- logs

# vf_log_count SIDE REGEX: how many lines of SIDE's log match (case-insensitive).
vf_log_count() { grep -ciE -- "$2" "${VF_LOG[$1]}" 2>/dev/null || true; }

# vf_counters_sum FILE FROM_LINE PREFIX: add up the "counter NAME=VALUE" lines
# whose NAME starts with PREFIX, in FILE from line FROM_LINE on. Sets
# VF_COUNTER_SUM and VF_COUNTERS (the matching NAME=VALUE pairs).
vf_counters_sum() {
    local file=$1 from=$2 prefix=$3 pairs
    pairs=$(tail -n "+$from" "$file" 2>/dev/null | grep -oE "counter ${prefix}[A-Za-z0-9_]*=[0-9]+" | sed 's/^counter //')
    VF_COUNTERS=$(tr '\n' ' ' <<<"$pairs")
    VF_COUNTER_SUM=$(awk -F= '{ s += $2 } END { print s + 0 }' <<<"$pairs")
}

vf_log_lines() { wc -l <"${VF_LOG[$1]}" 2>/dev/null || echo 0; }
