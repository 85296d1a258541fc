#!/usr/bin/env bash
# vpnfast's test command (what CI runs): prerequisites, one release build of
# vpnfast and its unit tests, the unit tests, then the network-namespace tests
# of the real binary against itself and against wireguard-go.
#
# Usage (as root):  bash scripts/test.sh
# The last line printed is "N passed, M failed" over everything; the exit
# status is non-zero when anything failed.
# Environment:
#   SKIP_BUILD=1   reuse the existing .build/release (no swift build)
#   PAIRS=...      namespace pairings to run (see Tests/netns/tunnel.sh)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

PASSED=0
FAILED=0
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/vpnfast-test.XXXXXX")

SKIPPED=0
summary() {
    if ((SKIPPED > 0)); then
        printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
    else
        printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    fi
}
fatal() {
    printf 'test: %s\n' "$*" >&2
    FAILED=$((FAILED + 1))
    summary
    exit 1
}

if [[ $EUID -ne 0 ]]; then
    fatal "must run as root: the tunnel tests create network namespaces and TUN devices (try: sudo bash scripts/test.sh)"
fi

echo "== prerequisites"
bash scripts/install-deps.sh || fatal "installing prerequisites failed (scripts/install-deps.sh)"
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

# One release build serves both the unit tests and the tunnel tests.
# -enable-testing lets the test targets' @testable imports see internal symbols
# in a release build; `swift test --skip-build` then runs what was just built.
SWIFT_FLAGS=(-c release -Xswiftc -enable-testing)
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "== swift build ${SWIFT_FLAGS[*]} --build-tests"
    t0=$SECONDS
    swift build "${SWIFT_FLAGS[@]}" --build-tests || fatal "swift build failed"
    echo "== build took $((SECONDS - t0)) s"
fi

# ---------------------------------------------------------------- unit tests
echo "== swift test"
swift test "${SWIFT_FLAGS[@]}" --skip-build 2>&1 | tee "$LOGDIR/unit.log"
unit_rc=${PIPESTATUS[0]}

# XCTest: the last "Executed N tests, with M failures" line is the overall one;
# failed tests are counted from their own lines (M counts failed assertions).
# XCTest prints "Executed N tests, with M failures ..." or, when tests were skipped,
# "Executed N tests, with S tests skipped and M failures ..."; skipped tests are not counted as passed.
xc_line=$(grep -E 'Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?' "$LOGDIR/unit.log" | tail -n 1)
xc_skipped=0
xc_total=0
xc_failed=0
if [[ -n "$xc_line" ]]; then
    xc_total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$xc_line")
    xc_failures=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$xc_line")
    if grep -qE 'tests? skipped' <<<"$xc_line"; then
        xc_skipped=$(sed -E 's/.*with ([0-9]+) tests? skipped.*/\1/' <<<"$xc_line")
    fi
    xc_failed=$(grep -cE "^Test Case '.*' failed" "$LOGDIR/unit.log")
    ((xc_failed == 0 && xc_failures > 0)) && xc_failed=$xc_failures
    ((xc_failed > xc_total)) && xc_failed=$xc_total
fi

# Swift Testing (if any @Test exists): "Test run with N tests ... passed|failed".
st_line=$(grep -E 'Test run with [0-9]+ tests?' "$LOGDIR/unit.log" | tail -n 1)
st_total=0
st_failed=0
if [[ -n "$st_line" ]]; then
    st_total=$(sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/' <<<"$st_line")
    if grep -q 'failed' <<<"$st_line"; then
        st_failed=$(grep -E 'Test .* failed after' "$LOGDIR/unit.log" | grep -vc 'Test run with')
        ((st_failed == 0)) && st_failed=1
        ((st_failed > st_total)) && st_failed=$st_total
    fi
fi

PASSED=$((PASSED + xc_total - xc_failed - xc_skipped + st_total - st_failed))
SKIPPED=$((SKIPPED + xc_skipped))
FAILED=$((FAILED + xc_failed + st_failed))
echo "== unit tests: XCTest ran $xc_total (failed $xc_failed), Swift Testing ran $st_total (failed $st_failed), swift test status $unit_rc"
if ((unit_rc != 0 && xc_failed + st_failed == 0)); then
    echo "test: swift test exited with status $unit_rc without a counted failure; counting it as one" >&2
    FAILED=$((FAILED + 1))
fi

# ---------------------------------------------------------------- tunnel tests
# The real thing, once per I/O backend (both with kernel offloads on), and once with offloads off.
# Each entry: "LABEL|vpnfast arguments|pairings" (empty pairings: the suite's default, vpnfast and wireguard-go).
VARIANTS=(
    "io-mmsg|--io mmsg|"
    "io-uring|--io uring|"
    "offloads-off|--offloads off|vpnfast-vpnfast"
)
for variant in "${VARIANTS[@]}"; do
    IFS='|' read -r label args pairs <<<"$variant"
    # (Whole help text first: with pipefail, grep -q quitting early could fail the pipeline with SIGPIPE.)
    if [[ "$label" == io-uring ]] && [[ "$("$ROOT/.build/release/vpnfast" up --help 2>/dev/null)" != *"--io"* ]]; then
        echo "test: vpnfast has no --io option; counting the io-uring variant as a failure" >&2
        FAILED=$((FAILED + 1))
        continue
    fi
    echo "== network-namespace tunnel tests ($label: vpnfast $args)"
    # shellcheck disable=SC2086 # pairings are separate words
    VPNFAST="$ROOT/.build/release/vpnfast" VPNFAST_ARGS="$args" bash Tests/netns/tunnel.sh $pairs 2>&1 \
        | tee "$LOGDIR/netns-$label.log"
    netns_rc=${PIPESTATUS[0]}
    netns_line=$(grep -E '^netns: [0-9]+ passed, [0-9]+ failed$' "$LOGDIR/netns-$label.log" | tail -n 1)
    if [[ -n "$netns_line" ]]; then
        n_pass=$(sed -E 's/^netns: ([0-9]+) passed.*/\1/' <<<"$netns_line")
        n_fail=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$netns_line")
        PASSED=$((PASSED + n_pass))
        FAILED=$((FAILED + n_fail))
        if ((netns_rc != 0 && n_fail == 0)); then
            echo "test: tunnel tests ($label) exited with status $netns_rc; counting it as one failure" >&2
            FAILED=$((FAILED + 1))
        fi
    else
        echo "test: tunnel tests ($label) ended (status $netns_rc) without their summary line; counting one failure" >&2
        FAILED=$((FAILED + 1))
    fi
done

rm -rf "$LOGDIR"
summary
((FAILED == 0))
