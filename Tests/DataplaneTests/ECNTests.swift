import XCTest
@testable import Dataplane
import TestSupport

final class ECNTests: XCTestCase {
    typealias C = ECNCodepoint

    // MARK: RFC 6040

    /// RFC 6040 §4.2 Figure 4, row by row: (inner, outer, expected).
    static let decapTable: [(C, C, ECN.DecapResult)] = [
        (.notECT, .notECT, .forward(.notECT, anomaly: nil)),
        (.notECT, .ect0, .forward(.notECT, anomaly: .dangerous)),
        (.notECT, .ect1, .forward(.notECT, anomaly: .dangerous)),
        (.notECT, .ce, .drop(.dangerous)),

        (.ect0, .notECT, .forward(.ect0, anomaly: nil)),
        (.ect0, .ect0, .forward(.ect0, anomaly: nil)),
        (.ect0, .ect1, .forward(.ect1, anomaly: nil)),
        (.ect0, .ce, .forward(.ce, anomaly: nil)),

        (.ect1, .notECT, .forward(.ect1, anomaly: nil)),
        (.ect1, .ect0, .forward(.ect1, anomaly: .possiblyDangerous)),
        (.ect1, .ect1, .forward(.ect1, anomaly: nil)),
        (.ect1, .ce, .forward(.ce, anomaly: nil)),

        (.ce, .notECT, .forward(.ce, anomaly: nil)),
        (.ce, .ect0, .forward(.ce, anomaly: nil)),
        (.ce, .ect1, .forward(.ce, anomaly: .dangerous)),
        (.ce, .ce, .forward(.ce, anomaly: nil)),
    ]

    func testDecapsulationTable() {
        XCTAssertEqual(Self.decapTable.count, 16)
        var seen = Set<UInt8>()
        for (inner, outer, expected) in Self.decapTable {
            seen.insert(inner.rawValue << 2 | outer.rawValue)
            XCTAssertEqual(ECN.decapsulate(inner: inner, outer: outer), expected, "inner \(inner) outer \(outer)")
        }
        XCTAssertEqual(seen.count, 16, "every combination is in the table once")
    }

    /// Normal mode copies, CE included (not Linux's CE → ECT(0)).
    static let encapTable: [(C, C)] = [(.notECT, .notECT), (.ect0, .ect0), (.ect1, .ect1), (.ce, .ce)]

    func testEncapsulationTable() {
        for (inner, outer) in Self.encapTable {
            XCTAssertEqual(ECN.encapsulate(inner: inner), outer, "inner \(inner)")
        }
        XCTAssertEqual(C.allCases.map(\.rawValue), [0, 1, 2, 3])
        XCTAssertEqual([C.notECT, .ect1, .ect0, .ce].map(\.rawValue), [0b00, 0b01, 0b10, 0b11])
    }

    /// Encapsulating then decapsulating an unchanged outer header gives back the inner codepoint, no anomaly.
    func testRoundTripWithoutCongestionIsIdentity() {
        for c in C.allCases {
            XCTAssertEqual(ECN.decapsulate(inner: c, outer: ECN.encapsulate(inner: c)), .forward(c, anomaly: nil))
        }
    }

    // MARK: DSCP

    func testOuterTOS() {
        // (inner TOS, zero mode, copy mode)
        let cases: [(UInt8, UInt8, UInt8)] = [
            (0x00, 0x00, 0x00),
            (0xb8, 0x00, 0xb8),   // EF, Not-ECT
            (0xba, 0x02, 0xba),   // EF, ECT(0)
            (0x89, 0x01, 0x89),   // AF41, ECT(1)
            (0x2b, 0x03, 0x2b),   // AF11, CE
            (0xff, 0x03, 0xff),
        ]
        for (inner, zero, copy) in cases {
            XCTAssertEqual(DSCP.outerTOS(innerTOS: inner, mode: .zero), zero, "inner \(inner)")
            XCTAssertEqual(DSCP.outerTOS(innerTOS: inner, mode: .copy), copy, "inner \(inner)")
        }
        for tos in 0...255 {
            let inner = UInt8(tos)
            let ecn = ECN.encapsulate(inner: C(rawValue: inner & 3)!).rawValue
            XCTAssertEqual(DSCP.outerTOS(innerTOS: inner, mode: .zero), ecn)
            XCTAssertEqual(DSCP.outerTOS(innerTOS: inner, mode: .copy), inner & 0xfc | ecn)
        }
    }

    func testHandshakeTOSIsAF41NotECT() {
        XCTAssertEqual(DSCP.handshakeTOS, 0x88)
        XCTAssertEqual(DSCP.handshakeTOS >> 2, 34)
        XCTAssertEqual(DSCP.handshakeTOS & 3, C.notECT.rawValue)
    }

