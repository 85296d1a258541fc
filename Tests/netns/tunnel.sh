#!/usr/bin/env bash
# End-to-end tests of vpnfast in network namespaces, against itself and
# against wireguard-go. Needs root. Prints "ok NAME" / "FAIL NAME: reason"
# per case and ends with "netns: N passed, M failed" (non-zero exit if M > 0).
#
# Usage: Tests/netns/tunnel.sh [PAIR...]
#   PAIR is SIDE_A-SIDE_B with each side "vpnfast" or "wggo" (wireguard-go).
#   Default (or $PAIRS): "vpnfast-vpnfast vpnfast-wggo".
#   "wggo-wggo" needs no vpnfast binary: it checks the harness itself.
# Environment:
#   VPNFAST       vpnfast binary (default .build/release/vpnfast in the repo)
#   VPNFAST_ARGS  extra arguments for every `vpnfast up`
#   RUNS          only these runs, e.g. RUNS="basic show ecn" (names as in "ok PAIR:RUN:case"; default all)
#   VF_SHAPED_COMPARE=1  also measure the shaped link without --rate (figures only, never a failure)
#   XFER_BYTES    size of the big TCP transfer (default 64 MiB)
#   VF_VERBOSE=1  progress notes; VF_KEEP_LOGS=1 keep the logs directory

# shellcheck source=Tests/netns/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vf_require_root
vf_install_traps

