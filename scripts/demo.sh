#!/usr/bin/env bash
# vpnfast demo: build it, join two network namespaces with a vpnfast tunnel,
# and show the handshake, ping round trips and TCP throughput (iperf3) through
# the tunnel, next to the same iperf3 over the bare veth underneath.
#
# Usage (as root):  bash scripts/demo.sh
# Environment:
#   DEMO_SECONDS=10      length of each iperf3 run
#   DEMO_PAIR=vpnfast-vpnfast   the two sides (wggo = wireguard-go), e.g. vpnfast-wggo
#   DEMO_SKIP_BUILD=1    use the existing binary ($VPNFAST, default .build/release/vpnfast)
#   VPNFAST_ARGS         extra arguments for `vpnfast up` (e.g. "--threads 2")
# Everything happens inside namespaces it creates and removes again; no
# traffic leaves the machine.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

DEMO_SECONDS=${DEMO_SECONDS:-10}
DEMO_PAIR=${DEMO_PAIR:-vpnfast-vpnfast}
IMPL_A=${DEMO_PAIR%%-*}
IMPL_B=${DEMO_PAIR#*-}

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root: it creates network namespaces and TUN devices (sudo bash scripts/demo.sh)"

echo "== prerequisites"
bash "$ROOT/scripts/install-deps.sh" || die "installing prerequisites failed"
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

if [[ "${DEMO_SKIP_BUILD:-0}" != 1 && ( "$IMPL_A" == vpnfast || "$IMPL_B" == vpnfast ) ]]; then
    echo "== building vpnfast (swift build -c release)"
    swift build -c release || die "swift build failed"
fi

# shellcheck source=Tests/netns/lib.sh
source "$ROOT/Tests/netns/lib.sh"
vf_install_traps
for impl in "$IMPL_A" "$IMPL_B"; do
    if [[ "$impl" == vpnfast && ! -x "$VPNFAST" ]]; then
        die "no vpnfast binary at $VPNFAST"
    fi
done

echo "== two namespaces joined by a veth (198.18.0.1 <-> 198.18.0.2)"
vf_topology_up || die "topology: $VF_REASON"
vf_genkeys || die "wg genkey failed"
vf_write_conf a "$VF_TMP/demo-a.conf" v4 "" ""
vf_write_conf b "$VF_TMP/demo-b.conf" v4 "" ""

echo "== tunnel: $IMPL_A (198.19.0.1) <-> $IMPL_B (198.19.0.2)"
vf_start a "$IMPL_A" "$VF_TMP/demo-a.conf" || die "side A: $VF_REASON"
vf_start b "$IMPL_B" "$VF_TMP/demo-b.conf" || die "side B: $VF_REASON"

# The first ping starts the handshake; time until the first reply.
vf_wait_tunnel a "${VF_T4[b]}" 10 || die "no handshake: $VF_REASON (logs: $VF_TMP)"
HANDSHAKE_MS=$VF_WAIT_MS

echo "== ping through the tunnel (20 x 0.2 s)"
vf_ping a "${VF_T4[b]}" 20 0.2
PING_RTT=${VF_PING_RTT:-n/a}
PING_LOST=$((20 - VF_PING_RX))

# iperf SERVER_ADDR: one TCP run from A to a one-shot iperf3 server in B.
# Sets IPERF_RESULT to "GBITS RETRANSMITS" (or "n/a"). Runs in this shell, not
# in $(...), so the server stays a tracked child of this shell.
IPERF_PORT=5201
iperf() {
    local dst=$1 json="$VF_TMP/iperf-$1.json" spid
    IPERF_RESULT=n/a
    IPERF_PORT=$((IPERF_PORT + 1))
    ip netns exec "${VF_NS[b]}" timeout $((DEMO_SECONDS + 30)) iperf3 -s -1 -B "$dst" -p "$IPERF_PORT" \
        </dev/null >"$VF_TMP/iperf-server-$1.log" 2>&1 &
    spid=$!
    vf_track "$spid" "iperf3 server"
    vf_wait_cmd 5 eval "[[ -n \"\$(ip netns exec '${VF_NS[b]}' ss -Hlnt 'sport = :$IPERF_PORT')\" ]]" ||
        { echo "iperf3 server did not start" >&2; vf_kill_pid "$spid" TERM 2; return 1; }
    timeout $((DEMO_SECONDS + 20)) ip netns exec "${VF_NS[a]}" \
        iperf3 -c "$dst" -p "$IPERF_PORT" -t "$DEMO_SECONDS" -J </dev/null >"$json" 2>&1
    vf_wait_pid "$spid" 5 || vf_kill_pid "$spid" TERM 2
    IPERF_RESULT=$("$VF_PY" - "$json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    end = d["end"]
    print("%.2f %s" % (end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", "?")))
except Exception as e:
    print("iperf3 gave no result: %s" % e, file=sys.stderr)
    sys.exit(1)
EOF
    ) || IPERF_RESULT=n/a
}

echo "== iperf3 TCP through the tunnel (${DEMO_SECONDS} s)"
iperf "${VF_T4[b]}"
TUNNEL=$IPERF_RESULT
echo "== iperf3 TCP over the bare veth (${DEMO_SECONDS} s)"
iperf "${VF_U4[b]}"
BARE=$IPERF_RESULT

HANDSHAKES=n/a
[[ "$IMPL_A" == vpnfast ]] && HANDSHAKES=$(vf_log_count a 'handshake completed')

vf_stop_both

fmt_gbit() { [[ "$1" == n/a ]] && echo "n/a" || echo "${1%% *} Gbit/s (${1##* } retransmits)"; }
echo
echo "vpnfast demo results ($IMPL_A <-> $IMPL_B, one veth, $(nproc) CPU(s))"
printf '  %-22s %s\n' "handshake:" "first reply ${HANDSHAKE_MS} ms after the first ping (handshakes logged by A: $HANDSHAKES)"
printf '  %-22s %s\n' "ping RTT min/avg/max:" "$PING_RTT ms ($PING_LOST of 20 lost)"
printf '  %-22s %s\n' "TCP through tunnel:" "$(fmt_gbit "$TUNNEL")"
printf '  %-22s %s\n' "TCP over bare veth:" "$(fmt_gbit "$BARE")"
