#!/usr/bin/env bash
# Install what vpnfast needs to build and to run its tests and demo.
#
# Idempotent: when every package is already installed it touches neither apt
# nor the network, so calling it at the start of every test run costs well
# under a second. On Debian/Ubuntu it installs the missing packages with apt;
# elsewhere it only reports what is missing.
#
# Usage: scripts/install-deps.sh            (exit 0 when everything is there)
set -euo pipefail

# C libraries the Swift package links (through pkg-config), and the tools the
# network-namespace tests and the demo drive.
PACKAGES=(
    liburing-dev libsodium-dev libnuma-dev libb2-dev libssl-dev pkg-config
    iproute2 wireguard-tools wireguard-go iperf3 irtt python3 iputils-ping procps tcpdump nftables
)

say() { printf 'install-deps: %s\n' "$*" >&2; }

# Swift usually lives in /opt/swift on the project's machines; make it visible.
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ "$status" == "installed" ]] || printf '%s\n' "$p"
    done
}

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        say "all ${#PACKAGES[@]} packages already installed"
    else
        say "installing: ${missing[*]}"
        sudo_cmd=()
        if [[ $EUID -ne 0 ]]; then
            if command -v sudo >/dev/null 2>&1; then
                sudo_cmd=(sudo)
            else
                say "not root and no sudo: install these packages by hand: ${missing[*]}"
                exit 1
            fi
        fi
        export DEBIAN_FRONTEND=noninteractive
        # The package lists are refreshed once per call, and only when something is missing.
        "${sudo_cmd[@]}" apt-get update -q
        "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
        mapfile -t still < <(missing_packages)
        if ((${#still[@]} > 0)); then
            say "still missing after apt-get install: ${still[*]}"
            exit 1
        fi
    fi
else
    # Not Debian: check the tools and libraries directly and say what is absent.
    say "no apt/dpkg here; checking tools and libraries directly"
    absent=()
    for tool in ip wg wireguard-go iperf3 python3 ping tcpdump nft pkg-config; do
        command -v "$tool" >/dev/null 2>&1 || absent+=("$tool")
    done
    if command -v pkg-config >/dev/null 2>&1; then
        for lib in liburing libsodium numa libb2 openssl; do
            pkg-config --exists "$lib" || absent+=("$lib (pkg-config)")
        done
    fi
    if ((${#absent[@]} > 0)); then
        say "missing: ${absent[*]}"
        say "install the equivalents of: ${PACKAGES[*]}"
        exit 1
    fi
fi

if ! command -v swift >/dev/null 2>&1; then
    cat >&2 <<'EOF'
install-deps: `swift` is not on PATH.
  vpnfast needs a Swift 6 toolchain (it is developed with Swift 6.3). Install one
  from swift.org (for example unpacked into /opt/swift, so that
  /opt/swift/usr/bin/swift exists; this script adds that directory to PATH by
  itself) or put your toolchain's usr/bin on PATH, then run this again.
EOF
    exit 1
fi

swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9][0-9]*\)\..*/\1/p' | head -n1)
if [[ -n "$swift_version" && "$swift_version" -lt 6 ]]; then
    say "warning: swift major version is $swift_version; vpnfast needs Swift 6 or newer"
fi
say "swift: $(command -v swift) ($(swift --version 2>&1 | head -n1))"