if (($# > 0)); then
    PAIRS="$*"
else
    PAIRS=${PAIRS:-"vpnfast-vpnfast vpnfast-wggo"}
fi
XFER_BYTES=${XFER_BYTES:-$((64 * 1024 * 1024))}
MIB=$((1024 * 1024))

for tool in ip wg timeout ping ss "$VF_PY"; do
    command -v "$tool" >/dev/null 2>&1 || { vf_warn "missing tool: $tool (run scripts/install-deps.sh)"; exit 2; }
done

# ------------------------------------------------------------ run helpers

# start_run RUN EP_A EP_B PSK KA_A [vpnfast args for A...]
# Stops whatever runs, writes both configs and starts A then B.
start_run() {
    local run=$1 epa=$2 epb=$3 psk=$4 kaa=$5; shift 5
    [[ -z "${RUNS:-}" || " $RUNS " == *" $run "* ]] || return 1
    RUN=$run
    RUN_FAILED_BEFORE=$VF_FAILED
    vf_stop_both
    vf_write_conf a "$VF_TMP/$PAIR-$run-a.conf" "$epa" "$psk" "$kaa"
    vf_write_conf b "$VF_TMP/$PAIR-$run-b.conf" "$epb" "$psk" ""
    if ! vf_start a "$IMPL_A" "$VF_TMP/$PAIR-$run-a.conf" "$@"; then
        vf_fail "$PAIR:$run:start-a" "$VF_REASON"
        finish_run
        return 1
    fi
    if ! vf_start b "$IMPL_B" "$VF_TMP/$PAIR-$run-b.conf"; then
        vf_fail "$PAIR:$run:start-b" "$VF_REASON"
        finish_run
        return 1
    fi
    vf_note "$PAIR:$run: a=${VF_IMPL[a]} pid ${VF_PID[a]} if ${VF_IF[a]}, b=${VF_IMPL[b]} pid ${VF_PID[b]} if ${VF_IF[b]}"
    return 0
}

# finish_run: stop both sides; after a failure show the ends of their logs.
finish_run() {
    local s
    vf_stop_both
    if ((VF_FAILED > RUN_FAILED_BEFORE)); then
        for s in a b; do
            [[ -n "${VF_LOG[$s]:-}" && -f "${VF_LOG[$s]}" ]] || continue
            printf '# %s:%s: last lines of %s (%s):\n' "$PAIR" "$RUN" "${VF_LOG[$s]}" "${VF_IMPL[$s]}"
            tail -n 8 "${VF_LOG[$s]}" | sed 's/^/#   /'
        done
    fi
}

case_() { vf_check "$PAIR:$RUN:$1" "${@:2}"; }
# want RUN: true unless $RUNS names other runs only.
want() { [[ -z "${RUNS:-}" || " $RUNS " == *" $1 "* ]]; }


# pings_both_ways COUNT: IPv4 and IPv6 inner pings in both directions, no loss.
pings_both_ways() {
    local n=${1:-5}
    case_ ping4-a-to-b vf_ping_ok a "${VF_T4[b]}" "$n" 0.2 0
    case_ ping4-b-to-a vf_ping_ok b "${VF_T4[a]}" "$n" 0.2 0
    case_ ping6-a-to-b vf_ping_ok a "${VF_T6[b]}" "$n" 0.2 0
    case_ ping6-b-to-a vf_ping_ok b "${VF_T6[a]}" "$n" 0.2 0
}

# clean_shutdown SIDE: SIGINT (vpnfast) or SIGTERM (wireguard-go) ends the
# process within 10 s with status 0 and its interface is gone.
clean_shutdown() {
    local s=$1
    if ! vf_stop "$s"; then
        VF_REASON="still running 10 s after the signal (killed)"
        return 1
    fi
    if [[ "$VF_EXIT" != 0 ]]; then
        VF_REASON="exit status $VF_EXIT"
        return 1
    fi
    if ! vf_iface_gone "$s"; then
        VF_REASON="interface ${VF_IF[$s]} still exists"
        return 1
    fi
    return 0
}

log_at_least() { # SIDE REGEX N
    local n
    n=$(vf_log_count "$1" "$2")
    if ((n < $3)); then
        VF_REASON="log has $n line(s) matching '$2', expected at least $3"
        return 1
    fi
    return 0
}

drops_counted() { # SIDE FROM_LINE
    vf_counters_sum "${VF_LOG[$1]}" "$2" rx_drop
    if ((VF_COUNTER_SUM <= 0)); then
        VF_REASON="no nonzero 'counter rx_drop...=N' line logged at exit"
        return 1
    fi
    printf '# drop counters: %s\n' "$VF_COUNTERS"
    return 0
}

sigusr1_counters() { # SIDE
    local s=$1 from
    from=$(($(vf_log_lines "$s") + 1))
    kill -s USR1 "${VF_PID[$s]}" 2>/dev/null
    if ! vf_wait_cmd 5 eval "tail -n +$from '${VF_LOG[$s]}' | grep -q 'counter [A-Za-z0-9_]*=[0-9]'"; then
        VF_REASON="no 'counter NAME=VALUE' line within 5 s of SIGUSR1"
        return 1
    fi
    vf_alive "${VF_PID[$s]}" || { VF_REASON="process died on SIGUSR1"; return 1; }
}

# tun_bursts_capped SIDE: the TUN's gso_max_segs is one read batch (InterfaceSetup.maxBurstSegments, 128), so
# the kernel never hands it a TSO/USO burst the tun-reader cannot split into a batch.
tun_bursts_capped() {
    local segs
    segs=$(ip -d -n "${VF_NS[$1]}" link show dev "${VF_IF[$1]}" 2>/dev/null | grep -o 'gso_max_segs [0-9]*' | head -n1)
    [[ "$segs" == "gso_max_segs 128" ]] && return 0
    VF_REASON="ip -d link show says '${segs:-no gso_max_segs}', expected gso_max_segs 128"
    return 1
}

# small_mss_transfer: 8 MiB B→A while A advertises an MSS of 216 bytes (advmss on its route to B). At this rate
# B's TCP builds TSO bursts of a few hundred segments unless the TUN caps them at 128; uncapped, each such burst
# is dropped as tx_drop_bad_offload. The transfer must complete and B must count no such drop (SIGUSR1 dump).
small_mss_transfer() {
    local rc from
    ip -n "${VF_NS[a]}" route replace "${VF_T4[b]}/32" dev "${VF_IF[a]}" advmss 216 || {
        VF_REASON="cannot set advmss on A's route to B"; return 1; }
    vf_transfer b a "${VF_T4[a]}" --bytes $((8 * MIB))
    rc=$?
    ip -n "${VF_NS[a]}" route del "${VF_T4[b]}/32" dev "${VF_IF[a]}" 2>/dev/null
    ((rc == 0)) || return 1
    from=$(($(vf_log_lines b) + 1))
    sigusr1_counters b || return 1
    sleep 0.3   # the whole dump, not just its first line
    vf_counters_sum "${VF_LOG[b]}" "$from" tx_drop_bad_offload
    if ((VF_COUNTER_SUM > 0)); then
        VF_REASON="B dropped $VF_COUNTER_SUM super-packet(s) as bad offload"
        return 1
    fi
    return 0
}

flood_sent() {
    vf_flood b "${VF_U4[a]}" "${VF_PORT[a]}" "${VF_U4[b]}"
    printf '# %s\n' "$VF_FLOOD"
    if [[ "$VF_FLOOD" != flood:*sent=* ]]; then
        VF_REASON="flood tool failed: $VF_FLOOD"
        return 1
    fi
}

still_running() { # SIDE
    vf_alive "${VF_PID[$1]}" || { VF_REASON="${VF_IMPL[$1]} on side $1 is gone"; return 1; }
}

# rekey_traffic: 10 s of pings (background) and a paced TCP stream across rekeys. The stream is kept at a rate
# Debian's wireguard-go (one datagram per read) can absorb: at 200 Mbit/s of vpnfast's GSO bursts its socket
# buffer overflows (UDP RcvbufErrors), and pings lost there would say nothing about rekeying.
rekey_traffic() {
    local out="$VF_TMP/$PAIR-rekey-ping.txt" ppid
    timeout 25 ip netns exec "${VF_NS[a]}" ping -n -q -c 100 -i 0.1 -W 2 "${VF_T4[b]}" >"$out" 2>&1 &
    ppid=$!
    vf_track "$ppid" "ping series"
    case_ tcp-stream-9s vf_transfer a b "${VF_T4[b]}" --seconds 9 --rate-mbit 50
    vf_wait_pid "$ppid" 20 || vf_kill_pid "$ppid" TERM 2
    vf_parse_ping "$(cat "$out")"
    REKEY_LOST=$((100 - VF_PING_RX))
}

at_most_lost() { # N
    vf_note "rekey: $REKEY_LOST of 100 pings lost"
    if ((REKEY_LOST > $1)); then
        VF_REASON="$REKEY_LOST of 100 pings lost across rekeys (allowed $1)"
        return 1
    fi
}

# ------------------------------------------------------------ vpnfast show

# show_socket SIDE: the control socket vpnfast logged is keyed by this network namespace's inode, root-only
# (directory 0700, socket 0600, owned by root). Sets SHOW_SOCK.
show_socket() {
    local s=$1 ino want
    SHOW_SOCK=$(sed -n 's|.*control socket \(/[^ ]*\.sock\) .*|\1|p' "${VF_LOG[$s]}" | head -n 1)
    ino=$(ip netns exec "${VF_NS[$s]}" stat -L -c %i /proc/self/ns/net)
    want="/run/vpnfast/net-$ino/${VF_IF[$s]}.sock"
    if [[ "$SHOW_SOCK" != "$want" ]]; then
        VF_REASON="logged control socket '${SHOW_SOCK}', expected $want"
        return 1
    fi
    if [[ ! -S "$SHOW_SOCK" ]]; then VF_REASON="$SHOW_SOCK is not a socket"; return 1; fi
    if [[ "$(stat -c '%a %u' "$SHOW_SOCK")" != "600 0" || "$(stat -c '%a %u' "${SHOW_SOCK%/*}")" != "700 0" ||
        "$(stat -c '%a %u' /run/vpnfast)" != "700 0" ]]; then
        VF_REASON="modes: socket $(stat -c '%a %u' "$SHOW_SOCK"), directory $(stat -c '%a %u' "${SHOW_SOCK%/*}"), /run/vpnfast $(stat -c '%a %u' /run/vpnfast) (want 600/700/700, owner 0)"
        return 1
    fi
}

# show_text SIDE: `vpnfast show IFACE` prints the interface and its peer with the queue, sojourn, drop and
# ECN lines.
show_text() {
    local s=$1 o out want
    o=$(vf_other "$s")
    out=$(timeout 10 ip netns exec "${VF_NS[$s]}" "$VPNFAST" show "${VF_IF[$s]}" 2>&1) ||
        { VF_REASON="vpnfast show failed: $(head -c 300 <<<"$out")"; return 1; }
    local wants=("interface: ${VF_IF[$s]}" "peer: ${VF_PUB[$o]}" "latest handshake: " "transfer: "
        "drops: codel " "ecn: CE marks sent ")
    # Queue and sojourn lines exist with fq_codel (not with --no-aqm).
    [[ "$out" == *"queueing: FIFO"* ]] || wants+=("queue: " "sojourn in fq_codel since start")
    for want in "${wants[@]}"; do
        if [[ "$out" != *"$want"* ]]; then
            VF_REASON="no '$want' in: $(tr '\n' '|' <<<"$out" | head -c 600)"
            return 1
        fi
    done
    vf_note "vpnfast show:"$'\n'"$out"
}

# show_json SIDE [IFACE...]: `vpnfast show --json` parses and its one peer has non-zero rx/tx bytes, sojourn
# samples and every queue, drop and ECN field (nettool.py showcheck). Without IFACE: all interfaces here.
show_json() {
    local s=$1 o out; shift
    o=$(vf_other "$s")
    # stdout only: notes (a stale socket skipped) go to stderr and are not part of the JSON.
    out=$(timeout 10 ip netns exec "${VF_NS[$s]}" "$VPNFAST" show --json "$@" 2>"$VF_TMP/show-json.err" |
        "$VF_PY" "$VF_NETTOOL" showcheck --peer "${VF_PUB[$o]}")
    if [[ "$out" != showcheck:\ rx_bytes=* ]]; then
        VF_REASON="$out (stderr: $(head -c 300 "$VF_TMP/show-json.err"))"
        return 1
    fi
    printf '# %s\n' "$out"
}

# show_skips_stale SIDE: with a stale control socket beside the live one (bound, then closed without unlinking,
# as a killed run leaves it), `vpnfast show --json` without IFACE still reports the live interface, exits 0 and
# names the stale one in a note on stderr. The stale socket is removed afterwards.
show_skips_stale() {
    local s=$1 o stale out err rc
    o=$(vf_other "$s")
    stale="${SHOW_SOCK%/*}/stale0.sock"
    ip netns exec "${VF_NS[$s]}" "$VF_PY" -c 'import socket, sys
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); u.bind(sys.argv[1]); u.listen(1); u.close()' "$stale" ||
        { VF_REASON="could not make a stale socket at $stale"; return 1; }
    err="$VF_TMP/show-stale.err"
    timeout 10 ip netns exec "${VF_NS[$s]}" "$VPNFAST" show --json >"$VF_TMP/show-stale.json" 2>"$err"
    rc=$?
    rm -f "$stale"
    if ((rc != 0)); then VF_REASON="show exited $rc with a stale socket: $(head -c 300 "$err")"; return 1; fi
    out=$("$VF_PY" "$VF_NETTOOL" showcheck --peer "${VF_PUB[$o]}" <"$VF_TMP/show-stale.json")
    if [[ "$out" != showcheck:\ rx_bytes=* ]]; then VF_REASON="with a stale socket: $out"; return 1; fi
    if ! grep -q "skipping stale0: .* stale control socket" "$err"; then
        VF_REASON="no note about the stale socket on stderr: $(head -c 300 "$err")"
        return 1
    fi
}

# show_fails SIDE EXPECTED-MESSAGE CMD...: CMD (run in SIDE's namespace) exits non-zero with the message.
show_fails() {
    local s=$1 want=$2 out rc; shift 2
    out=$(timeout 10 ip netns exec "${VF_NS[$s]}" "$@" 2>&1)
    rc=$?
    if ((rc == 0)) || [[ "$out" != *"$want"* ]]; then
        VF_REASON="status $rc, output: $(head -c 300 <<<"$out") (expected a failure with '$want')"
        return 1
    fi
}

# show_garbage SIDE: bytes that are no request get an error answer; a client that says nothing is hung up
# on; the server still answers `show` afterwards.
show_garbage() {
    local s=$1 out
    out=$(ip netns exec "${VF_NS[$s]}" "$VF_PY" "$VF_NETTOOL" unix "$SHOW_SOCK" --hex ff00676172626167650a0a 2>&1)
    [[ "$out" == error=* ]] || { VF_REASON="garbage answered with: $(head -c 200 <<<"$out")"; return 1; }
    out=$(ip netns exec "${VF_NS[$s]}" "$VF_PY" "$VF_NETTOOL" unix "$SHOW_SOCK" --hex "$(printf '78%.0s' {1..5000})" 2>&1)
    [[ "$out" == error=* ]] || { VF_REASON="5000-byte request answered with: $(head -c 200 <<<"$out")"; return 1; }
    out=$(ip netns exec "${VF_NS[$s]}" "$VF_PY" "$VF_NETTOOL" unix "$SHOW_SOCK" --timeout 4 2>&1)
    [[ -z "$out" ]] || { VF_REASON="a silent client got: $(head -c 200 <<<"$out")"; return 1; }
    out=$(ip netns exec "${VF_NS[$s]}" "$VF_PY" "$VF_NETTOOL" unix "$SHOW_SOCK" --hex 73686f770a 2>&1)
    [[ "$out" == interface=* ]] || { VF_REASON="'show' afterwards answered with: $(head -c 200 <<<"$out")"; return 1; }
}

# socket_gone: the control socket, and its namespace's emptied directory, were removed at exit.
socket_gone() {
    local dir=${SHOW_SOCK%/*} others
    [[ ! -e "$SHOW_SOCK" ]] || { VF_REASON="$SHOW_SOCK still exists"; return 1; }
    [[ -e "$dir" ]] || return 0
    # The directory is named after the namespace's inode, which the kernel reuses: a vpnfast killed with SIGKILL
    # in an earlier namespace of the same number leaves its socket there, and vpnfast rightly leaves that alone.
    others=$(ls -A "$dir" 2>/dev/null)
    [[ -n "$others" ]] || { VF_REASON="$dir still exists, empty"; return 1; }
    printf '# %s kept: it holds sockets of other runs (%s)\n' "$dir" "$(tr '\n' ' ' <<<"$others")"
}

# sigterm_exit SIDE: SIGTERM ends vpnfast within 10 s with status 0.
sigterm_exit() {
    vf_stop "$1" TERM || { VF_REASON="still running 10 s after SIGTERM (killed)"; return 1; }
    [[ "$VF_EXIT" == 0 ]] || { VF_REASON="exit status $VF_EXIT"; return 1; }
}

# ping_rtts SIDE DST COUNT INTERVAL FILE: a ping series (bounded), one reply per line in FILE.
ping_rtts() {
    local limit
    limit=$(awk -v c="$3" -v i="$4" 'BEGIN { printf "%d", c * i * 2 + 6 }')
    timeout "$limit" ip netns exec "${VF_NS[$1]}" ping -n -c "$3" -i "$4" -W 2 "$2" >"$5" 2>&1
}

# percentile FILE P: the P-th percentile of the time=MS values in a ping output ("none" without replies).
percentile() {
    grep -o 'time=[0-9.]*' "$1" | cut -d= -f2 | sort -n |
        awk -v p="$2" '{ v[NR] = $1 } END { if (NR == 0) { print "none"; exit }
                                            i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

# backlog_packets NS DEV: the packets a qdisc on DEV holds now (summed over its qdiscs).
backlog_packets() {
    ip netns exec "$1" tc -s qdisc show dev "$2" 2>/dev/null |
        awk '/backlog/ { for (i = 1; i < NF; i++) if ($i == "backlog") { p = $(i + 2); sub(/p$/, "", p); s += p } }
             END { print s + 0 }'
}

# shaped_measure LABEL: with A's underlay shaped by tbf, idle then loaded ping (4 TCP streams A->B through the
# tunnel). Sets SH_IDLE99, SH_LOAD50, SH_LOAD99, SH_LOAD_RX, SH_MBIT, SH_TUN_MAX, SH_TBF_MAX and prints them.
shaped_measure() {
    local label=$1 nsa=${VF_NS[a]} nsb=${VF_NS[b]} f="$VF_TMP/$PAIR-$RUN" spid cpid ppid i p
    SH_IDLE99=none SH_LOAD50=none SH_LOAD99=none SH_LOAD_RX=0 SH_MBIT=0 SH_TUN_MAX=0 SH_TBF_MAX=0
    ping_rtts a "${VF_T4[b]}" 200 0.01 "$f-idle.txt"
    SH_IDLE99=$(percentile "$f-idle.txt" 99)
    ip netns exec "$nsb" timeout 30 iperf3 -s -1 -B "${VF_T4[b]}" -p 5201 >"$f-iperf-s.txt" 2>&1 &
    spid=$!
    vf_track "$spid" "iperf3 server"
    vf_wait_cmd 5 eval "ip netns exec '$nsb' ss -Hltn 'sport = :5201' | grep -q LISTEN"
    ip netns exec "$nsa" timeout 30 iperf3 -c "${VF_T4[b]}" -p 5201 -P 4 -t 9 -J >"$f-iperf-c.json" 2>&1 &
    cpid=$!
    vf_track "$cpid" "iperf3 client"
    sleep 2   # past slow start
    ping_rtts a "${VF_T4[b]}" 500 0.01 "$f-loaded.txt" &
    ppid=$!
    vf_track "$ppid" "loaded ping"
    for ((i = 0; i < 10; i++)); do
        sleep 0.5
        p=$(backlog_packets "$nsa" "${VF_IF[a]}"); ((p > SH_TUN_MAX)) && SH_TUN_MAX=$p
        p=$(backlog_packets "$nsa" ul0); ((p > SH_TBF_MAX)) && SH_TBF_MAX=$p
    done
    vf_wait_pid "$ppid" 15 || vf_kill_pid "$ppid" TERM 2
    vf_wait_pid "$cpid" 20 || vf_kill_pid "$cpid" TERM 2
    vf_wait_pid "$spid" 5 || vf_kill_pid "$spid" TERM 2
    SH_LOAD50=$(percentile "$f-loaded.txt" 50)
    SH_LOAD99=$(percentile "$f-loaded.txt" 99)
    SH_LOAD_RX=$(grep -c 'time=' "$f-loaded.txt")
    SH_MBIT=$("$VF_PY" -c 'import json, sys
try: print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception: print(0)' "$f-iperf-c.json")
    printf '# shaped (%s): idle ping p50/p99 %s/%s ms; loaded p50/p99 %s/%s ms (%s/500 replies); 4 TCP streams %s Mbit/s; max backlog: TUN %s packets, underlay tbf %s packets\n' \
        "$label" "$(percentile "$f-idle.txt" 50)" "$SH_IDLE99" "$SH_LOAD50" "$SH_LOAD99" "$SH_LOAD_RX" "$SH_MBIT" \
        "$SH_TUN_MAX" "$SH_TBF_MAX"
}

shape_underlay() { ip netns exec "${VF_NS[a]}" tc qdisc replace dev ul0 root tbf rate 100mbit burst 32kb latency 200ms; }
unshape_underlay() { ip netns exec "${VF_NS[a]}" tc qdisc del dev ul0 root 2>/dev/null; return 0; }

loaded_p99_ok() {
    if [[ "$SH_IDLE99" == none || "$SH_LOAD99" == none ]]; then
        VF_REASON="no ping replies (idle p99 $SH_IDLE99, loaded p99 $SH_LOAD99)"
        return 1
    fi
    if awk -v l="$SH_LOAD99" -v i="$SH_IDLE99" 'BEGIN { exit !(l > i + 10) }'; then
        VF_REASON="loaded ping p99 $SH_LOAD99 ms > idle p99 $SH_IDLE99 ms + 10 ms"
        return 1
    fi
}

loaded_pings_answered() {
    ((SH_LOAD_RX >= 450)) || { VF_REASON="only $SH_LOAD_RX of 500 pings under load answered"; return 1; }
}

# The link was loaded: well above what a broken shaper or tunnel would carry, at most the --rate.
load_carried() {
    ((SH_MBIT >= 60 && SH_MBIT <= 96)) || { VF_REASON="4 TCP streams carried $SH_MBIT Mbit/s (expected 60..96 with --rate 95mbit)"; return 1; }
}

tun_no_standing_backlog() {
    ((SH_TUN_MAX <= 16)) || { VF_REASON="the TUN's qdisc held up to $SH_TUN_MAX packets under load"; return 1; }
}

# flow_labels_seen PORT FILE: outer flow labels of A's transport packets while one inner UDP flow (source PORT)
# runs A->B over the IPv6 underlay, one per line (0 where tcpdump shows none).
flow_labels_seen() {
    local port=$1 out=$2 tpid
    ip netns exec "${VF_NS[a]}" timeout 10 tcpdump -i ul0 -nn -v -l -c 8 \
        "ip6 and udp and src host ${VF_U6[a]} and greater 400" >"$out" 2>"$out.err" &
    tpid=$!
    vf_track "$tpid" "tcpdump"
    vf_wait_cmd 5 grep -q 'listening on' "$out.err"
    timeout 10 ip netns exec "${VF_NS[a]}" "$VF_PY" "$VF_NETTOOL" udp "${VF_T4[b]}" 9 --src-port "$port" \
        --count 12 --size 400 --interval 0.02 >/dev/null 2>&1
    vf_wait_pid "$tpid" 5 || vf_kill_pid "$tpid" TERM 2
    awk '/IP6 \(/ { if (match($0, /flowlabel 0x[0-9a-f]+/)) print substr($0, RSTART + 10, RLENGTH - 10); else print 0 }' "$out"
}

# flow_labels MODE: four inner flows, one after another. on: each flow keeps one non-zero label and the flows do
# not all share one (with 64 leased labels two flows collide 1 time in 64; all four only 1 in 262144). off: every
# flow has the same label (the kernel's automatic one, a hash of the outer addresses and ports).
flow_labels() {
    local mode=$1 port labels all="" summary="" distinct n
    for port in 41001 41002 41003 41004; do
        labels=$(flow_labels_seen "$port" "$VF_TMP/$PAIR-$RUN-$port.txt" | sort -u)
        n=$(grep -c . <<<"$labels")
        summary+="flow $port: $(tr '\n' ' ' <<<"$labels"); "
        if ((n == 0)); then VF_REASON="no outer packets of flow $port captured"; return 1; fi
        if ((n != 1)); then VF_REASON="flow $port changed label: $summary"; return 1; fi
        all+="$labels"$'\n'
    done
    distinct=$(grep -c . <<<"$(sort -u <<<"$all")")
    printf '# flow labels (%s): %s\n' "$mode" "$summary"
    if [[ "$mode" == on ]]; then
        if grep -qx 0 <<<"$all"; then VF_REASON="a flow went out without a label: $summary"; return 1; fi
        ((distinct >= 2)) || { VF_REASON="all four flows share one label: $summary"; return 1; }
    else
        ((distinct == 1)) || { VF_REASON="without --flowlabel the flows' labels differ: $summary"; return 1; }
    fi
}

# ecn_tcp_on: both namespaces ask for ECN on their TCP connections (tcp_ecn=1).
ecn_tcp_on() {
    local s
    for s in a b; do ip netns exec "${VF_NS[$s]}" sysctl -qw net.ipv4.tcp_ecn=1; done
}

# ce_path ect|all|off: in B's namespace, before B's vpnfast reads them, set CE on the outer header of datagrams
# to B's port: 1 in 4 of the ECT ones (a congested ECN router), every one (a path that also marks Not-ECT,
# which RFC 6040 answers with a drop), or none (the table is removed).
ce_path() {
    local ns=${VF_NS[b]} port=${VF_PORT[b]} rule
    ip netns exec "$ns" nft delete table ip vfecn 2>/dev/null
    case "$1" in
        ect) rule="udp dport $port ip ecn { ect0, ect1 } numgen random mod 4 0 ip ecn set ce" ;;
        all) rule="udp dport $port ip ecn set ce" ;;
        *) return 0 ;;
    esac
    if ! ip netns exec "$ns" nft -f - <<EOF
table ip vfecn {
    chain pre {
        type filter hook prerouting priority mangle; policy accept;
        $rule
    }
}
EOF
    then
        VF_REASON="nft could not add the CE-marking rule (nftables installed? scripts/install-deps.sh)"
        return 1
    fi
}

# tcp_delivered_ce SIDE: the TCP sender in SIDE's namespace was told of CE marks (ECE) on its data.
tcp_delivered_ce() {
    local n
    n=$(ip netns exec "${VF_NS[$1]}" nstat -asz TcpExtTCPDeliveredCE 2>/dev/null |
        awk '$1 == "TcpExtTCPDeliveredCE" { print $2 }')
    printf '# TcpExtTCPDeliveredCE on %s: %s\n' "$1" "${n:-none}"
    if ((${n:-0} <= 0)); then
        VF_REASON="TcpExtTCPDeliveredCE is ${n:-unreadable}: the flow saw no CE"
        return 1
    fi
}

# counter_at_least SIDE NAME N: SIGUSR1 makes vpnfast on SIDE log its non-zero counters; NAME must be >= N.
counter_at_least() {
    local s=$1 name=$2 n=$3 from
    from=$(($(vf_log_lines "$s") + 1))
    kill -s USR1 "${VF_PID[$s]}" 2>/dev/null
    if ! vf_wait_cmd 5 eval "tail -n +$from '${VF_LOG[$s]}' | grep -q 'counter [A-Za-z0-9_]*=[0-9]'"; then
        VF_REASON="no 'counter NAME=VALUE' line within 5 s of SIGUSR1"
        return 1
    fi
    sleep 0.3
    vf_counters_sum "${VF_LOG[$s]}" "$from" "$name"
    printf '# %s on %s: %s\n' "$name" "$s" "$VF_COUNTER_SUM"
    if ((VF_COUNTER_SUM < n)); then
        VF_REASON="counter $name is $VF_COUNTER_SUM, expected at least $n"
        return 1
    fi
}

# pings_all_lost SIDE DST COUNT: none of COUNT pings is answered.
pings_all_lost() {
    vf_ping "$1" "$2" "$3" 0.1
    if ((VF_PING_RX != 0 || VF_PING_TX != $3)); then
        VF_REASON="$VF_PING_RX of $VF_PING_TX pings answered, expected none"
        return 1
    fi
}

# ------------------------------------------------------------ one pairing

run_pair() {
    PAIR=$1
    IMPL_A=${PAIR%%-*}
    IMPL_B=${PAIR#*-}
    RUN=setup
    RUN_FAILED_BEFORE=$VF_FAILED
    local impl
    for impl in "$IMPL_A" "$IMPL_B"; do
        case "$impl" in
            vpnfast)
                if [[ ! -x "$VPNFAST" ]]; then
                    vf_fail "$PAIR:setup" "no vpnfast binary at $VPNFAST (build: swift build -c release; or set VPNFAST; PAIRS=wggo-wggo checks the harness alone)"
                    return
                fi ;;
            wggo)
                if ! command -v wireguard-go >/dev/null 2>&1; then
                    vf_fail "$PAIR:setup" "wireguard-go not installed (scripts/install-deps.sh)"
                    return
                fi ;;
            *)
                vf_fail "$PAIR:setup" "unknown side '$impl' (use vpnfast or wggo)"
                return ;;
        esac
    done
    if ! vf_topology_up; then
        vf_fail "$PAIR:setup" "$VF_REASON"
        vf_topology_down
        return
    fi
    if ! vf_genkeys; then
        vf_fail "$PAIR:setup" "wg genkey failed"
        vf_topology_down
        return
    fi
    local t0=$SECONDS from

    # 1. Both sides know each other over the IPv4 underlay: pings, bulk TCP,
    #    then hostile datagrams at A's port, then the same again; clean exit.
    if start_run basic v4 v4 "" ""; then
        if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
            pings_both_ways 5
            case_ "tcp-$((XFER_BYTES / MIB))MiB-a-to-b" vf_transfer a b "${VF_T4[b]}" --bytes "$XFER_BYTES"
            case_ "tcp-$((XFER_BYTES / 4 / MIB))MiB-b-to-a" vf_transfer b a "${VF_T4[a]}" --bytes $((XFER_BYTES / 4))
            [[ "$IMPL_A" == vpnfast ]] && case_ log-handshake-completed log_at_least a 'handshake completed' 1
            if [[ "$IMPL_A" == vpnfast ]]; then
                if (($(vf_log_count a 'cannot cap') > 0)); then
                    vf_skip "$PAIR:$RUN:tun-bursts-capped" "this kernel refused gso_max_segs (vpnfast warned)"
                else
                    case_ tun-bursts-capped tun_bursts_capped a
                fi
            fi
            [[ "$IMPL_B" == vpnfast ]] && (($(vf_log_count b 'cannot cap') == 0)) \
                && case_ small-mss-b-to-a small_mss_transfer
            RUN=hostile
            if case_ flood flood_sent; then
                sleep 0.5
                case_ survives still_running a
                pings_both_ways 5
                case_ tcp-4MiB-a-to-b vf_transfer a b "${VF_T4[b]}" --bytes $((4 * MIB))
            fi
            from=$(($(vf_log_lines a) + 1))
            case_ clean-shutdown-a clean_shutdown a
            if [[ "$IMPL_A" == vpnfast ]]; then
                case_ rx-drop-counters drops_counted a "$from"
            else
                vf_skip "$PAIR:$RUN:rx-drop-counters" "side A is not vpnfast"
            fi
            [[ "$IMPL_B" == vpnfast ]] && case_ clean-shutdown-b clean_shutdown b
        fi
        finish_run
    fi

    # 1b. A fresh namespace has its loopback down: vpnfast must come up there all the same (it once waited
    #     forever for its first `ip` command, watched through a socket on 127.0.0.1).
    if [[ "$IMPL_A" == vpnfast ]] && want loopback-down; then
        ip -n "${VF_NS[a]}" link set lo down
        if start_run loopback-down v4 v4 "" ""; then
            case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10 && pings_both_ways 3
            finish_run
        fi
        ip -n "${VF_NS[a]}" link set lo up
    fi

    # 2. IPv6 underlay (Endpoint=[fd18::N]:port) with a preshared key.
    if start_run v6underlay-psk v6 v6 "$VF_PSK" ""; then
        if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
            pings_both_ways 5
            case_ tcp6-16MiB-a-to-b vf_transfer a b "${VF_T6[b]}" --bytes $((16 * MIB))
            [[ "$IMPL_A" == vpnfast ]] && case_ sigusr1-counters sigusr1_counters a
        fi
        finish_run
    fi

    # 3. Only A has an Endpoint and A speaks first: A initiates.
    if start_run init-a v4 none "" ""; then
        if case_ a-pings-first vf_wait_tunnel a "${VF_T4[b]}" 10; then
            case_ ping4-b-to-a vf_ping_ok b "${VF_T4[a]}" 3 0.2 0
        fi
        finish_run
    fi

    # 4. Only B has an Endpoint and B speaks first: B initiates.
    if start_run init-b none v4 "" ""; then
        if case_ b-pings-first vf_wait_tunnel b "${VF_T4[a]}" 10; then
            case_ ping4-a-to-b vf_ping_ok a "${VF_T4[b]}" 3 0.2 0
        fi
        finish_run
    fi

    # 5. A has an Endpoint and PersistentKeepalive but never sends data; B, which
    #    has no Endpoint, can reach A only because A's keepalive made a session.
    if start_run keepalive v4 none "" 1; then
        case_ b-reaches-silent-a vf_wait_tunnel b "${VF_T4[a]}" 8
        finish_run
    fi

    # 6. Forced rekey every 3 s on A: traffic keeps flowing across rekeys.
    if [[ "$IMPL_A" == vpnfast ]]; then
        if start_run rekey v4 v4 "" "" --rekey-after-time 3; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
                rekey_traffic
                case_ ping-loss-at-most-2 at_most_lost 2
                vf_stop a
                printf '# rekey: %s handshake(s) completed on A, %s of 100 pings lost\n' \
                    "$(vf_log_count a 'handshake completed')" "$REKEY_LOST"
                case_ second-handshake log_at_least a 'handshake completed' 2
            fi
            finish_run
        fi
    else
        RUN=rekey
        vf_skip "$PAIR:rekey" "needs vpnfast on side A (--rekey-after-time)"
    fi

    # 7. `vpnfast show` on A after traffic both ways: text, JSON (also without IFACE), clear errors for a
    #    missing interface and a non-root user, garbage on the control socket, a second instance refused,
    #    the socket gone after SIGTERM.
    if [[ "$IMPL_A" == vpnfast ]]; then
        if start_run show v4 v4 "" ""; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
                case_ tcp-8MiB-a-to-b vf_transfer a b "${VF_T4[b]}" --bytes $((8 * MIB))
                case_ tcp-2MiB-b-to-a vf_transfer b a "${VF_T4[a]}" --bytes $((2 * MIB))
                case_ socket-path-and-modes show_socket a
                case_ show-text show_text a
                case_ show-json show_json a "${VF_IF[a]}"
                case_ show-all-json show_json a
                case_ show-all-skips-stale show_skips_stale a
                case_ show-missing-iface show_fails a "no vpnfast interface named nosuch0 is running" \
                    "$VPNFAST" show nosuch0
                case_ show-non-root-refused show_fails a "vpnfast: permission denied" \
                    setpriv --reuid=65534 --regid=65534 --clear-groups "$VPNFAST" show "${VF_IF[a]}"
                case_ second-instance-refused show_fails a "already serves this interface" \
                    "$VPNFAST" up "${VF_CONF[a]}" --interface "${VF_IF[a]}"
                case_ garbage-answered show_garbage a
                case_ survives still_running a
                case_ ping-after-garbage vf_ping_ok a "${VF_T4[b]}" 3 0.2 0
                case_ sigterm-clean-exit sigterm_exit a
                case_ socket-removed socket_gone
            fi
            finish_run
        fi
    else
        RUN=show
        vf_skip "$PAIR:show" "needs vpnfast on side A"
    fi

    # 8. Link-bound: A's underlay is a bloated 100 Mbit/s modem (tbf with 200 ms of buffer); vpnfast on A shapes
    #    to 95 Mbit/s, so the queue forms in its fq_codel. A ping every 10 ms while 4 TCP streams run.
    if [[ "$IMPL_A" == vpnfast && "$IMPL_B" == vpnfast ]]; then
        if [[ "${VF_SHAPED_COMPARE:-0}" == 1 ]] && start_run shaped-unshaped v4 v4 "" ""; then
            if vf_wait_tunnel a "${VF_T4[b]}" 10 && shape_underlay; then shaped_measure "no --rate"; fi
            unshape_underlay
            finish_run
        fi
        if start_run shaped v4 v4 "" "" --rate 95mbit; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10 && case_ tbf-on-underlay shape_underlay; then
                shaped_measure "--rate 95mbit"
                case_ loaded-pings-answered loaded_pings_answered
                case_ loaded-p99-within-idle-plus-10ms loaded_p99_ok
                case_ load-carried load_carried
                case_ tun-no-standing-backlog tun_no_standing_backlog
            fi
            unshape_underlay
            finish_run
        fi
    fi

    # 9. --flowlabel over the IPv6 underlay: outer labels follow the inner flows; without it, one label for all.
    if [[ "$IMPL_A" == vpnfast ]] && command -v tcpdump >/dev/null 2>&1; then
        if start_run flowlabel v6 v6 "" "" --flowlabel; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
                case_ labels-leased log_at_least a 'outer IPv6 flow labels leased' 1
                case_ label-per-inner-flow flow_labels on
            fi
            finish_run
        fi
        if start_run flowlabel-off v6 v6 "" ""; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
                case_ one-label-for-all-flows flow_labels off
            fi
            finish_run
        fi
    elif [[ "$IMPL_A" == vpnfast ]]; then
        RUN=flowlabel
        vf_skip "$PAIR:flowlabel" "tcpdump not installed (scripts/install-deps.sh)"
    fi

    # 10. ECN through a CE-marking underlay (RFC 6040 needs vpnfast at both ends: A copies the inner ECN out, B
    #    combines it back in). B's prerouting marks CE on 1 in 4 ECT outer datagrams: an ECN-capable TCP flow
    #    A→B sees the marks. Then the path marks CE on every datagram: inner Not-ECT (ping) must be dropped and
    #    counted, and the tunnel carries pings again once the marking stops.
    if [[ "$IMPL_A" == vpnfast && "$IMPL_B" == vpnfast ]] && want ecn; then
        if start_run ecn v4 v4 "" ""; then
            if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
                ecn_tcp_on
                if case_ path-marks-ect ce_path ect; then
                    case_ tcp-8MiB-under-ce vf_transfer a b "${VF_T4[b]}" --bytes $((8 * MIB))
                    case_ tcp-sender-sees-ce tcp_delivered_ce a
                    case_ rx-outer-ce-counted counter_at_least b rx_outer_ce 1
                fi
                if case_ path-marks-all ce_path all; then
                    case_ not-ect-under-ce-dropped pings_all_lost a "${VF_T4[b]}" 10
                    case_ rx-drop-ecn-not-ect-ce-counted counter_at_least b rx_drop_ecn_not_ect_ce 10
                fi
                ce_path off
                case_ pings-after-ce vf_ping_ok a "${VF_T4[b]}" 5 0.2 0
            fi
            finish_run
        fi
    elif want ecn; then
        RUN=ecn
        vf_skip "$PAIR:ecn" "needs vpnfast on both sides (RFC 6040 at both tunnel ends)"
    fi

    vf_topology_down
    printf '# %s done in %d s\n' "$PAIR" $((SECONDS - t0))
}

for pair in $PAIRS; do
    run_pair "$pair"
done

vf_summary
((VF_FAILED == 0))
