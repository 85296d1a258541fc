import XCTest
import Crypto
@testable import Dataplane
import TestSupport

/// Raw IP packets with any protocol and IPv6 extension headers; checksums are left zero (the hash ignores them).
private enum Raw {
    static func be16(_ v: UInt16) -> [UInt8] { PacketBuilder.be16(v) }
    static func be32(_ v: UInt32) -> [UInt8] { PacketBuilder.be32(v) }

    /// `flagsFragment`: the 16-bit flags/offset word (0x2000 = MF, low 13 bits the offset in 8-byte units).
    static func v4(src: UInt32, dst: UInt32, proto: UInt8, l4: [UInt8], ttl: UInt8 = 64, id: UInt16 = 0,
                   flagsFragment: UInt16 = 0x4000, tos: UInt8 = 0) -> [UInt8] {
        [0x45, tos] + be16(UInt16(20 + l4.count)) + be16(id) + be16(flagsFragment) + [ttl, proto, 0, 0]
            + be32(src) + be32(dst) + l4
    }

    /// `extensions`: (header type, body) in order; each body is padded to end on an 8-byte boundary (after the
    /// 2-byte next header / length), except a fragment header's, which is 6 bytes.
    static func v6(src: (UInt64, UInt64), dst: (UInt64, UInt64), proto: UInt8, l4: [UInt8], label: UInt32 = 0,
                   hopLimit: UInt8 = 64, extensions: [(UInt8, [UInt8])] = []) -> [UInt8] {
        var chain: [UInt8] = []
        for (i, (_, body)) in extensions.enumerated() {
            let next = i + 1 < extensions.count ? extensions[i + 1].0 : proto
            if extensions[i].0 == 44 {
                precondition(body.count == 6)
                chain += [next, 0] + body
            } else {
                var b = body
                while (b.count + 2) % 8 != 0 { b.append(0) }
                chain += [next, UInt8((b.count + 2) / 8 - 1)] + b
            }
        }
        let first = extensions.first?.0 ?? proto
        return be32(6 << 28 | label & 0xf_ffff) + be16(UInt16(chain.count + l4.count)) + [first, hopLimit]
            + PacketBuilder.be64(src.0) + PacketBuilder.be64(src.1) + PacketBuilder.be64(dst.0)
            + PacketBuilder.be64(dst.1) + chain + l4
    }

    /// A transport header starting with ports, then `rest`.
    static func ports(_ s: UInt16, _ d: UInt16, rest: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]) -> [UInt8] {
        be16(s) + be16(d) + rest
    }

    /// ICMP / ICMPv6: type, code, checksum, identifier, sequence, payload.
    static func icmp(type: UInt8, id: UInt16, seq: UInt16, payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
        [type, 0, 0, 0] + be16(id) + be16(seq) + payload
    }

    /// A fragment header body: offset in 8-byte units, M flag, identification.
    static func fragment(offset: UInt16, more: Bool, id: UInt32) -> [UInt8] {
        be16(offset << 3 | (more ? 1 : 0)) + be32(id)
    }
}

/// One flow's identity, built into packets of several shapes.
private struct Flow: Hashable {
    var v6: Bool
    var src: (UInt64, UInt64)
    var dst: (UInt64, UInt64)
    var proto: UInt8
    var sport: UInt16
    var dport: UInt16

    static func == (a: Flow, b: Flow) -> Bool {
        a.v6 == b.v6 && a.src == b.src && a.dst == b.dst && a.proto == b.proto && a.sport == b.sport && a.dport == b.dport
    }
    func hash(into h: inout Hasher) {
        h.combine(v6); h.combine(src.0); h.combine(src.1); h.combine(dst.0); h.combine(dst.1)
        h.combine(proto); h.combine(sport); h.combine(dport)
    }

