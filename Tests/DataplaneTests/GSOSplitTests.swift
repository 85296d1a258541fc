import XCTest
@testable import Dataplane
import TestSupport

final class GSOSplitTests: XCTestCase {
    typealias F = PacketBuilder.TCPFlags
    private let timestamps: [UInt8] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]   // NOP NOP TS

    private func payload(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) } }

    /// Checks every segment against the original super-packet: lengths, IPv4 ID, TCP sequence and flags, UDP
    /// length, all checksums (verified with the test's own reference sum), unchanged other header bytes, and
    /// that the payloads concatenate back to the original's.
    private func checkSegments(_ segments: [[UInt8]], of original: [UInt8], gsoSize: Int, expectedSizes: [Int],
                               _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let o = InspectedPacket(original)
        XCTAssertEqual(segments.map { InspectedPacket($0).payload.count }, expectedSizes, name, file: file, line: line)
        var joined: [UInt8] = []
        for (i, bytes) in segments.enumerated() {
            let s = InspectedPacket(bytes)
            let what = "\(name) segment \(i)"
            let isLast = i == segments.count - 1
            XCTAssertEqual(s.ipLength, bytes.count, what, file: file, line: line)
            XCTAssertEqual(s.headerLength, o.headerLength, what, file: file, line: line)
            XCTAssertTrue(s.ipChecksumValid, "\(what): IP header checksum", file: file, line: line)
            XCTAssertTrue(s.l4ChecksumValid, "\(what): L4 checksum", file: file, line: line)
            if o.isV4 { XCTAssertEqual(s.ipv4ID, o.ipv4ID &+ UInt16(i), what, file: file, line: line) }
            var expectedHeader = Array(original[0..<o.headerLength])
            var actualHeader = Array(bytes[0..<o.headerLength])
            let ip = o.ipHeaderLength
            var ignored = o.isV4 ? [2, 3, 4, 5, 10, 11] : [4, 5]
            if o.proto == 6 {
                XCTAssertEqual(s.tcpSeq, o.tcpSeq &+ UInt32(i * gsoSize), what, file: file, line: line)
                var flags = o.tcpFlags
                if !isLast { flags &= ~(F.fin | F.psh) }
                if i != 0 { flags &= ~F.cwr }
                XCTAssertEqual(s.tcpFlags, flags, what, file: file, line: line)
                ignored += [ip + 4, ip + 5, ip + 6, ip + 7, ip + 13, ip + 16, ip + 17]
            } else {
                XCTAssertEqual(s.udpLength, bytes.count - ip, what, file: file, line: line)
                ignored += [ip + 4, ip + 5, ip + 6, ip + 7]
            }
            for k in ignored { expectedHeader[k] = 0; actualHeader[k] = 0 }
            XCTAssertEqual(actualHeader, expectedHeader, "\(what): other header bytes copied", file: file, line: line)
            joined += s.payload
        }
        XCTAssertEqual(joined, Array(o.payload), "\(name): payload", file: file, line: line)
    }

    func testSplitTable() {
        let a4 = Offload.a4, b4 = Offload.b4, a6 = Offload.a6, b6 = Offload.b6
        typealias TCP = PacketBuilder.TCP
        // (name, super-packet, gsoSize, payload size of each segment)
        let cases: [(String, [UInt8], Int, [Int])] = [
            ("v4 tcp even", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(3000), id: 100), 1000, [1000, 1000, 1000]),
            ("v4 tcp short tail", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(2501), id: 7), 1000, [1000, 1000, 501]),
            ("v4 tcp tail of 1", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(2801)), 1400, [1400, 1400, 1]),
            ("v4 tcp one segment", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(900)), 1400, [900]),
            ("v4 tcp timestamps", PacketBuilder.ipv4TCP(src: a4, dst: b4, tcp: TCP(seq: 5, options: timestamps),
                                                        payload: payload(4000)), 1388, [1388, 1388, 1224]),
            ("v4 tcp IP options", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(3000), ipOptions: [1, 1, 1, 0]),
             1200, [1200, 1200, 600]),
            ("v4 tcp no DF", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(2000), id: 9, dontFragment: false), 1000, [1000, 1000]),
            ("v4 tcp ID and seq wrap", PacketBuilder.ipv4TCP(src: a4, dst: b4, tcp: TCP(seq: 0xffff_fc00),
                                                             payload: payload(3000), id: 0xffff), 1000, [1000, 1000, 1000]),
            ("v4 tcp PSH FIN CWR ECE", PacketBuilder.ipv4TCP(src: a4, dst: b4,
                                                             tcp: TCP(flags: F.ack | F.psh | F.fin | F.cwr | F.ece),
                                                             payload: payload(3500)), 1000, [1000, 1000, 1000, 500]),
            ("v4 tcp 64 KB", PacketBuilder.ipv4TCP(src: a4, dst: b4, payload: payload(65535 - 40)), 1448,
             Array(repeating: 1448, count: 45) + [65495 - 45 * 1448]),
            ("v6 tcp", PacketBuilder.ipv6TCP(src: a6, dst: b6, tcp: TCP(seq: 77, ack: 99), payload: payload(4000),
                                             trafficClass: 0x28, flowLabel: 0x12345), 1400, [1400, 1400, 1200]),
            ("v6 tcp options PSH", PacketBuilder.ipv6TCP(src: a6, dst: b6, tcp: TCP(flags: F.ack | F.psh, options: timestamps + [1, 1, 1, 1]),
                                                         payload: payload(2000)), 1000, [1000, 1000]),
            ("v6 tcp 64 KB", PacketBuilder.ipv6TCP(src: a6, dst: b6, payload: payload(65535 - 20)), 1428,
             Array(repeating: 1428, count: 45) + [65515 - 45 * 1428]),
            ("v4 udp", PacketBuilder.ipv4UDP(src: a4, dst: b4, payload: payload(3000), id: 3), 1200, [1200, 1200, 600]),
            ("v4 udp even", PacketBuilder.ipv4UDP(src: a4, dst: b4, payload: payload(2400)), 1200, [1200, 1200]),
            ("v6 udp", PacketBuilder.ipv6UDP(src: a6, dst: b6, payload: payload(5000), hopLimit: 3), 1280,
             [1280, 1280, 1280, 1160]),
            ("v6 udp one", PacketBuilder.ipv6UDP(src: a6, dst: b6, payload: payload(10)), 1280, [10]),
        ]
        for (name, built, gsoSize, sizes) in cases {
            let original = Offload.seededPartial(built)
            let header = Offload.gsoHeader(for: original, gsoSize: gsoSize)
            for inPlace in [false, true] {
                switch Offload.split(original, header, inPlace: inPlace) {
                case .success(let segments):
                    checkSegments(segments, of: built, gsoSize: gsoSize, expectedSizes: sizes,
                                  "\(name)\(inPlace ? " in place" : "")")
                case .failure(let drop):
                    XCTFail("\(name): dropped as \(drop)")
                }
            }
        }
    }

    func testNonGSOPacketGetsItsChecksumCompleted() {
        let a4 = Offload.a4, b4 = Offload.b4
        let packets: [(String, [UInt8])] = [
            ("v4 tcp", PacketBuilder.ipv4TCP(src: a4, dst: b4, tcp: .init(options: timestamps), payload: payload(1001))),
            ("v6 tcp", PacketBuilder.ipv6TCP(src: Offload.a6, dst: Offload.b6, payload: payload(57))),
            ("v4 udp", PacketBuilder.ipv4UDP(src: a4, dst: b4, payload: payload(333))),
            ("v6 udp", PacketBuilder.ipv6UDP(src: Offload.a6, dst: Offload.b6, payload: [])),
        ]
        for (name, built) in packets {
            let seeded = Offload.seededPartial(built)
            var header = Offload.gsoHeader(for: seeded, gsoSize: 0)
            header.gsoType = 0
            header.gsoSize = 0
            guard case .success(let out) = Offload.split(seeded, header) else { return XCTFail(name) }
            XCTAssertEqual(out.count, 1, name)
            XCTAssertTrue(InspectedPacket(out[0]).l4ChecksumValid, name)
            XCTAssertEqual(out[0], built, "\(name): the same checksum the builder computed")

            // Without NEEDS_CSUM the packet is copied as it is, valid or not.
            guard case .success(let copy) = Offload.split(seeded, VirtioNetHeader()) else { return XCTFail(name) }
            XCTAssertEqual(copy, [seeded], name)
            guard case .success(let same) = Offload.split(seeded, VirtioNetHeader(), inPlace: true) else { return XCTFail(name) }
            XCTAssertEqual(same, [seeded], name)
        }
    }

    // MARK: Malformed

    private func mutate(_ p: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var q = p
        change(&q)
        return q
    }

    /// An IPv6 TCP packet with an 8-byte hop-by-hop header (PadN) before the TCP header.
    private func withHopByHop(_ p: [UInt8]) -> [UInt8] {
        var q = Array(p[0..<40]) + [6, 0, 1, 4, 0, 0, 0, 0] + Array(p[40...])
        q[6] = 0
        let plen = Int(q[4]) << 8 | Int(q[5]) + 8
        q[4] = UInt8(plen >> 8); q[5] = UInt8(plen & 0xff)
        return q
    }

    func testMalformedTable() {
        let v4 = Offload.seededPartial(PacketBuilder.ipv4TCP(src: Offload.a4, dst: Offload.b4, payload: payload(3000)))
        let v6 = Offload.seededPartial(PacketBuilder.ipv6TCP(src: Offload.a6, dst: Offload.b6, payload: payload(3000)))
        let u4 = Offload.seededPartial(PacketBuilder.ipv4UDP(src: Offload.a4, dst: Offload.b4, payload: payload(3000)))
        let h4 = Offload.gsoHeader(for: v4, gsoSize: 1000)
        let h6 = Offload.gsoHeader(for: v6, gsoSize: 1000)
        let hu = Offload.gsoHeader(for: u4, gsoSize: 1000)
        func with(_ h: VirtioNetHeader, _ change: (inout VirtioNetHeader) -> Void) -> VirtioNetHeader {
            var c = h
            change(&c)
            return c
        }
        let plainCsum = with(h4) { $0.gsoType = 0; $0.gsoSize = 0 }

        // (name, packet, header, length override, capacity, maxSegments, expected drop)
        let cases: [(String, [UInt8], VirtioNetHeader, Int?, Int, Int, OffloadDrop)] = [
            ("unknown flag bit", v4, with(h4) { $0.flags |= 4 }, nil, 2048, 64, .badHeader),
            ("ECN GSO bit", v4, with(h4) { $0.gsoType |= 0x80 }, nil, 2048, 64, .badHeader),
            ("GSO without NEEDS_CSUM", v4, with(h4) { $0.flags = VirtioNetHeader.dataValid }, nil, 2048, 64, .badHeader),
            ("UFO", u4, with(hu) { $0.gsoType = 3 }, nil, 2048, 64, .unsupportedGSOType),
            ("unknown GSO type", v4, with(h4) { $0.gsoType = 2 }, nil, 2048, 64, .unsupportedGSOType),
            ("gsoSize 0", v4, with(h4) { $0.gsoSize = 0 }, nil, 2048, 64, .badGSOSize),
            ("IPv6 packet as tcpV4", v6, with(h6) { $0.gsoType = 1 }, nil, 2048, 64, .badIPHeader),
            ("IPv4 packet as tcpV6", v4, with(h4) { $0.gsoType = 4 }, nil, 2048, 64, .badIPHeader),
            ("version 5 as udpL4", mutate(u4) { $0[0] = 0x55 }, hu, nil, 2048, 64, .badIPHeader),
            ("IHL 4", mutate(v4) { $0[0] = 0x44 }, h4, nil, 2048, 64, .badIPHeader),
            ("IHL past total length", mutate(v4) { $0[0] = 0x4f; $0[2] = 0; $0[3] = 50 }, h4, 50, 2048, 64, .badIPHeader),
            ("total length below the packet", mutate(v4) { $0[2] -= 1 }, h4, nil, 2048, 64, .badIPHeader),
            ("total length past the packet", v4, h4, v4.count - 10, 2048, 64, .truncated),
            ("shorter than an IPv4 header", v4, h4, 19, 2048, 64, .truncated),
            ("empty", v4, h4, 0, 2048, 64, .truncated),
            ("IPv4 fragment (MF)", mutate(v4) { $0[6] |= 0x20 }, h4, nil, 2048, 64, .badIPHeader),
            ("IPv4 fragment offset", mutate(v4) { $0[7] = 1 }, h4, nil, 2048, 64, .badIPHeader),
            ("UDP packet as tcpV4", u4, with(hu) { $0.gsoType = 1; $0.checksumOffset = 16 }, nil, 2048, 64, .badIPHeader),
            ("TCP packet as udpL4", v4, with(h4) { $0.gsoType = 5; $0.checksumOffset = 6 }, nil, 2048, 64, .badIPHeader),
            ("IPv6 extension header", withHopByHop(v6), with(h6) { $0.checksumStart = 48 }, nil, 2048, 64, .badIPHeader),
            ("IPv6 payload length past the packet", mutate(v6) { $0[4] &+= 1 }, h6, nil, 2048, 64, .truncated),
            ("IPv6 payload length below the packet", mutate(v6) { $0[5] &-= 1 }, h6, nil, 2048, 64, .badIPHeader),
            ("shorter than an IPv6 header", v6, h6, 39, 2048, 64, .truncated),
            ("TCP data offset 4", mutate(v4) { $0[32] = 0x40 }, h4, nil, 2048, 64, .badL4Header),
            ("TCP data offset past the packet", mutate(Array(v4[0..<50])) { $0[2] = 0; $0[3] = 50; $0[32] = 0xf0 },
             h4, nil, 2048, 64, .badL4Header),
            ("no room for a TCP header", mutate(Array(v4[0..<30])) { $0[2] = 0; $0[3] = 30 }, h4, nil, 2048, 64, .truncated),
            ("no room for a UDP header", mutate(Array(u4[0..<24])) { $0[2] = 0; $0[3] = 24 }, hu, nil, 2048, 64, .truncated),
            ("checksumStart not the L4 header", v4, with(h4) { $0.checksumStart = 24 }, nil, 2048, 64, .checksumOutOfBounds),
            ("checksumOffset not TCP's", v4, with(h4) { $0.checksumOffset = 6 }, nil, 2048, 64, .checksumOutOfBounds),
            ("checksumOffset not UDP's", u4, with(hu) { $0.checksumOffset = 16 }, nil, 2048, 64, .checksumOutOfBounds),
            ("plain: checksum field past the end", v4, with(plainCsum) { $0.checksumStart = UInt16(v4.count - 17) },
             nil, 4096, 64, .checksumOutOfBounds),
            ("plain: checksumStart past the end", v4, with(plainCsum) { $0.checksumStart = 0xffff }, nil, 4096, 64,
             .checksumOutOfBounds),
            ("plain: checksumOffset past the end", v4, with(plainCsum) { $0.checksumOffset = 0xfff0 }, nil, 4096, 64,
             .checksumOutOfBounds),
            ("too many segments", v4, with(h4) { $0.gsoSize = 100 }, nil, 2048, 29, .tooManySegments),
            ("no outputs", v4, h4, nil, 2048, 0, .tooManySegments),
            ("segment larger than an output", v4, h4, nil, 1039, 64, .outputTooSmall),
            ("plain packet larger than an output", v4, VirtioNetHeader(), nil, 3000, 64, .outputTooSmall),
        ]
        var seen = Set<String>()
        for (name, packet, header, length, capacity, maxSegments, expected) in cases {
            let result = Offload.split(packet, header, length: length, capacity: capacity, maxSegments: maxSegments)
            XCTAssertEqual(result.map { $0.count }, .failure(expected), name)
            seen.insert("\(expected)")
        }
        XCTAssertEqual(seen.count, 9, "every OffloadDrop reason is exercised")

        // The boundaries of the same checks, accepted.
        XCTAssertEqual(Offload.split(v4, with(h4) { $0.gsoSize = 100 }, maxSegments: 30).map { $0.count }, .success(30))
        XCTAssertEqual(Offload.split(v4, h4, capacity: 1040).map { $0.count }, .success(3))
        XCTAssertEqual(Offload.split(v4, with(plainCsum) { $0.checksumStart = UInt16(v4.count - 18) }, capacity: 4096)
            .map { $0.count }, .success(1))
        XCTAssertEqual(Offload.split(v4, with(h4) { $0.flags |= VirtioNetHeader.dataValid; $0.headerLength = 999 })
            .map { $0.count }, .success(3), "DATA_VALID allowed; hdr_len is only a hint")
    }
}
