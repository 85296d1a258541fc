import XCTest
@testable import Dataplane
import TestSupport

final class GROCoalesceTests: XCTestCase {
    typealias F = PacketBuilder.TCPFlags
    typealias TCP = PacketBuilder.TCP

    // MARK: Packet makers

    /// Segment k of a TCP flow with `mss`-byte segments: seq = 1000 + k·mss, unless the caller overrides.
    struct Seg {
        var k = 0
        var size = 1000
        var seq: UInt32? = nil
        var flags = F.ack
        var ack: UInt32 = 77
        var window: UInt16 = 502
        var options: [UInt8] = []
        var tos: UInt8 = 0
        var ttl: UInt8 = 64
        var df = true
        var id: UInt16? = nil
        var srcPort: UInt16 = 40000
        var ipOptions: [UInt8] = []
        var v6 = false
        var trafficClass: UInt8 = 0
        var flowLabel: UInt32 = 0
        var hopLimit: UInt8 = 64
    }

    private func payload(_ n: Int, _ salt: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ salt) } }

    private func tcp(_ s: Seg) -> [UInt8] {
        let t = TCP(srcPort: s.srcPort, seq: s.seq ?? UInt32(1000 + s.k * 1000), ack: s.ack, flags: s.flags,
                    window: s.window, options: s.options)
        if s.v6 {
            return PacketBuilder.ipv6TCP(src: Offload.a6, dst: Offload.b6, tcp: t, payload: payload(s.size, s.k),
                                         trafficClass: s.trafficClass, flowLabel: s.flowLabel, hopLimit: s.hopLimit)
        }
        return PacketBuilder.ipv4TCP(src: Offload.a4, dst: Offload.b4, tcp: t, payload: payload(s.size, s.k),
                                     tos: s.tos, ttl: s.ttl, id: s.id ?? UInt16(100 + s.k), dontFragment: s.df,
                                     ipOptions: s.ipOptions)
    }

    private func seg(_ k: Int, _ change: (inout Seg) -> Void = { _ in }) -> [UInt8] {
        var s = Seg(k: k)
        change(&s)
        return tcp(s)
    }

    private func udp4(_ k: Int, size: Int = 1200, port: UInt16 = 40000, tos: UInt8 = 0, id: UInt16? = nil) -> [UInt8] {
        PacketBuilder.ipv4UDP(src: Offload.a4, dst: Offload.b4, srcPort: port, payload: payload(size, k), tos: tos,
                              id: id ?? UInt16(500 + k))
    }

    private func udp6(_ k: Int, size: Int = 1200) -> [UInt8] {
        PacketBuilder.ipv6UDP(src: Offload.a6, dst: Offload.b6, payload: payload(size, k))
    }

    private func corruptL4(_ p: [UInt8]) -> [UInt8] {
        var q = p
        q[q.count - 1] ^= 0x5a
        return q
    }

    // MARK: Checking

    /// Checks that `packets` are planned as `expected` writes (input indices per write, in write order): a
    /// single is the packet unchanged behind a zero vnet header; a group has the right vnet header, rewritten
    /// headers with the seeded pseudo-header sum, and re-segments to exactly its packets.
    private func check(_ name: String, _ packets: [[UInt8]], _ expected: [[Int]], udp: Bool = false,
                       maxSegments: Int = 64, maxBytes: Int = 65535,
                       file: StaticString = #filePath, line: UInt = #line) {
        var coalescer = GROCoalescer(maxSegments: maxSegments, maxBytes: maxBytes, udpEnabled: udp)
        let writes = Offload.plan(&coalescer, packets)
        XCTAssertEqual(writes.count, expected.count, "\(name): number of writes", file: file, line: line)
        for (w, (write, indices)) in zip(writes, expected).enumerated() {
            let what = "\(name) write \(w)"
            XCTAssertEqual(write.slices, indices.count, what, file: file, line: line)
            if indices.count == 1 {
                XCTAssertEqual(write.vnet, VirtioNetHeader(), what, file: file, line: line)
                XCTAssertEqual(write.bytes, packets[indices[0]], "\(what): unchanged", file: file, line: line)
                continue
            }
            let first = InspectedPacket(packets[indices[0]])
            let type: VirtioNetHeader.GSOType = first.proto == 17 ? .udpL4 : (first.isV4 ? .tcpV4 : .tcpV6)
            let expectedVnet = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: type,
                                               headerLength: UInt16(first.headerLength),
                                               gsoSize: UInt16(first.payload.count),
                                               checksumStart: UInt16(first.ipHeaderLength),
                                               checksumOffset: first.proto == 17 ? 6 : 16)
            XCTAssertEqual(write.vnet, expectedVnet, what, file: file, line: line)
            let merged = InspectedPacket(write.bytes)
            XCTAssertEqual(merged.ipLength, write.bytes.count, "\(what): IP length", file: file, line: line)
            XCTAssertTrue(merged.ipChecksumValid, "\(what): IP header checksum", file: file, line: line)
            if merged.proto == 17 {
                XCTAssertEqual(merged.udpLength, write.bytes.count - merged.ipHeaderLength, what, file: file, line: line)
            }
            XCTAssertEqual(Offload.seededPartial(write.bytes), write.bytes,
                           "\(what): L4 checksum field holds the pseudo-header sum", file: file, line: line)
            XCTAssertEqual(Offload.resegment(write), indices.map { packets[$0] },
                           "\(what): the kernel's re-segmentation gives back the packets", file: file, line: line)
        }
    }

    // MARK: Tables

    func testMergeableRuns() {
        let ts: [UInt8] = [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]
        // (name, packets, writes as input indices)
        let cases: [(String, [[UInt8]], [[Int]])] = [
            ("equal sizes", (0..<4).map { seg($0) }, [[0, 1, 2, 3]]),
            ("smaller last", [seg(0), seg(1), seg(2) { $0.size = 500 }], [[0, 1, 2]]),
            ("last of one byte", [seg(0), seg(1) { $0.size = 1 }], [[0, 1]]),
            ("PSH on the last", [seg(0), seg(1), seg(2) { $0.flags = F.ack | F.psh }], [[0, 1, 2]]),
            ("PSH on a smaller last", [seg(0), seg(1) { $0.flags = F.ack | F.psh; $0.size = 10 }], [[0, 1]]),
            ("timestamps", (0..<3).map { k in seg(k) { $0.options = ts; $0.size = 1388; $0.seq = UInt32(5 + k * 1388) } },
             [[0, 1, 2]]),
            ("no DF, IDs counting up", (0..<3).map { k in seg(k) { $0.df = false } }, [[0, 1, 2]]),
            ("no DF, ID wraps", (0..<3).map { k in seg(k) { $0.df = false; $0.id = UInt16(truncatingIfNeeded: 0xffff + k) } },
             [[0, 1, 2]]),
            ("seq wraps", (0..<3).map { k in seg(k) { $0.seq = UInt32(truncatingIfNeeded: Int64(0xffff_fd00) + Int64(k * 1000)) } },
             [[0, 1, 2]]),
            ("ECN CE kept when all agree", (0..<2).map { k in seg(k) { $0.tos = 0x03 } }, [[0, 1]]),
            ("v6", (0..<3).map { k in seg(k) { $0.v6 = true; $0.trafficClass = 0xb8; $0.flowLabel = 0xabcde } },
             [[0, 1, 2]]),
            ("v6 smaller last with PSH", [seg(0) { $0.v6 = true }, seg(1) { $0.v6 = true; $0.size = 3; $0.flags = F.ack | F.psh }],
             [[0, 1]]),
            ("one packet", [seg(0)], [[0]]),
        ]
        for (name, packets, expected) in cases { check(name, packets, expected) }
    }

    func testRulesThatForbidMerging() {
        let ts1: [UInt8] = [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]
        var ts2 = ts1
        ts2[7] = 5
        let cases: [(String, [[UInt8]], [[Int]])] = [
            ("TOS", [seg(0), seg(1) { $0.tos = 0x10 }, seg(2) { $0.tos = 0x10 }], [[0], [1, 2]]),
            ("ECN CE on one", [seg(0), seg(1) { $0.tos = 0x03 }, seg(2)], [[0], [1], [2]]),
            ("TTL", [seg(0), seg(1) { $0.ttl = 63 }], [[0], [1]]),
            ("DF", [seg(0), seg(1) { $0.df = false }, seg(2) { $0.df = false }], [[0], [1, 2]]),
            ("no DF, ID not counting up", [seg(0) { $0.df = false }, seg(1) { $0.df = false; $0.id = 7 }], [[0], [1]]),
            ("no DF, fixed ID", [seg(0) { $0.df = false; $0.id = 7 }, seg(1) { $0.df = false; $0.id = 7 }], [[0], [1]]),
            ("DF, ID gap", [seg(0), seg(1) { $0.id = 102 }], [[0], [1]]),
            ("IPv4 options", [seg(0) { $0.ipOptions = [1, 1, 1, 1] }, seg(1) { $0.ipOptions = [1, 1, 1, 1] }], [[0], [1]]),
            ("SYN", [seg(0), seg(1) { $0.flags = F.syn | F.ack }, seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("FIN", [seg(0), seg(1) { $0.flags = F.fin | F.ack }, seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("RST", [seg(0), seg(1) { $0.flags = F.rst | F.ack }, seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("URG", [seg(0), seg(1) { $0.flags = F.urg | F.ack }, seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("ECE", [seg(0), seg(1) { $0.flags = F.ece | F.ack }, seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("CWR", [seg(0) { $0.flags = F.cwr | F.ack }, seg(1), seg(2)], [[0], [1, 2]]),
            ("no ACK", [seg(0) { $0.flags = 0 }, seg(1) { $0.flags = 0 }], [[0], [1]]),
            ("PSH in the middle", [seg(0), seg(1) { $0.flags = F.ack | F.psh }, seg(2), seg(3)], [[0, 1], [2, 3]]),
            ("PSH first", [seg(0) { $0.flags = F.ack | F.psh }, seg(1), seg(2)], [[0], [1, 2]]),
            ("options differ", [seg(0) { $0.options = ts1 }, seg(1) { $0.options = ts2; $0.seq = 2000 }], [[0], [1]]),
            ("options vs none", [seg(0) { $0.options = ts1 }, seg(1) { $0.seq = 2000 }], [[0], [1]]),
            ("seq gap", [seg(0), seg(2), seg(3)], [[0], [1, 2]]),
            ("seq overlap", [seg(0), seg(1) { $0.seq = 1999 }], [[0], [1]]),
            ("ack differs", [seg(0), seg(1) { $0.ack = 78 }, seg(2) { $0.ack = 78 }], [[0], [1, 2]]),
            ("window differs", [seg(0), seg(1) { $0.window = 503 }], [[0], [1]]),
            ("size grows", [seg(0) { $0.size = 500 }, seg(1) { $0.seq = 1500 }, seg(2) { $0.seq = 2500 }], [[0], [1, 2]]),
            ("after a smaller one", [seg(0), seg(1) { $0.size = 500 }, seg(2) { $0.seq = 2500 }, seg(3) { $0.seq = 3500 }],
             [[0, 1], [2, 3]]),
            ("bad TCP checksum", [seg(0), corruptL4(seg(1)), seg(2), seg(3)], [[0], [1], [2, 3]]),
            ("bad first checksum", [corruptL4(seg(0)), seg(1), seg(2)], [[0], [1, 2]]),
            ("bad IPv4 header checksum", [seg(0), { var p = seg(1); p[10] ^= 1; return p }(), seg(2), seg(3)],
             [[0], [1], [2, 3]]),
            ("pure ACK between", [seg(0), seg(1) { $0.size = 0 }, seg(1), seg(2)], [[0], [1], [2, 3]]),
            ("trailing bytes past the IP length", [seg(0), seg(1) + [0, 0], seg(2)], [[0], [1], [2]]),
            ("v6 hop limit", [seg(0) { $0.v6 = true }, seg(1) { $0.v6 = true; $0.hopLimit = 1 }], [[0], [1]]),
            ("v6 traffic class", [seg(0) { $0.v6 = true }, seg(1) { $0.v6 = true; $0.trafficClass = 4 }], [[0], [1]]),
            ("v6 flow label", [seg(0) { $0.v6 = true }, seg(1) { $0.v6 = true; $0.flowLabel = 9 }], [[0], [1]]),
            ("v4 then v6 of the same ports", [seg(0), seg(1) { $0.v6 = true }], [[0], [1]]),
        ]
        for (name, packets, expected) in cases { check(name, packets, expected) }
    }

    /// Under DF the kernel's GRO also takes a flow whose IPv4 ID stays fixed; the IDs come back counting up.
    func testFixedIDUnderDF() {
        let packets = (0..<3).map { k in seg(k) { $0.id = 0 } }
        var coalescer = GROCoalescer(udpEnabled: false)
        let writes = Offload.plan(&coalescer, packets)
        XCTAssertEqual(writes.count, 1)
        guard let write = writes.first else { return }
        XCTAssertEqual(write.vnet.gso, .tcpV4)
        let back = Offload.resegment(write)
        XCTAssertEqual(back.map { InspectedPacket($0).ipv4ID }, [0, 1, 2])
        for (b, p) in zip(back, packets) {
            XCTAssertEqual(Array(b[12...]), Array(p[12...]), "all but the ID and header checksum")
            XCTAssertTrue(InspectedPacket(b).ipChecksumValid)
        }
    }

    func testLimits() {
        check("max segments", (0..<5).map { seg($0) }, [[0, 1, 2], [3, 4]], maxSegments: 3)
        check("max segments 1", (0..<3).map { seg($0) }, [[0], [1], [2]], maxSegments: 1)
        check("max bytes", (0..<4).map { seg($0) }, [[0, 1], [2, 3]], maxBytes: 2100)
        check("max bytes exactly", (0..<4).map { seg($0) }, [[0, 1], [2, 3]], maxBytes: 2040)
        check("max bytes too small for two", (0..<2).map { seg($0) }, [[0], [1]], maxBytes: 2039)
        check("64 KB", (0..<66).map { seg($0) }, [Array(0..<65), [65]], maxSegments: 128)
        check("64 segments", (0..<70).map { k in seg(k) { $0.size = 100; $0.seq = UInt32(k * 100) } },
              [Array(0..<64), Array(64..<70)])
    }

    func testInterleavedFlowsKeepTheirOwnOrder() {
        let a = { (k: Int) in self.seg(k) }
        let b = { (k: Int) in self.seg(k) { $0.srcPort = 50000 } }
        let c = { (k: Int) in self.seg(k) { $0.v6 = true } }
        check("two flows", [a(0), b(0), a(1), b(1), a(2), b(2)], [[0, 2, 4], [1, 3, 5]])
        check("three flows", [a(0), b(0), c(0), a(1), c(1), b(1), c(2), a(2)], [[0, 3, 7], [1, 5], [2, 4, 6]])
        check("udp between tcp", [a(0), udp4(0), a(1), udp4(1)], [[0, 2], [1, 3]], udp: true)
        // A packet of a flow that cannot join closes that flow's group first, so nothing overtakes it.
        check("FIN of the same flow in between", [a(0), b(0), seg(1) { $0.flags = F.ack | F.fin }, a(2), b(1), a(3)],
              [[0], [1, 4], [2], [3, 5]])
        // A later IPv4 fragment between the same hosts: its flow is unknown, so every group between them closes.
        var fragment = seg(9)
        fragment[6] = 0; fragment[7] = 0x10   // offset 128 bytes, no DF
        check("fragment between", [a(0), a(1), b(0), fragment, a(2), a(3), b(1)], [[0, 1], [2], [3], [4, 5], [6]])
        // ICMP between the same hosts does not matter to TCP.
        var icmp = seg(9)
        icmp[9] = 1
        check("ICMP between", [a(0), icmp, a(1)], [[0, 2], [1]])
    }

    func testFlowTableOverflow() {
        // 64 flows fit the table: each pair merges.
        let flows64 = (0..<64).map { f in seg(0) { $0.srcPort = UInt16(1000 + f) } }
            + (0..<64).map { f in seg(1) { $0.srcPort = UInt16(1000 + f) } }
        check("64 flows", flows64, (0..<64).map { [$0, 64 + $0] })
        // One more: the oldest group is closed for room, and so on down the line; nothing is lost or reordered.
        let flows65 = (0..<65).map { f in seg(0) { $0.srcPort = UInt16(1000 + f) } }
            + (0..<65).map { f in seg(1) { $0.srcPort = UInt16(1000 + f) } }
        check("65 flows", flows65, (0..<130).map { [$0] })
    }

    func testUDP() {
        check("udp on", [udp4(0), udp4(1), udp4(2, size: 700)], [[0, 1, 2]], udp: true)
        check("udp off", [udp4(0), udp4(1), udp4(2, size: 700)], [[0], [1], [2]], udp: false)
        check("udp v6", [udp6(0), udp6(1), udp6(2)], [[0, 1, 2]], udp: true)
        check("udp after a smaller one", [udp4(0), udp4(1, size: 10), udp4(2)], [[0, 1], [2]], udp: true)
        check("udp size grows", [udp4(0, size: 100), udp4(1), udp4(2)], [[0], [1, 2]], udp: true)
        check("udp ports", [udp4(0), udp4(1, port: 1, id: 7), udp4(1), udp4(3, port: 1, id: 8)], [[0, 2], [1, 3]],
              udp: true)
        check("udp ID gap", [udp4(0), udp4(2)], [[0], [1]], udp: true)
        check("udp TOS", [udp4(0), udp4(1, tos: 4)], [[0], [1]], udp: true)
        var noChecksum = udp4(1)
        noChecksum[26] = 0; noChecksum[27] = 0
        check("udp without checksum", [udp4(0), noChecksum, udp4(2), udp4(3)], [[0], [1], [2, 3]], udp: true)
        check("udp bad checksum", [udp4(0), corruptL4(udp4(1)), udp4(2), udp4(3)], [[0], [1], [2, 3]], udp: true)
        var fragment = udp4(1)
        fragment[6] = 0x20   // MF: a first fragment
        check("udp first fragment", [udp4(0), fragment, udp4(2), udp4(3)], [[0], [1], [2, 3]], udp: true)
        check("udp empty", [udp4(0, size: 0), udp4(1, size: 0)], [[0], [1]], udp: true)
    }

    func testSlicesPointIntoThePacketsAndArraysAreReused() {
        let packets = [seg(0), seg(1), seg(2) { $0.size = 10 }, udp4(0)]
        let buffers = packets.map { p -> UnsafeMutableRawPointer in
            let b = UnsafeMutableRawPointer.allocate(byteCount: p.count, alignment: 16)
            p.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let lengths = packets.map { UInt32($0.count) }
        var coalescer = GROCoalescer(udpEnabled: false)
        var writes: [TunWrite] = [TunWrite(vnet: VirtioNetHeader(), sliceStart: 99, sliceCount: 1)]
        var slices: [IOSlice] = []
        coalescer.plan(packets: buffers, lengths: lengths, count: packets.count, writes: &writes, slices: &slices)
        XCTAssertEqual(writes.count, 3, "appended after what was there")
        XCTAssertEqual(writes[1].sliceStart, 0)
        XCTAssertEqual(writes[1].sliceCount, 3)
        XCTAssertEqual(writes[2], TunWrite(vnet: VirtioNetHeader(), sliceStart: 3, sliceCount: 1))
        XCTAssertEqual(slices.map { $0.base }, [buffers[0], buffers[1] + 40, buffers[2] + 40, buffers[3]])
        XCTAssertEqual(slices.map { $0.length }, [1040, 1000, 10, packets[3].count])
    }

    // MARK: Randomized round trip

    /// Random super-packets (TCP or UDP, v4 or v6, options, flags, sizes) are split, the segments coalesced,
    /// and the writes re-segmented as the kernel would: the result must be the split output, packet for packet.
    /// Several flows are interleaved at random in each batch (each flow's own order kept).
    func testRandomRoundTrip() {
        var rng = SeededRandom(seed: 0x6f66_666c_6f61_64)
        for round in 0..<300 {
            let flowCount = Int.random(in: 1...3, using: &rng)
            let udpEnabled = Bool.random(using: &rng)
            var perFlow: [[[UInt8]]] = []
            var allMergeable: [Bool] = []
            for f in 0..<flowCount {
                let (segments, mergeable) = randomSplit(&rng, port: UInt16(30000 + f), udpEnabled: udpEnabled,
                                                        round: round)
                perFlow.append(segments)
                allMergeable.append(mergeable)
            }
            // Interleave, keeping each flow's order.
            var cursors = [Int](repeating: 0, count: flowCount)
            var batch: [[UInt8]] = []
            var flowOf: [Int] = []
            while batch.count < perFlow.reduce(0, { $0 + $1.count }) {
                let f = Int.random(in: 0..<flowCount, using: &rng)
                guard cursors[f] < perFlow[f].count else { continue }
                batch.append(perFlow[f][cursors[f]]); flowOf.append(f); cursors[f] += 1
            }
            var coalescer = GROCoalescer(udpEnabled: udpEnabled)
            let writes = Offload.plan(&coalescer, batch)
            var back = [[[UInt8]]](repeating: [], count: flowCount)
            for write in writes {
                let packets = Offload.resegment(write)
                guard let first = batch.firstIndex(of: packets[0]) else {
                    XCTFail("round \(round): a write re-segments to a packet that was not sent")
                    continue
                }
                let f = flowOf[first]
                back[f] += packets
            }
            for f in 0..<flowCount {
                XCTAssertEqual(back[f], perFlow[f], "round \(round) flow \(f)")
                if allMergeable[f] && flowCount == 1 {
                    XCTAssertEqual(writes.count, 1, "round \(round): a clean run becomes one write")
                }
            }
            for p in back.joined() {
                let i = InspectedPacket(p)
                XCTAssertTrue(i.ipChecksumValid && i.l4ChecksumValid, "round \(round)")
            }
        }
    }

    /// A random super-packet split by GSOSplit; whether its segments should all merge into one write.
    private func randomSplit(_ rng: inout SeededRandom, port: UInt16, udpEnabled: Bool,
                             round: Int) -> ([[UInt8]], Bool) {
        let v6 = Bool.random(using: &rng)
        let isUDP = Int.random(in: 0..<3, using: &rng) == 0
        let ipOptions = !v6 && Int.random(in: 0..<8, using: &rng) == 0 ? [UInt8](repeating: 1, count: 4) : []
        let tcpOptions = Offload.randomBytes(4 * Int.random(in: 0...10, using: &rng), &rng)
        var flags = F.ack
        for extra in [F.psh, F.fin, F.cwr, F.ece] where Int.random(in: 0..<5, using: &rng) == 0 { flags |= extra }
        let headers = (v6 ? 40 : 20 + ipOptions.count) + (isUDP ? 8 : 20 + tcpOptions.count)
        let maxPayload = 65535 - headers
        let payloadSize = Int.random(in: 0..<4, using: &rng) == 0
            ? Int.random(in: 1...maxPayload, using: &rng) : Int.random(in: 1...8000, using: &rng)
        let gsoSize = max(Int.random(in: 1...1500, using: &rng), (payloadSize + 63) / 64)
        let body = Offload.randomBytes(payloadSize, &rng)
        let dontFragment = Bool.random(using: &rng)
        let id = UInt16.random(in: 0...0xffff, using: &rng)
        let tcp = TCP(srcPort: port, seq: UInt32.random(in: 0...UInt32.max, using: &rng),
                      ack: UInt32.random(in: 0...UInt32.max, using: &rng), flags: flags,
                      window: UInt16.random(in: 0...0xffff, using: &rng), options: tcpOptions)
        let built: [UInt8]
        switch (v6, isUDP) {
        case (false, false):
            built = PacketBuilder.ipv4TCP(src: Offload.a4, dst: Offload.b4, tcp: tcp, payload: body,
                                          tos: UInt8.random(in: 0...255, using: &rng), ttl: 9, id: id,
                                          dontFragment: dontFragment, ipOptions: ipOptions)
        case (false, true):
            built = PacketBuilder.ipv4UDP(src: Offload.a4, dst: Offload.b4, srcPort: port, payload: body, id: id,
                                          dontFragment: dontFragment)
        case (true, false):
            built = PacketBuilder.ipv6TCP(src: Offload.a6, dst: Offload.b6, tcp: tcp, payload: body,
                                          trafficClass: UInt8.random(in: 0...255, using: &rng),
                                          flowLabel: UInt32.random(in: 0...0xf_ffff, using: &rng))
        case (true, true):
            built = PacketBuilder.ipv6UDP(src: Offload.a6, dst: Offload.b6, srcPort: port, payload: body)
        }
        let original = Offload.seededPartial(built)
        guard case .success(let segments) = Offload.split(original, Offload.gsoHeader(for: original, gsoSize: gsoSize))
        else {
            XCTFail("round \(round): split failed")
            return ([], false)
        }
        let mergeable = segments.count > 1 && ipOptions.isEmpty && (isUDP ? udpEnabled : flags & ~F.psh == F.ack)
        return (segments, mergeable)
    }
}