    static func random(_ rng: inout SeededRandom) -> Flow {
        let v6 = Bool.random(using: &rng)
        func address() -> (UInt64, UInt64) {
            v6 ? (rng.next(), rng.next()) : (UInt64(UInt32.random(in: 0...UInt32.max, using: &rng)), 0)
        }
        let src = address(), dst = address()
        return Flow(v6: v6, src: src, dst: dst, proto: [6, 17, 136, 132].randomElement(using: &rng)!,
                    sport: .random(in: 0...UInt16.max, using: &rng), dport: .random(in: 0...UInt16.max, using: &rng))
    }

    func packet(payload: [UInt8] = [], ttl: UInt8 = 64, id: UInt16 = 0, label: UInt32 = 0) -> [UInt8] {
        let l4 = Raw.ports(sport, dport) + payload
        if v6 { return Raw.v6(src: src, dst: dst, proto: proto, l4: l4, label: label, hopLimit: ttl) }
        return Raw.v4(src: UInt32(src.0), dst: UInt32(dst.0), proto: proto, l4: l4, ttl: ttl, id: id)
    }
}

final class FlowHashTests: XCTestCase {
    static let key: [UInt8] = Array(0..<16)
    let hasher = FlowHasher(key: FlowHashTests.key)

    private func hash(_ p: [UInt8], _ h: FlowHasher? = nil) -> UInt32 {
        p.withUnsafeBytes { b in
            (h ?? hasher).hash(packet: b.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length: b.count)
        }
    }

    // MARK: Layout

    /// Pins the key layout: version, protocol, kind, 0, ports, addresses, hashed once with SipHash-2-4.
    func testKnownLayout() {
        let p = PacketBuilder.ipv4UDP(src: 0x0a00_0001, dst: 0xc0a8_0102, srcPort: 0x1234, dstPort: 0x0035,
                                      payload: [1, 2, 3])
        let key: [UInt8] = [4, 17, 1, 0, 0x12, 0x34, 0x00, 0x35, 10, 0, 0, 1, 192, 168, 1, 2]
        let h = SipHash.hash(key: Self.key, data: key)
        XCTAssertEqual(hash(p), UInt32(truncatingIfNeeded: h ^ (h >> 32)))

        let q = Raw.v6(src: (0x2001_0db8_0000_0000, 1), dst: (0x2001_0db8_0000_0000, 2), proto: 58,
                       l4: Raw.icmp(type: 128, id: 0xbeef, seq: 7))
        let key6: [UInt8] = [6, 58, 2, 0, 0xbe, 0xef, 0, 0] + PacketBuilder.be64(0x2001_0db8_0000_0000)
            + PacketBuilder.be64(1) + PacketBuilder.be64(0x2001_0db8_0000_0000) + PacketBuilder.be64(2)
        let h6 = SipHash.hash(key: Self.key, data: key6)
        XCTAssertEqual(hash(q), UInt32(truncatingIfNeeded: h6 ^ (h6 >> 32)))
    }

    func testReciprocalScale() {
        // (hash, n, expected)
        let table: [(UInt32, UInt32, UInt32)] = [
            (0, 1024, 0), (UInt32.max, 1024, 1023), (0x8000_0000, 1024, 512), (0x7fff_ffff, 1024, 511),
            (UInt32.max, 1, 0), (12345, 0, 0), (UInt32.max, UInt32.max, UInt32.max - 1), (0x4000_0000, 3, 0),
            (0x5555_5556, 3, 1), (0xaaaa_aaab, 3, 2),
        ]
        for (h, n, expected) in table {
            XCTAssertEqual(FlowHasher.reciprocalScale(h, n), expected, "hash \(h) n \(n)")
        }
        var rng = SeededRandom(seed: 8290)
        for _ in 0..<10_000 {
            let n = UInt32.random(in: 1...65536, using: &rng)
            XCTAssertLessThan(FlowHasher.reciprocalScale(UInt32.random(in: 0...UInt32.max, using: &rng), n), n)
        }
    }

