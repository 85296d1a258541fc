// Per-peer statistics from a running device pair: packets, sojourn samples and queue gauges, and the status
// answer built from them.
import Dataplane
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
