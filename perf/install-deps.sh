#!/usr/bin/env bash
# Prerequisites of the benchmark harnesses (perf/run.sh, perf/latency.sh):
# everything scripts/install-deps.sh installs for building and testing
# vpnfast (iperf3, irtt, ping, tc from iproute2, wireguard-go among them),
# plus what only the harnesses need: Debian's matplotlib for the plots,
# fping (latency.sh's ICMP probe) and procps.
#
# Idempotent: when everything is installed it touches neither apt nor the
# network. Usage (as root): bash perf/install-deps.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PERF_PACKAGES=(python3-matplotlib fping procps)

say() { printf 'perf-deps: %s\n' "$*" >&2; }

bash "$ROOT/scripts/install-deps.sh"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || python3 -c 'import matplotlib' 2>/dev/null; then
        exit 0
    fi
    say "no apt here: install matplotlib for python3 by hand (plots are skipped without it)"
    exit 1
fi

missing=()
for p in "${PERF_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    say "perf packages already installed: ${PERF_PACKAGES[*]}"
    exit 0
fi
say "installing: ${missing[*]}"
sudo_cmd=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { say "not root and no sudo: install ${missing[*]} by hand"; exit 1; }
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