    // MARK: Same flow, same hash

    func testSameFlowSameHash() {
        var rng = SeededRandom(seed: 1)
        for _ in 0..<500 {
            let flow = Flow.random(&rng)
            let reference = hash(flow.packet())
            for _ in 0..<5 {
                let payload = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let p = flow.packet(payload: payload, ttl: .random(in: 1...255, using: &rng),
                                    id: .random(in: 0...UInt16.max, using: &rng))
                XCTAssertEqual(hash(p), reference)
            }
        }
        // Real TCP/UDP packets: sequence numbers, flags, TOS and checksums do not matter.
        let a = PacketBuilder.ipv4TCP(src: 1, dst: 2, tcp: .init(seq: 1, flags: PacketBuilder.TCPFlags.syn),
                                      payload: [], tos: 0x02, ttl: 3, id: 4)
        let b = PacketBuilder.ipv4TCP(src: 1, dst: 2, tcp: .init(seq: 99_999, ack: 7, options: [1, 1, 1, 1]),
                                      payload: [UInt8](repeating: 7, count: 1400), tos: 0xb8, ttl: 200, id: 5)
        XCTAssertEqual(hash(a), hash(b))
        let c = PacketBuilder.ipv6UDP(src: (1, 2), dst: (3, 4), payload: [1], trafficClass: 0, hopLimit: 1)
        let d = PacketBuilder.ipv6UDP(src: (1, 2), dst: (3, 4), payload: [], trafficClass: 0x03, hopLimit: 255)
        XCTAssertEqual(hash(c), hash(d))
        // Two hashers with the same key agree.
        XCTAssertEqual(hash(a, FlowHasher(key: Self.key)), hash(a))
    }

    // MARK: Different flows, different hashes

    func testFlowsDifferingInOneFieldHashApart() {
        var rng = SeededRandom(seed: 2)
        var pairs = 0, collisions = 0
        func check(_ a: Flow, _ b: Flow) {
            precondition(a != b)
            pairs += 1
            if hash(a.packet()) == hash(b.packet()) { collisions += 1 }
        }
        for _ in 0..<2000 {
            let f = Flow.random(&rng)
            var g = f
            if f.v6 { g.src.1 ^= 1 << UInt64.random(in: 0...63, using: &rng) } else { g.src.0 ^= 1 << UInt64.random(in: 0...31, using: &rng) }
            check(f, g)
            g = f
            if f.v6 { g.dst.0 ^= 1 << UInt64.random(in: 0...63, using: &rng) } else { g.dst.0 ^= 1 << UInt64.random(in: 0...31, using: &rng) }
            check(f, g)
            g = f; g.sport &+= 1; check(f, g)
            g = f; g.dport ^= 0x8000; check(f, g)
            g = f; g.proto = f.proto == 6 ? 17 : 6; check(f, g)
            g = f; g.sport = f.dport; g.dport = f.sport; if f.sport != f.dport { check(f, g) }   // direction counts
            // The same addresses and ports in the other IP version (v4 address in the top of the v6 one).
            g = f
            g.v6.toggle()
            if f.v6 { g.src = (f.src.0 >> 32, 0); g.dst = (f.dst.0 >> 32, 0) } else { g.src = (f.src.0 << 32, 0); g.dst = (f.dst.0 << 32, 0) }
            check(f, g)
        }
        XCTAssertLessThanOrEqual(collisions, max(1, pairs / 10_000), "\(collisions) collisions in \(pairs) pairs")
    }

    func testManyRandomFlowsRarelyCollide() {
        var rng = SeededRandom(seed: 3)
        var flows = Set<Flow>()
        while flows.count < 5000 { flows.insert(Flow.random(&rng)) }
        let hashes = flows.map { hash($0.packet()) }.sorted()
        var collisions = 0
        var run = 1
        for i in 1..<hashes.count {
            if hashes[i] == hashes[i - 1] { run += 1 } else { collisions += run * (run - 1) / 2; run = 1 }
        }
        collisions += run * (run - 1) / 2
        let pairs = hashes.count * (hashes.count - 1) / 2   // ~12.5 M pairs; 2^-32 each expects ~0.003
        XCTAssertLessThanOrEqual(collisions, 1, "\(collisions) collisions in \(pairs) pairs")
    }

