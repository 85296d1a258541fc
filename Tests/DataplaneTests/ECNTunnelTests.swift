// ECN and DSCP through a whole device pair: the outer TOS each transport and handshake message leaves with
// (RFC 6040 normal-mode encapsulation, DSCP zero or copied), and all 16 decapsulation combinations of inner and
// outer ECN arriving at the receiver, including the drop and the counted anomalies.
import Crypto
import Dataplane
import TestSupport
import XCTest

final class ECNTunnelTests: XCTestCase {
    /// (inner TOS sent by A's OS, outer TOS expected with --dscp zero, with --dscp copy)
    static let encapsulation: [(inner: UInt8, zero: UInt8, copy: UInt8)] = [
        (0x00, 0x00, 0x00), (0x01, 0x01, 0x01), (0x02, 0x02, 0x02), (0x03, 0x03, 0x03),
        (0xb8, 0x00, 0xb8), (0xba, 0x02, 0xba), (0x89, 0x01, 0x89), (0x2b, 0x03, 0x2b),
    ]

    func testOuterTOSFollowsTheInnerECNAndTheDSCPMode() throws {
        for mode in [DSCPMode.zero, .copy] {
            let pair = try DevicePair(dscp: mode)
            pair.network.isRecording = true
            pair.start()
            defer { pair.stop() }
            let packets = Self.encapsulation.enumerated().map { i, row in
                PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB, payload: [UInt8(i), 1, 2, 3],
                                      tos: row.inner)
            }
            for p in packets {
                pair.tunA.inject([p])
                XCTAssertEqual(pair.tunB.collect(atLeast: 1), [p], "\(mode): the inner packet arrives unchanged")
            }
            let log = pair.network.recorded
            let transport = log.filter { $0.from == pair.endpointA && $0.bytes.first == 4 && $0.bytes.count > 32 }
            XCTAssertEqual(transport.map(\.tos), Self.encapsulation.map { mode == .zero ? $0.zero : $0.copy },
                           "\(mode): outer TOS per packet")
            let handshakes = log.filter { ($0.bytes.first ?? 0) >= 1 && ($0.bytes.first ?? 0) <= 3 }
            XCTAssertFalse(handshakes.isEmpty)
            XCTAssertTrue(handshakes.allSatisfy { $0.tos == DSCP.handshakeTOS }, "handshake messages use AF41")
        }
    }

    /// RFC 6040 §4.2: (inner, outer) → the inner codepoint written to the TUN, or nil for a drop; the anomaly
    /// counter that must move.
    static let decapsulation: [(inner: UInt8, outer: UInt8, result: UInt8?, anomaly: Counter?)] = [
        (0, 0, 0, nil), (0, 2, 0, .ecnAnomalyDangerous), (0, 1, 0, .ecnAnomalyDangerous), (0, 3, nil, .ecnAnomalyDangerous),
        (2, 0, 2, nil), (2, 2, 2, nil), (2, 1, 1, nil), (2, 3, 3, nil),
        (1, 0, 1, nil), (1, 2, 1, .ecnAnomalyPossiblyDangerous), (1, 1, 1, nil), (1, 3, 3, nil),
        (3, 0, 3, nil), (3, 2, 3, nil), (3, 1, 3, .ecnAnomalyDangerous), (3, 3, 3, nil),
    ]

    func testDecapsulationTable() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        for (n, row) in Self.decapsulation.enumerated() {
            let label = "inner \(row.inner) outer \(row.outer)"
            let inner = PacketBuilder.ipv4UDP(src: DevicePair.innerA, dst: DevicePair.innerB,
                                              payload: [UInt8(n), 9, 9, 9], tos: 0xb8 | row.inner)
            let before = f.snapshot(f.pair.b)
            f.pair.bindB.inject(try f.sealedByA(inner), from: f.pair.endpointA, tos: 0x20 | row.outer)
            if let result = row.result {
                let got = f.pair.tunB.collect(atLeast: 1)
                XCTAssertEqual(got.count, 1, label)
                guard let p = got.first else { continue }
                XCTAssertEqual(p[1], 0xb8 | result, "\(label): inner TOS (DSCP kept, ECN combined)")
                XCTAssertEqual(PacketBuilder.checksum(p[0..<20]), 0, "\(label): IPv4 header checksum still valid")
                XCTAssertEqual(Array(p[2...]).count, inner.count - 2)
            } else {
                XCTAssertTrue(waitUntil { f.pair.b.counters[.rxDropEcnNotEctCe] == before[.rxDropEcnNotEctCe]! + 1 },
                              "\(label): Not-ECT under CE must be dropped and counted")
                XCTAssertEqual(f.pair.tunB.collect(atLeast: 1, timeoutNanoseconds: 50_000_000).count, 0, label)
            }
            XCTAssertTrue(waitUntil { f.pair.b.counters[.rxPackets] + f.pair.b.counters[.rxDropEcnNotEctCe]
                    > before[.rxPackets]! + before[.rxDropEcnNotEctCe]! }, label)
            for c in [Counter.ecnAnomalyDangerous, .ecnAnomalyPossiblyDangerous] {
                XCTAssertEqual(f.pair.b.counters[c] - before[c]!, c == row.anomaly ? 1 : 0, "\(label): \(c.name)")
            }
            XCTAssertEqual(f.pair.b.counters[.rxOuterCe] - before[.rxOuterCe]!, row.outer == 3 ? 1 : 0, label)
        }
        f.assertTunnelWorks("after the ECN table")
    }
}
