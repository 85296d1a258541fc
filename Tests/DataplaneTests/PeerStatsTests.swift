// Per-peer statistics from a running device pair: packets, sojourn samples and queue gauges, and the status
// answer built from them.
@testable import Dataplane
import Glibc
import TestSupport
import XCTest

final class PeerStatsTests: XCTestCase {
    func testTrafficIsCountedPerPeer() throws {
        let pair = try DevicePair(threads: 2)
        pair.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        let burst = (1...500).map { DevicePair.packet($0) }
        pair.tunA.inject(burst)
        XCTAssertEqual(pair.tunB.collect(atLeast: burst.count, timeoutNanoseconds: 20_000_000_000).count, burst.count)

        let a = pair.a.peers[0].stats, b = pair.b.peers[0].stats
        // The burst went through A's fq_codel: one sojourn sample and one sent packet each (the first packet was
        // staged before the session and is sent by the control thread, outside fq_codel).
        let samples = a.sojournSnapshot()?.reduce(0, +) ?? 0
        XCTAssertGreaterThanOrEqual(samples, 500)
        XCTAssertLessThanOrEqual(samples, 501)
        // The writer counts a batch just after handing it to the network: give it a moment (bounded).
        for _ in 0..<200 where a[.txPackets] < 500 { usleep(10_000) }
        XCTAssertGreaterThanOrEqual(a[.txPackets], 500)
        XCTAssertEqual(b[.rxPackets], 501)
        XCTAssertNil(b.sojournSnapshot(), "B sent nothing through fq_codel")
        for s in [PeerStat.txDropCodel, .txDropAqmLimit, .rxDropBadMac, .rxDropReplay, .rxDropEcnNotEctCe] {
            XCTAssertEqual(a[s] + b[s], 0, s.name)
        }
        // Once everything has left, the gauges the tun-reader published read empty.
        XCTAssertEqual(a[.queuePackets], 0)
        XCTAssertEqual(a[.queueBytes], 0)

        let report = pair.a.statusReport(name: "chanA", extra: [.init("io", "test")])
        XCTAssertEqual(report["interface"], "chanA")
        XCTAssertEqual(report["io"], "test")
        XCTAssertEqual(report["aqm"], "on")
        XCTAssertEqual(report.peers.count, 1)
        let peer = Dictionary(report.peers[0].map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(peer["peer"], pair.b.identity.publicKey.base64)
        XCTAssertEqual(peer["endpoint"], "\(pair.endpointB)")
        XCTAssertEqual(peer["sojourn_samples"], String(samples))
        XCTAssertNotNil(peer["sojourn_p50_ns"].flatMap { UInt64($0) })
        XCTAssertGreaterThan(UInt64(peer["tx_bytes"] ?? "0") ?? 0, 500 * 100)
        XCTAssertNotEqual(peer["latest_handshake_unix_ns"], "0")
        for s in PeerStat.allCases { XCTAssertNotNil(peer[s.name], s.name) }
        XCTAssertEqual(try StatusProtocol.decode(StatusProtocol.encode(report)), report)
    }
}

/// The recent sojourn window, driven by explicit clock values (the tun-reader passes its clock's now).
final class SojournWindowTests: XCTestCase {
    func testRotationSchedule() {
        let w = SojournWindow.length
        // (now, due?) in order, starting from a window made at 0.
        let table: [(UInt64, Bool)] = [
            (0, false), (w - 1, false), (w, true), (w + 1, false), (2 * w - 1, false),
            (2 * w, true),
            // A stall of several windows: one rotation, and the next one window after it (no catching up).
            (7 * w + 5, true), (8 * w, false), (8 * w + 4, false), (8 * w + 5, true),
        ]
        var window = SojournWindow(now: 0)
        for (i, (now, due)) in table.enumerated() {
            XCTAssertEqual(window.due(now: now), due, "row \(i): now \(now)")
        }
    }

    func testRecentCountsSpanOneToTwoWindows() throws {
        let stats = PeerStats()
        XCTAssertNil(stats.recentSojournSnapshot(), "no histogram before the first sojourn")
        let ms: UInt64 = 1_000_000
        let w = SojournWindow.length
        let buckets = stats.sojournBuckets()
        // Each row: sojourns recorded at this step (ms), then rotate at `rotateAt` (nil: no rotation), then the
        // recent window must hold `expect` samples whose base snapshot was taken at `since`.
        let table: [(record: [UInt64], rotateAt: UInt64?, expect: Int, since: UInt64, p99Below: UInt64)] = [
            ([1, 1, 1], nil, 3, 0, 2 * ms),          // no rotation yet: everything since start
            ([2], w, 4, 0, 3 * ms),                  // first rotation: base is still the empty start
            ([50, 50], 2 * w, 2, w, 64 * ms),         // base = the counts at w: only the last window's two
            ([5], nil, 3, w, 64 * ms),               // live counts keep adding to the window
            ([], 3 * w, 1, 2 * w, 8 * ms),           // the 50 ms pair ages out; only the 5 ms sojourn is recent
            ([], 4 * w, 0, 3 * w, 0),                // an idle window: nothing recent
        ]
        for (i, row) in table.enumerated() {
            for s in row.record { PeerStats.recordSojourn(s * ms, into: buckets) }
            if let t = row.rotateAt { stats.rotateSojournWindow(now: t) }
            let recent = try XCTUnwrap(stats.recentSojournSnapshot())
            XCTAssertEqual(recent.counts.reduce(0, +), UInt64(row.expect), "row \(i)")
            XCTAssertEqual(recent.since, row.since, "row \(i)")
            if row.expect > 0 {
                let p99 = try XCTUnwrap(LogHistogram.percentile(0.99, counts: recent.counts))
                XCTAssertLessThan(p99, row.p99Below, "row \(i)")
            }
        }
        // Since start is untouched by the windows.
        XCTAssertEqual(stats.sojournSnapshot()?.reduce(0, +), 7)
    }
}