    /// The memo reuses a hash only for the very same key: over runs of one flow, alternating flows, flows that
    /// differ in a single field, truncated packets and a v4/v6 pair whose key bytes overlap, it always gives
    /// what hashing afresh gives.
    func testMemoizedHashEqualsFreshHash() {
        var rng = SeededRandom(seed: 8290)
        let flows = (0..<6).map { _ in Flow.random(&rng) }
        var packets: [[UInt8]] = []
        for f in flows {
            for _ in 0..<Int.random(in: 1...4, using: &rng) { packets.append(f.packet(payload: [1, 2, 3])) }
            var g = f
            g.dport &+= 1
            packets.append(g.packet())
            packets.append(Array(f.packet().prefix(Int.random(in: 0...24, using: &rng))))
            packets.append(f.packet())
        }
        let v4 = Flow(v6: false, src: (0x0a00_0001, 0), dst: (0x0a00_0002, 0), proto: 6, sport: 1, dport: 2)
        var v6 = v4
        v6.v6 = true
        packets += [v4.packet(), v6.packet(), v4.packet()]
        for _ in 0..<200 { packets.append(packets.randomElement(using: &rng)!) }
        var memo = FlowHashMemo()
        for (i, p) in packets.enumerated() {
            let memoized = p.withUnsafeBytes { b in
                hasher.hash(packet: b.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length: b.count, memo: &memo)
            }
            XCTAssertEqual(memoized, hash(p), "packet \(i)")
        }
    }

    func testDifferentKeysGiveDifferentHashes() {
        var rng = SeededRandom(seed: 4)
        let other = FlowHasher(key: Array(1...16))
        let random = FlowHasher(key: SecureRandom.bytes(16))
        var same = 0, sameRandom = 0, sameBucket = 0
        let n = 2000
        for _ in 0..<n {
            let p = Flow.random(&rng).packet()
            if hash(p) == hash(p, other) { same += 1 }
            if hash(p) == hash(p, random) { sameRandom += 1 }
            if FlowHasher.reciprocalScale(hash(p), 1024) == FlowHasher.reciprocalScale(hash(p, other), 1024) { sameBucket += 1 }
        }
        XCTAssertLessThanOrEqual(same, 1)
        XCTAssertLessThanOrEqual(sameRandom, 1)
        XCTAssertLessThan(sameBucket, 10, "about n/1024 flows share a bucket under two keys by chance")
    }

    // MARK: Protocols

