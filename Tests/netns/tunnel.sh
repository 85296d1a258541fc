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
#   XFER_BYTES    size of the big TCP transfer (default 64 MiB)
#   RUNS          only these runs, e.g. RUNS="basic ecn" (default: all; names as in run_pair)
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
    if want basic && start_run basic v4 v4 "" ""; then
        if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
            pings_both_ways 5
            case_ "tcp-$((XFER_BYTES / MIB))MiB-a-to-b" vf_transfer a b "${VF_T4[b]}" --bytes "$XFER_BYTES"
            case_ "tcp-$((XFER_BYTES / 4 / MIB))MiB-b-to-a" vf_transfer b a "${VF_T4[a]}" --bytes $((XFER_BYTES / 4))
            [[ "$IMPL_A" == vpnfast ]] && case_ log-handshake-completed log_at_least a 'handshake completed' 1
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

    # 2. IPv6 underlay (Endpoint=[fd18::N]:port) with a preshared key.
    if want v6underlay-psk && start_run v6underlay-psk v6 v6 "$VF_PSK" ""; then
        if case_ handshake vf_wait_tunnel a "${VF_T4[b]}" 10; then
            pings_both_ways 5
            case_ tcp6-16MiB-a-to-b vf_transfer a b "${VF_T6[b]}" --bytes $((16 * MIB))
            [[ "$IMPL_A" == vpnfast ]] && case_ sigusr1-counters sigusr1_counters a
        fi
        finish_run
    fi

    # 3. Only A has an Endpoint and A speaks first: A initiates.
    if want init-a && start_run init-a v4 none "" ""; then
        if case_ a-pings-first vf_wait_tunnel a "${VF_T4[b]}" 10; then
            case_ ping4-b-to-a vf_ping_ok b "${VF_T4[a]}" 3 0.2 0
        fi
        finish_run
    fi

    # 4. Only B has an Endpoint and B speaks first: B initiates.
    if want init-b && start_run init-b none v4 "" ""; then
        if case_ b-pings-first vf_wait_tunnel b "${VF_T4[a]}" 10; then
            case_ ping4-a-to-b vf_ping_ok a "${VF_T4[b]}" 3 0.2 0
        fi
        finish_run
    fi

    # 5. A has an Endpoint and PersistentKeepalive but never sends data; B, which
    #    has no Endpoint, can reach A only because A's keepalive made a session.
    if want keepalive && start_run keepalive v4 none "" 1; then
        case_ b-reaches-silent-a vf_wait_tunnel b "${VF_T4[a]}" 8
        finish_run
    fi

    # 6. Forced rekey every 3 s on A: traffic keeps flowing across rekeys.
    if [[ "$IMPL_A" == vpnfast ]] && want rekey; then
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
    elif want rekey; then
        RUN=rekey
        vf_skip "$PAIR:rekey" "needs vpnfast on side A (--rekey-after-time)"
    fi

    # 7. ECN through a CE-marking underlay (RFC 6040 needs vpnfast at both ends: A copies the inner ECN out, B
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
