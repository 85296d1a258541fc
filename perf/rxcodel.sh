#!/usr/bin/env bash
# Receive-side CoDel on a CPU-starved receiver (manual; not a CI test: the figures depend on the machine's load).
#
# Two namespaces (Tests/netns/lib.sh), vpnfast A -> vpnfast B. B runs with --threads 1, pinned to CPU 0 at nice
# NICE (default 19) next to a busy loop on the same CPU; A, iperf3 client and server are pinned to CPU 1. While
# A sends 2 ECN-capable TCP streams (or, MODE=udp, an unresponsive UDP flood) for SECS seconds, a ping every
# 100 ms measures the RTT through the tunnel. Prints the iperf3 total, the ping summary, B's receive counters
# (rx_ce_marks, rx_drop_codel, ...) and the sender's TcpExtTCPDeliveredCE.
#
# Usage (root): perf/rxcodel.sh [extra vpnfast args for B, e.g. --no-aqm]
#   VPNFAST=.build/release/vpnfast SECS=6 MODE=tcp|udp NICE=19
set -uo pipefail
# shellcheck source=Tests/netns/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../Tests/netns/lib.sh"
vf_require_root
vf_install_traps
SECS=${SECS:-6}
MODE=${MODE:-tcp}
NICE=${NICE:-19}
for tool in iperf3 taskset renice nstat; do
    command -v "$tool" >/dev/null 2>&1 || { vf_warn "missing tool: $tool"; exit 2; }
done

vf_topology_up || { vf_warn "topology: $VF_REASON"; exit 1; }
vf_genkeys || exit 1
vf_write_conf a "$VF_TMP/a.conf" v4 "" ""
vf_write_conf b "$VF_TMP/b.conf" v4 "" ""
vf_start a vpnfast "$VF_TMP/a.conf" || { vf_warn "start a: $VF_REASON"; exit 1; }
vf_start b vpnfast "$VF_TMP/b.conf" --threads 1 "$@" || { vf_warn "start b: $VF_REASON"; exit 1; }
vf_wait_tunnel a "${VF_T4[b]}" 10 || { vf_warn "tunnel: $VF_REASON"; exit 1; }
for s in a b; do ip netns exec "${VF_NS[$s]}" sysctl -qw net.ipv4.tcp_ecn=1; done

taskset -a -p -c 1 "${VF_PID[a]}" >/dev/null
taskset -a -p -c 0 "${VF_PID[b]}" >/dev/null
for t in /proc/"${VF_PID[b]}"/task/*; do renice -n "$NICE" -p "${t##*/}" >/dev/null; done
taskset -c 0 sh -c 'while :; do :; done' &
busy=$!
vf_track "$busy" "busy loop"
ip netns exec "${VF_NS[b]}" taskset -c 1 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
vf_track $! "iperf3 server"
sleep 0.5

ip netns exec "${VF_NS[a]}" ping -n -q -i 0.1 -c $((SECS * 10)) "${VF_T4[b]}" >"$VF_TMP/ping.txt" 2>&1 &
pingpid=$!
vf_track "$pingpid" "ping"
if [[ "$MODE" == udp ]]; then
    load=(-u -b 2G -l 1300)
else
    load=(-P 2)
fi
timeout $((SECS + 15)) ip netns exec "${VF_NS[a]}" taskset -c 1 iperf3 -c "${VF_T4[b]}" "${load[@]}" -t "$SECS" \
    -p 5201 2>&1 | grep -E 'SUM.*receiver|  receiver' | sed 's/^/iperf3: /'
vf_wait_pid "$pingpid" 15 || vf_kill_pid "$pingpid" TERM 2
vf_kill_pid "$busy" KILL 2
grep -E '^rtt|transmitted' "$VF_TMP/ping.txt" | sed 's/^/ping: /'

from=$(($(vf_log_lines b) + 1))
kill -s USR1 "${VF_PID[b]}"
vf_wait_cmd 5 eval "tail -n +$from '${VF_LOG[b]}' | grep -q 'counter '"
sleep 0.3
tail -n "+$from" "${VF_LOG[b]}" | grep -oE 'counter rx_[a-z_]+=[0-9]+' | grep -v 'rx_bytes' | sed 's/^/B: /'
ip netns exec "${VF_NS[b]}" nstat -asz UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print "B: " $1 "=" $2 }'
ip netns exec "${VF_NS[a]}" nstat -asz TcpExtTCPDeliveredCE | awk '$1 == "TcpExtTCPDeliveredCE" { print "A: " $1 "=" $2 }'