    func testPortsCountForEveryPortProtocol() {
        for proto: UInt8 in [6, 17, 136, 132, 33] {
            let base = Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1000, 2000))
            XCTAssertNotEqual(hash(base), hash(Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1001, 2000))), "proto \(proto)")
            XCTAssertNotEqual(hash(base), hash(Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1000, 2001))), "proto \(proto)")
            XCTAssertEqual(hash(base), hash(Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1000, 2000, rest: [9, 9, 9, 9]))))
        }
        // ESP: the SPI tells security associations apart.
        let esp = Raw.v4(src: 1, dst: 2, proto: 50, l4: Raw.be32(0x1000) + Raw.be32(1))
        XCTAssertNotEqual(hash(esp), hash(Raw.v4(src: 1, dst: 2, proto: 50, l4: Raw.be32(0x1001) + Raw.be32(1))))
        XCTAssertEqual(hash(esp), hash(Raw.v4(src: 1, dst: 2, proto: 50, l4: Raw.be32(0x1000) + Raw.be32(2))))
        // Other protocols: the L4 bytes are not read.
        for proto: UInt8 in [47, 4, 41, 89, 255] {
            XCTAssertEqual(hash(Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1, 2))),
                           hash(Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(3, 4))), "proto \(proto)")
        }
    }

    func testICMPEchoIdentifiers() {
        // (IPv6, echo types)
        for (v6, types) in [(false, [UInt8(8), 0]), (true, [UInt8(128), 129])] {
            func packet(_ type: UInt8, _ id: UInt16, _ seq: UInt16) -> [UInt8] {
                let l4 = Raw.icmp(type: type, id: id, seq: seq)
                return v6 ? Raw.v6(src: (1, 1), dst: (2, 2), proto: 58, l4: l4) : Raw.v4(src: 1, dst: 2, proto: 1, l4: l4)
            }
            for type in types {
                XCTAssertEqual(hash(packet(type, 77, 1)), hash(packet(type, 77, 2)), "sequence numbers do not count")
                var hashes = Set<UInt32>()
                for id in UInt16(0)..<200 { hashes.insert(hash(packet(type, id, 1))) }
                XCTAssertEqual(hashes.count, 200, "identifiers distinguish echo flows")
            }
            // Not echo (destination unreachable, time exceeded, router advertisement): bytes 4–7 are not read.
            for type: UInt8 in v6 ? [1, 3, 134] : [3, 11] {
                XCTAssertEqual(hash(packet(type, 1, 1)), hash(packet(type, 2, 2)), "type \(type)")
            }
        }
    }

    // MARK: IPv6

    func testIPv6FlowLabelDoesNotHidePorts() {
        let src: (UInt64, UInt64) = (0x2001_0db8 << 32, 1), dst: (UInt64, UInt64) = (0x2001_0db8 << 32, 2)
        func tcp(_ sport: UInt16, label: UInt32) -> [UInt8] {
            PacketBuilder.ipv6TCP(src: src, dst: dst, tcp: .init(srcPort: sport, dstPort: 443), payload: [1],
                                  flowLabel: label)
        }
        for label: UInt32 in [0, 1, 0x12345, 0xf_ffff] {
            var hashes = Set<UInt32>()
            for sport in UInt16(40000)..<40100 { hashes.insert(hash(tcp(sport, label: label))) }
            XCTAssertEqual(hashes.count, 100, "label \(label): ports still distinguish flows")
        }
        // With ports, the label does not count: a socket that changes its label stays in its queue.
        XCTAssertEqual(hash(tcp(40000, label: 0)), hash(tcp(40000, label: 0x12345)))
        XCTAssertEqual(hash(tcp(40000, label: 0x54321)), hash(tcp(40000, label: 0x12345)))
        // Without ports (an opaque protocol), the label is all there is to tell flows apart.
        let gre1 = Raw.v6(src: src, dst: dst, proto: 47, l4: [0, 0, 0x65, 0x58], label: 1)
        let gre2 = Raw.v6(src: src, dst: dst, proto: 47, l4: [0, 0, 0x65, 0x58], label: 2)
        let gre0 = Raw.v6(src: src, dst: dst, proto: 47, l4: [0, 0, 0x65, 0x58], label: 0)
        XCTAssertNotEqual(hash(gre1), hash(gre2))
        XCTAssertNotEqual(hash(gre1), hash(gre0))
    }

    func testIPv6ExtensionHeadersReachThePorts() {
        let src: (UInt64, UInt64) = (1, 1), dst: (UInt64, UInt64) = (2, 2)
        let hbh: (UInt8, [UInt8]) = (0, [5, 2, 0, 0, 1, 0])            // router alert, PadN
        let dest: (UInt8, [UInt8]) = (60, [1, 12] + [UInt8](repeating: 0, count: 12))   // PadN, 16 bytes in all
        let routing: (UInt8, [UInt8]) = (43, [4, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xaa, count: 16))  // type 4, 1 segment
        let atomic: (UInt8, [UInt8]) = (44, Raw.fragment(offset: 0, more: false, id: 99))
        let chains: [[(UInt8, [UInt8])]] = [
            [hbh], [dest], [hbh, dest], [hbh, routing, dest], [atomic], [hbh, dest, atomic, dest],
        ]
        for proto: UInt8 in [6, 17, 136, 132] {
            for sport: UInt16 in [1, 2, 53, 65535] {
                let l4 = Raw.ports(sport, 80)
                let plain = hash(Raw.v6(src: src, dst: dst, proto: proto, l4: l4))
                for chain in chains {
                    let p = Raw.v6(src: src, dst: dst, proto: proto, l4: l4, extensions: chain)
                    XCTAssertEqual(hash(p), plain, "proto \(proto) chain \(chain.map { $0.0 })")
                    let other = Raw.v6(src: src, dst: dst, proto: proto, l4: Raw.ports(sport &+ 1, 80), extensions: chain)
                    XCTAssertNotEqual(hash(p), hash(other), "proto \(proto) chain \(chain.map { $0.0 })")
                }
            }
        }
        // ICMPv6 echo behind hop-by-hop.
        let echo1 = Raw.v6(src: src, dst: dst, proto: 58, l4: Raw.icmp(type: 128, id: 1, seq: 0), extensions: [hbh])
        let echo2 = Raw.v6(src: src, dst: dst, proto: 58, l4: Raw.icmp(type: 128, id: 2, seq: 0), extensions: [hbh])
        XCTAssertNotEqual(hash(echo1), hash(echo2))
    }

    func testIPv6ExtensionHeaderChainIsBounded() {
        let n = FlowHasher.maxIPv6ExtensionHeaders
        let dest: (UInt8, [UInt8]) = (60, [1, 4, 0, 0, 0, 0])
        let plain = hash(Raw.v6(src: (1, 1), dst: (2, 2), proto: 17, l4: Raw.ports(5, 6)))
        let atBound = Raw.v6(src: (1, 1), dst: (2, 2), proto: 17, l4: Raw.ports(5, 6),
                             extensions: Array(repeating: dest, count: n))
        XCTAssertEqual(hash(atBound), plain, "\(n) extension headers are walked")
        for count in [n + 1, 40, 200] {
            let a = Raw.v6(src: (1, 1), dst: (2, 2), proto: 17, l4: Raw.ports(5, 6), extensions: Array(repeating: dest, count: count))
            let b = Raw.v6(src: (1, 1), dst: (2, 2), proto: 17, l4: Raw.ports(7, 8), extensions: Array(repeating: dest, count: count))
            XCTAssertEqual(hash(a), hash(b), "\(count) headers: gives up before the ports")
        }
    }

    func testIPv6FragmentsShareAHash() {
        let src: (UInt64, UInt64) = (1, 1), dst: (UInt64, UInt64) = (2, 2)
        var rng = SeededRandom(seed: 6)
        func garbage(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        for (sport, id) in [(UInt16(1000), UInt32(1)), (2000, 2)] {
            let first = Raw.v6(src: src, dst: dst, proto: 17, l4: Raw.ports(sport, 53) + garbage(1224),
                               label: 0x777, extensions: [(44, Raw.fragment(offset: 0, more: true, id: id))])
            let middle = Raw.v6(src: src, dst: dst, proto: 17, l4: garbage(1232), label: 0x777,
                                extensions: [(44, Raw.fragment(offset: 154, more: true, id: id))])
            let last = Raw.v6(src: src, dst: dst, proto: 17, l4: garbage(100), label: 0x777,
                              extensions: [(44, Raw.fragment(offset: 308, more: false, id: id))])
            let behindHopByHop = Raw.v6(src: src, dst: dst, proto: 17, l4: garbage(100), label: 0x777,
                                        extensions: [(0, [1, 4, 0, 0, 0, 0]), (44, Raw.fragment(offset: 308, more: false, id: id))])
            XCTAssertEqual(hash(first), hash(middle))
            XCTAssertEqual(hash(first), hash(last))
            XCTAssertEqual(hash(first), hash(behindHopByHop))
        }
    }

    // MARK: IPv4 fragments

    func testIPv4FragmentsShareAHash() {
        var rng = SeededRandom(seed: 5)
        func garbage(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        for proto: UInt8 in [6, 17, 132] {
            for id: UInt16 in [1, 0xffff] {
                let first = Raw.v4(src: 1, dst: 2, proto: proto, l4: Raw.ports(1234, 80) + garbage(1472),
                                   id: id, flagsFragment: 0x2000)
                let middle = Raw.v4(src: 1, dst: 2, proto: proto, l4: garbage(1480), id: id, flagsFragment: 0x2000 | 185)
                let last = Raw.v4(src: 1, dst: 2, proto: proto, l4: garbage(20), id: id, flagsFragment: 370)
                XCTAssertEqual(hash(first), hash(middle), "proto \(proto)")
                XCTAssertEqual(hash(first), hash(last), "proto \(proto)")
                // Still apart from other address pairs and protocols.
                XCTAssertNotEqual(hash(first), hash(Raw.v4(src: 1, dst: 3, proto: proto, l4: garbage(20), flagsFragment: 370)))
                XCTAssertNotEqual(hash(first), hash(Raw.v4(src: 1, dst: 2, proto: 47, l4: garbage(20), flagsFragment: 370)))
            }
        }
        // DF alone is not fragmentation: the ports count.
        XCTAssertNotEqual(hash(Raw.v4(src: 1, dst: 2, proto: 17, l4: Raw.ports(1, 2), flagsFragment: 0x4000)),
                          hash(Raw.v4(src: 1, dst: 2, proto: 17, l4: Raw.ports(1, 3), flagsFragment: 0x4000)))
        XCTAssertNotEqual(hash(Raw.v4(src: 1, dst: 2, proto: 17, l4: Raw.ports(1, 2), flagsFragment: 0)),
                          hash(Raw.v4(src: 1, dst: 2, proto: 17, l4: Raw.ports(1, 3), flagsFragment: 0)))
    }

    func testIPv4OptionsAreSkipped() {
        let options: [UInt8] = [0x94, 0x04, 0x00, 0x00]   // router alert
        let a = PacketBuilder.ipv4UDP(src: 1, dst: 2, srcPort: 10, dstPort: 20, payload: [1])
        let b = PacketBuilder.ipv4TCP(src: 1, dst: 2, tcp: .init(srcPort: 10, dstPort: 20), payload: [], ipOptions: options)
        let c = PacketBuilder.ipv4TCP(src: 1, dst: 2, tcp: .init(srcPort: 10, dstPort: 20), payload: [])
        let d = PacketBuilder.ipv4TCP(src: 1, dst: 2, tcp: .init(srcPort: 11, dstPort: 20), payload: [], ipOptions: options)
        XCTAssertEqual(hash(b), hash(c))
        XCTAssertNotEqual(hash(b), hash(d))
        XCTAssertNotEqual(hash(a), hash(c))
    }

    // MARK: Malformed input

    /// Hashes packet[0..<length] inside a buffer whose tail beyond `length` is filled twice with different garbage:
    /// equal results mean nothing past `length` was read.
    private func hashIgnoringTail(_ bytes: [UInt8], length: Int, _ rng: inout SeededRandom) -> UInt32 {
        let capacity = max(bytes.count, length) + 64
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        defer { buffer.deallocate() }
        var results: [UInt32] = []
        for _ in 0..<2 {
            for i in 0..<capacity { buffer.storeBytes(of: UInt8.random(in: 0...255, using: &rng), toByteOffset: i, as: UInt8.self) }
            let count = min(length, bytes.count)
            if count > 0 { bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) } }
            results.append(hasher.hash(packet: buffer, length: length))
        }
        XCTAssertEqual(results[0], results[1], "length \(length) read past the end")
        return results[0]
    }

    func testTruncatedPacketsNeverReadPastTheEnd() {
        var rng = SeededRandom(seed: 7)
        let packets: [[UInt8]] = [
            PacketBuilder.ipv4TCP(src: 0x0a00_0001, dst: 0x0a00_0002, tcp: .init(options: [2, 4, 5, 0xb4]), payload: [1, 2, 3],
                                  ipOptions: [0x94, 0x04, 0, 0]),
            PacketBuilder.ipv4UDP(src: 1, dst: 2, payload: [1, 2, 3, 4, 5]),
            Raw.v4(src: 1, dst: 2, proto: 1, l4: Raw.icmp(type: 8, id: 5, seq: 6)),
            PacketBuilder.ipv6TCP(src: (1, 2), dst: (3, 4), payload: [1, 2], flowLabel: 0x12345),
            Raw.v6(src: (1, 2), dst: (3, 4), proto: 6, l4: Raw.ports(1, 2, rest: [UInt8](repeating: 0, count: 16)),
                   label: 9, extensions: [(0, [1, 4, 0, 0, 0, 0]), (43, [0, 0, 0, 0, 0, 0]), (60, [1, 12] + [UInt8](repeating: 0, count: 12)),
                                          (44, Raw.fragment(offset: 0, more: false, id: 1))]),
            Raw.v6(src: (1, 2), dst: (3, 4), proto: 58, l4: Raw.icmp(type: 129, id: 5, seq: 6),
                   extensions: [(60, [1, 4, 0, 0, 0, 0])]),
        ]
        for p in packets {
            for length in 0...min(p.count, 120) {
                let h = hashIgnoringTail(p, length: length, &rng)
                // Every prefix is still a valid input the next time round.
                XCTAssertEqual(h, hashIgnoringTail(p, length: length, &rng))
            }
        }
        // Every prefix of a TCP packet 0…60 bytes; a prefix with the whole 4-byte port field hashes as the full packet.
        let tcp = PacketBuilder.ipv4TCP(src: 0x0a00_0001, dst: 0x0a00_0002, tcp: .init(srcPort: 5555, dstPort: 22),
                                        payload: [UInt8](repeating: 0x41, count: 20))
        for length in 0...60 {
            let h = hashIgnoringTail(tcp, length: length, &rng)
            if length >= 24 { XCTAssertEqual(h, hash(tcp), "length \(length)") }
        }
    }

    func testLengthFieldsLyingAboutSize() {
        var rng = SeededRandom(seed: 8)
        // IHL past the end, IHL below 5, an extension header longer than the packet.
        var v4 = PacketBuilder.ipv4UDP(src: 1, dst: 2, payload: [])
        v4[0] = 0x4f
        _ = hashIgnoringTail(v4, length: v4.count, &rng)
        v4[0] = 0x41
        _ = hashIgnoringTail(v4, length: v4.count, &rng)
        let longExtension = Raw.v6(src: (1, 1), dst: (2, 2), proto: 17, l4: Raw.ports(1, 2),
                                   extensions: [(0, [UInt8](repeating: 1, count: 6))])
        var p = longExtension
        p[41] = 255   // claims 2 KB
        _ = hashIgnoringTail(p, length: p.count, &rng)
        // Random bytes with a plausible version nibble, at random lengths.
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...96, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if length > 0 { bytes[0] = bytes[0] & 0x0f | [0x40, 0x60, 0x40, 0x60, 0x00].randomElement(using: &rng)! }
            if length > 6 && bytes[0] >> 4 == 6 { bytes[6] = [0, 43, 44, 60, 6, 17, 58].randomElement(using: &rng)! }
            _ = hashIgnoringTail(bytes, length: length, &rng)
        }
    }
}