    // MARK: Reading fields

    func testReadFieldsIPv4AndIPv6() {
        for tos in 0...255 {
            let t = UInt8(tos)
            let v4 = PacketBuilder.ipv4UDP(src: 0x0a00_0001, dst: 0x0a00_0002, payload: [1, 2, 3], tos: t)
            let v6 = PacketBuilder.ipv6TCP(src: (1, 2), dst: (3, 4), payload: [5], trafficClass: t, flowLabel: 0xabcde)
            for p in [v4, v6] {
                p.withUnsafeBytes { b in
                    XCTAssertEqual(ECN.readTOS(packet: b.baseAddress!, length: b.count), t)
                    XCTAssertEqual(ECN.readDSCP(packet: b.baseAddress!, length: b.count), t >> 2)
                    XCTAssertEqual(ECN.readECN(packet: b.baseAddress!, length: b.count), C(rawValue: t & 3))
                }
            }
        }
    }

    func testShortOrNonIPPacketsAreLeftAlone() {
        let v4 = PacketBuilder.ipv4UDP(src: 1, dst: 2, payload: [], tos: 0x02)
        let v6 = PacketBuilder.ipv6UDP(src: (1, 2), dst: (3, 4), payload: [], trafficClass: 0x02)
        var cases: [[UInt8]] = []
        for n in 0..<20 { cases.append(Array(v4[0..<n])) }
        for n in 0..<40 { cases.append(Array(v6[0..<n])) }
        for version: UInt8 in [0, 5, 7, 15] {
            var p = v4
            p[0] = version << 4 | 5
            cases.append(p)
        }
        for original in cases {
            var p = original
            p.withUnsafeMutableBytes { b in
                let base = b.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!
                XCTAssertNil(ECN.readTOS(packet: base, length: b.count))
                XCTAssertNil(ECN.readECN(packet: base, length: b.count))
                XCTAssertNil(ECN.readDSCP(packet: base, length: b.count))
                XCTAssertFalse(ECN.setECN(packet: base, length: b.count, to: .ce))
                XCTAssertFalse(ECN.markCE(packet: base, length: b.count))
            }
            XCTAssertEqual(p, original, "length \(original.count)")
        }
    }

    // MARK: setECN

    private func setECN(_ p: inout [UInt8], _ c: C) -> Bool {
        p.withUnsafeMutableBytes { ECN.setECN(packet: $0.baseAddress!, length: $0.count, to: c) }
    }

    /// The IPv4 header checksum recomputed from scratch (field taken as zero).
    private func recomputedChecksum(_ p: [UInt8]) -> UInt16 {
        var header = Array(p[0..<Int(p[0] & 0x0f) * 4])
        header[10] = 0
        header[11] = 0
        return PacketBuilder.checksum(header[...])
    }

    func testSetECNv4EveryTransitionKeepsChecksum() {
        var rng = SeededRandom(seed: 6040)
        for from in C.allCases {
            for to in C.allCases {
                for _ in 0..<20 {
                    let dscp = UInt8.random(in: 0...63, using: &rng)
                    var p = PacketBuilder.ipv4TCP(src: UInt32.random(in: 0...UInt32.max, using: &rng),
                                                  dst: UInt32.random(in: 0...UInt32.max, using: &rng),
                                                  payload: [9, 9, 9], tos: dscp << 2 | from.rawValue,
                                                  ttl: UInt8.random(in: 1...255, using: &rng),
                                                  id: UInt16.random(in: 0...UInt16.max, using: &rng))
                    let before = p
                    XCTAssertTrue(setECN(&p, to))
                    let inspected = InspectedPacket(p)
                    XCTAssertTrue(inspected.ipChecksumValid, "\(from) → \(to)")
                    XCTAssertEqual(inspected.be16(10), recomputedChecksum(p), "\(from) → \(to)")
                    XCTAssertEqual(p[1], dscp << 2 | to.rawValue)
                    // Only the TOS byte and the checksum changed.
                    for i in p.indices where i != 1 && i != 10 && i != 11 { XCTAssertEqual(p[i], before[i]) }
                    if from == to { XCTAssertEqual(p, before) }
                }
            }
        }
    }

    func testSetECNv4RandomHeaders() {
        var rng = SeededRandom(seed: 1624)
        for round in 0..<2000 {
            let ihl = Int.random(in: 5...15, using: &rng)
            var p = (0..<(ihl * 4 + Int.random(in: 0...16, using: &rng))).map { _ in UInt8.random(in: 0...255, using: &rng) }
            p[0] = 0x40 | UInt8(ihl)
            p[10] = 0
            p[11] = 0
            let sum = PacketBuilder.checksum(p[0..<ihl * 4])
            p[10] = UInt8(sum >> 8)
            p[11] = UInt8(sum & 0xff)
            var codepoints = (0..<4).map { _ in C(rawValue: UInt8.random(in: 0...3, using: &rng))! }
            codepoints += C.allCases
            for c in codepoints {
                let tos = p[1]
                XCTAssertTrue(setECN(&p, c))
                XCTAssertEqual(p[1], tos & 0xfc | c.rawValue)
                XCTAssertEqual(PacketBuilder.checksum(p[0..<ihl * 4]), 0, "round \(round)")
                XCTAssertEqual(UInt16(p[10]) << 8 | UInt16(p[11]), recomputedChecksum(p), "round \(round)")
            }
        }
    }

    func testSetECNv6TrafficClassBits() {
        let label: UInt32 = 0xa_bcde
        for tc in 0...255 {
            for c in C.allCases {
                var p = PacketBuilder.ipv6UDP(src: (7, 8), dst: (9, 10), payload: [1, 2, 3, 4],
                                              trafficClass: UInt8(tc))
                p[1] |= UInt8(label >> 16)
                p[2] = UInt8(label >> 8 & 0xff)
                p[3] = UInt8(label & 0xff)
                let before = p
                XCTAssertTrue(setECN(&p, c))
                let newTC = UInt32(UInt8(tc) & 0xfc | c.rawValue)
                let expected = 6 << 28 | newTC << 20 | label
                XCTAssertEqual(InspectedPacket(p).be32(0), expected, "tc \(tc) → \(c)")
                XCTAssertEqual(Array(p[2...]), Array(before[2...]))
                p.withUnsafeBytes { b in
                    XCTAssertEqual(ECN.readDSCP(packet: b.baseAddress!, length: b.count), UInt8(tc) >> 2)
                    XCTAssertEqual(ECN.readECN(packet: b.baseAddress!, length: b.count), c)
                }
            }
        }
    }

    // MARK: markCE

    private func markCE(_ p: inout [UInt8]) -> Bool {
        p.withUnsafeMutableBytes { ECN.markCE(packet: $0.baseAddress!, length: $0.count) }
    }

    func testMarkCE() {
        // (codepoint before, result, codepoint after)
        let table: [(C, Bool, C)] = [(.notECT, false, .notECT), (.ect0, true, .ce), (.ect1, true, .ce), (.ce, true, .ce)]
        for (before, result, after) in table {
            for dscp: UInt8 in [0, 10, 34, 46, 63] {
                let tos = dscp << 2 | before.rawValue
                for original in [PacketBuilder.ipv4UDP(src: 5, dst: 6, payload: [1], tos: tos),
                                 PacketBuilder.ipv6TCP(src: (1, 1), dst: (2, 2), payload: [], trafficClass: tos,
                                                       flowLabel: 0xf_ffff)] {
                    var p = original
                    XCTAssertEqual(markCE(&p), result, "\(before) dscp \(dscp)")
                    XCTAssertEqual(p.withUnsafeBytes { ECN.readECN(packet: $0.baseAddress!, length: $0.count) }, after)
                    XCTAssertEqual(p.withUnsafeBytes { ECN.readDSCP(packet: $0.baseAddress!, length: $0.count) }, dscp)
                    XCTAssertTrue(InspectedPacket(p).ipChecksumValid)
                    if before == .notECT || before == .ce { XCTAssertEqual(p, original, "unchanged") }
                }
            }
        }
    }

    // MARK: Decapsulation on a packet

    func testDecapsulatePacketWritesResult() {
        for (inner, outer, expected) in Self.decapTable {
            for dscp: UInt8 in [0, 46] {
                let outerTOS = UInt8(0x88) | outer.rawValue   // the outer DSCP never reaches the inner packet
                let original = PacketBuilder.ipv4UDP(src: 1, dst: 2, payload: [3], tos: dscp << 2 | inner.rawValue)
                var p = original
                let result = p.withUnsafeMutableBytes {
                    ECN.decapsulate(packet: $0.baseAddress!, length: $0.count, outerTOS: outerTOS)
                }
                XCTAssertEqual(result, expected)
                XCTAssertTrue(InspectedPacket(p).ipChecksumValid)
                switch expected {
                case .forward(let c, _): XCTAssertEqual(p[1], dscp << 2 | c.rawValue)
                case .drop: XCTAssertEqual(p, original)
                }
            }
        }
    }
}
