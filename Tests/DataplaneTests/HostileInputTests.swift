// Hostile input, one table per layer: every way the receive path can refuse a datagram or an inner packet has a
// row naming the counter that must count it. Each row runs against a live session (from the peer's address and
// from a stranger's), then the tunnel must still carry a fresh packet both ways, no other counter may have moved,
// and neither the peer's endpoint nor its keys may have changed.
import Crypto
import Dataplane
import TestSupport
import XCTest

final class HostileInputTests: XCTestCase {
    /// Datagrams injected into one device's socket.
    struct WireCase {
        enum Target { case a, b }
        let name: String
        let target: Target
        let expects: [Expect]
        let make: (HostileFixture) throws -> [[UInt8]]

        init(_ name: String, to target: Target = .b, _ expects: [Expect],
             _ make: @escaping (HostileFixture) throws -> [[UInt8]]) {
            self.name = name
            self.target = target
            self.expects = expects
            self.make = make
        }
    }

    /// An inner packet A's TUN hands to A: routable, so A seals and sends it, but B must refuse it.
    struct TunCase {
        let name: String
        let expect: Counter
        let packet: [UInt8]
    }

    // MARK: Tables

    /// Malformed before any key is involved: length, type word, size per type, truncation.
    func parserCases() -> [WireCase] {
        var cases: [WireCase] = [
            WireCase("empty datagram", [.delta(.rxDropShort, 1)]) { _ in [[]] },
            WireCase("1, 2 and 3 bytes", [.delta(.rxDropShort, 3)]) { _ in [[4], [4, 0], [1, 0, 0]] },
            WireCase("a lone zero type word", [.delta(.rxDropBadType, 1)]) { _ in [[0, 0, 0, 0]] },
        ]
        // The type is a byte followed by three zero bytes, read as one little-endian word.
        let badTypes: [UInt32] = [0, 5, 6, 0x80, 0xff, 0x100, 0x104, 0x1_0001, 0x0100_0000, 0x0100_0004, 0xffff_ffff]
        for t in badTypes {
            cases.append(WireCase("type word 0x\(String(t, radix: 16))", [.delta(.rxDropBadType, 2)]) { _ in
                [Wire.message(type: t, size: 148), Wire.message(type: t, size: 64)]
            })
        }
        let badSizes: [(UInt32, Int)] = [
            (1, 4), (1, 92), (1, 147), (1, 149), (1, 1400),
            (2, 4), (2, 64), (2, 91), (2, 93), (2, 148),
            (3, 4), (3, 63), (3, 65), (3, 92), (3, 148),
            (4, 4), (4, 16), (4, 31),
        ]
        for (t, size) in badSizes {
            cases.append(WireCase("type \(t) with \(size) bytes", [.delta(.rxDropBadSize, 1)]) { _ in
                [Wire.message(type: t, size: size)]
            })
        }
        for size in [9000, 65000, 65507] {
            cases.append(WireCase("\(size)-byte transport for the live session", [.delta(.rxDropTruncated, 1)]) { f in
                var d = Wire.message(type: 4, size: size)
                Wire.putLE32(&d, 4, f.currentKeypair(f.pair.b)!.localIndex)
                return [d]
            })
        }
        cases.append(WireCase("65000-byte initiation", [.delta(.rxDropTruncated, 1)]) { _ in
            [Wire.message(type: 1, size: 65000)]
        })
        return cases
    }

    /// Transport messages that must not open, or must not be accepted twice.
    func transportCases() -> [WireCase] {
        func live(_ f: HostileFixture) -> UInt32 { f.currentKeypair(f.pair.b)!.localIndex }
        let reject = ProtocolLimits.rejectAfterMessages
        return [
            WireCase("transport to an unknown receiver index", [.delta(.rxDropUnknownIndex, 1)]) { f in
                [Wire.unsealedTransport(receiver: f.unknownIndex(in: f.pair.b), counter: 1, bodyLength: 48)]
            },
            WireCase("captured transport replayed", [.delta(.rxDropReplay, 1)]) { f in [f.firstTransport] },
            WireCase("captured transport replayed three times", [.delta(.rxDropReplay, 3)]) { f in
                Array(repeating: f.firstTransport, count: 3)
            },
            WireCase("bit flipped in the ciphertext", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: 20)]
            },
            WireCase("bit flipped in the tag", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: f.firstTransport.count - 1, bit: 7)]
            },
            WireCase("low bit flipped in the counter", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: 8)]
            },
            WireCase("high bit flipped in the counter", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: 15, bit: 6)]
            },
            WireCase("bit flipped in the receiver index", [.delta(.rxDropUnknownIndex, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: 4, bit: 3)]
            },
            WireCase("bit flipped in the type word", [.delta(.rxDropBadType, 1)]) { f in
                [Wire.flipped(f.firstTransport, byte: 2)]
            },
            WireCase("sealed with a random key", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.transport(receiver: live(f), counter: 1 << 20, inner: DevicePair.packet(7), key: .random())]
            },
            WireCase("keepalive-sized forgery", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.unsealedTransport(receiver: live(f), counter: 3, bodyLength: 16)]
            },
            WireCase("counter at REJECT_AFTER_MESSAGES", [.delta(.rxDropReplay, 1)]) { f in
                [Wire.unsealedTransport(receiver: live(f), counter: reject, bodyLength: 48)]
            },
            WireCase("counter 2^64-1", [.delta(.rxDropReplay, 1)]) { f in
                [Wire.unsealedTransport(receiver: live(f), counter: .max, bodyLength: 48)]
            },
            WireCase("counter just below REJECT_AFTER_MESSAGES, forged", [.delta(.rxDropBadMac, 1)]) { f in
                [Wire.unsealedTransport(receiver: live(f), counter: reject - 1, bodyLength: 48)]
            },
            WireCase("authentic packet at REJECT_AFTER_MESSAGES", [.delta(.rxDropReplay, 1)]) { f in
                let k = f.currentKeypair(f.pair.a)!
                return [Wire.transport(receiver: k.remoteIndex, counter: reject, inner: DevicePair.packet(8),
                                       key: k.sendKey)]
            },
        ]
    }

    /// Authentic transport packets (sealed with A's key) whose plaintext is not an acceptable IP packet. A's
    /// own send path would refuse to route these, so the test seals them itself.
    func sealedInnerCases() -> [WireCase] {
        let v4 = DevicePair.packet(9)
        let v6 = PacketBuilder.ipv6UDP(src: DevicePair.innerA6, dst: DevicePair.innerB6, payload: [1, 2, 3, 4])
        var notIP = v4
        notIP[0] = 0x55
        var v7 = v6
        v7[0] = 0x70
        let inners: [(String, [UInt8])] = [
            ("inner version 5", notIP),
            ("inner version 7", v7),
            ("inner all zeros (padding only)", [UInt8](repeating: 0, count: 32)),
            ("inner single byte 0x45", [0x45]),
            ("inner IPv4 header cut at 19 bytes", Array(v4[0..<19])),
            ("inner IPv6 header cut at 39 bytes", Array(v6[0..<39])),
        ]
        return inners.map { name, inner in
            WireCase(name, [.delta(.rxDropBadInner, 1)]) { f in [try f.sealedByA(inner)] }
        }
    }

    /// Handshake-layer messages to B (the responder of the live session).
    func handshakeCases() -> [WireCase] {
        let mac1 = MessageLayout.mac1Offset(messageSize: MessageLayout.initiationSize)
        let staleOrFlood = Expect.sum([.rxDropStaleTimestamp, .rxDropInitiationFlood], 1)
        return [
            WireCase("initiation with a flipped mac1", [.delta(.rxDropBadMac1, 1)]) { f in
                [Wire.flipped(f.initiation, byte: mac1 + 3)]
            },
            WireCase("initiation with a flipped body under its old mac1", [.delta(.rxDropBadMac1, 1)]) { f in
                [Wire.flipped(f.initiation, byte: 60)]
            },
            WireCase("initiation with mac1 zeroed", [.delta(.rxDropBadMac1, 1)]) { f in
                var m = f.initiation
                for i in mac1..<mac1 + 16 { m[i] = 0 }
                return [m]
            },
            WireCase("captured initiation replayed", [.delta(.rxHandshakeInitiations, 1), staleOrFlood]) { f in
                [f.initiation]
            },
            WireCase("captured initiation with a new sender index and mac1",
                     [.delta(.rxHandshakeInitiations, 1), staleOrFlood]) { f in
                var m = f.initiation
                Wire.putLE32(&m, 4, 0xdead_beef)
                return [f.withMac1(m, for: f.pair.b)]
            },
            WireCase("initiation from an unknown static key",
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropBadInitiation, 1)]) { f in
                [try f.strangerInitiation(to: f.pair.b)]
            },
            WireCase("initiation of random bytes with a valid mac1",
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropBadInitiation, 1)]) { f in
                [f.withMac1(Wire.message(type: 1, size: 4) + SecureRandom.bytes(144), for: f.pair.b)]
            },
            WireCase("fresh initiation from A's key within 20 ms of the last",
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropInitiationFlood, 1)]) { f in
                // The clock is frozen, so B consumed A's last initiation "0 ns" ago.
                [try f.freshInitiationFromA()]
            },
            WireCase("captured initiation with an all-zero ephemeral and a valid mac1",
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropBadInitiation, 1)]) { f in
                var m = f.initiation
                for i in 8..<40 { m[i] = 0 }
                return [f.withMac1(m, for: f.pair.b)]
            },
            WireCase("response to an unknown receiver index, valid mac1",
                     [.delta(.rxHandshakeResponses, 1), .delta(.rxDropUnknownIndex, 1)]) { f in
                var m = Wire.message(type: 2, size: 4) + SecureRandom.bytes(88)
                Wire.putLE32(&m, 8, f.unknownIndex(in: f.pair.b))
                return [f.withMac1(m, for: f.pair.b)]
            },
            WireCase("response to B's session index, valid mac1",
                     [.delta(.rxHandshakeResponses, 1), .delta(.rxDropUnknownIndex, 1)]) { f in
                var m = Wire.message(type: 2, size: 4) + SecureRandom.bytes(88)
                Wire.putLE32(&m, 8, f.currentKeypair(f.pair.b)!.localIndex)
                return [f.withMac1(m, for: f.pair.b)]
            },
            WireCase("response with a bad mac1", [.delta(.rxDropBadMac1, 1)]) { f in
                var m = Wire.message(type: 2, size: 92)
                Wire.putLE32(&m, 8, f.currentKeypair(f.pair.b)!.localIndex)
                return [m]
            },
            WireCase("captured response sent back to its sender", [.delta(.rxDropBadMac1, 1)]) { f in [f.response] },
            WireCase("cookie reply for B's session with a bad tag",
                     [.delta(.rxCookieReplies, 1), .delta(.rxDropBadCookie, 1)]) { f in
                var m = Wire.message(type: 3, size: 4) + SecureRandom.bytes(60)
                Wire.putLE32(&m, 4, f.currentKeypair(f.pair.b)!.localIndex)
                return [m]
            },
            WireCase("cookie reply for an unknown index",
                     [.delta(.rxCookieReplies, 1), .delta(.rxDropUnknownIndex, 1)]) { f in
                var m = Wire.message(type: 3, size: 4) + SecureRandom.bytes(60)
                Wire.putLE32(&m, 4, f.unknownIndex(in: f.pair.b))
                return [m]
            },
        ]
    }

    /// Replays once the 20 ms flood window has passed: only the timestamp can refuse them.
    func staleInitiationCases() -> [WireCase] {
        [
            WireCase("captured initiation replayed", [.delta(.rxHandshakeInitiations, 1),
                                                      .delta(.rxDropStaleTimestamp, 1)]) { f in [f.initiation] },
            WireCase("captured initiation with a new sender index and mac1",
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropStaleTimestamp, 1)]) { f in
                var m = f.initiation
                Wire.putLE32(&m, 4, 0xdead_beef)
                return [f.withMac1(m, for: f.pair.b)]
            },
        ]
    }

    /// Handshake-layer messages to A (the initiator of the live session).
    func initiatorCases() -> [WireCase] {
        [
            WireCase("captured response replayed", to: .a,
                     [.delta(.rxHandshakeResponses, 1), .delta(.rxDropUnknownIndex, 1)]) { f in [f.response] },
            WireCase("captured initiation reflected to its sender", to: .a, [.delta(.rxDropBadMac1, 1)]) { f in
                [f.initiation]
            },
            WireCase("initiation from an unknown static key", to: .a,
                     [.delta(.rxHandshakeInitiations, 1), .delta(.rxDropBadInitiation, 1)]) { f in
                [try f.strangerInitiation(to: f.pair.a)]
            },
            WireCase("cookie reply for A's session with a bad tag", to: .a,
                     [.delta(.rxCookieReplies, 1), .delta(.rxDropBadCookie, 1)]) { f in
                var m = Wire.message(type: 3, size: 4) + SecureRandom.bytes(60)
                Wire.putLE32(&m, 4, f.currentKeypair(f.pair.a)!.localIndex)
                return [m]
            },
            WireCase("captured transport reflected to its sender", to: .a, [.delta(.rxDropUnknownIndex, 1)]) { f in
                // A→B packets carry B's index, which names nothing at A (indices are random per side).
                [f.firstTransport]
            },
        ]
    }

    /// Inner packets A routes and seals normally (their destination is B) that B must refuse.
    func tunCases() -> [TunCase] {
        let v4 = DevicePair.packet(10)
        let v6 = PacketBuilder.ipv6UDP(src: DevicePair.innerA6, dst: DevicePair.innerB6, payload: [9, 9, 9, 9])
        func v4With(_ edit: (inout [UInt8]) -> Void) -> [UInt8] { var p = v4; edit(&p); return p }
        func v6With(_ edit: (inout [UInt8]) -> Void) -> [UInt8] { var p = v6; edit(&p); return p }
        func v4From(_ src: UInt32) -> [UInt8] {
            PacketBuilder.ipv4UDP(src: src, dst: DevicePair.innerB, payload: [1, 2, 3])
        }
        func v6From(_ src: (UInt64, UInt64)) -> [UInt8] {
            PacketBuilder.ipv6UDP(src: src, dst: DevicePair.innerB6, payload: [1, 2, 3])
        }
        return [
            TunCase(name: "IPv4 total length 65535 beyond the packet", expect: .rxDropBadInner,
                    packet: v4With { $0[2] = 0xff; $0[3] = 0xff }),
            TunCase(name: "IPv4 total length one past the padded packet", expect: .rxDropBadInner,
                    packet: v4With { p in
                        let padded = (p.count + 15) / 16 * 16
                        p[2] = UInt8((padded + 1) >> 8); p[3] = UInt8((padded + 1) & 0xff)
                    }),
            TunCase(name: "IPv4 total length shorter than its header", expect: .rxDropBadInner,
                    packet: v4With { $0[2] = 0; $0[3] = 12 }),
            TunCase(name: "IPv4 IHL 4", expect: .rxDropBadInner, packet: v4With { $0[0] = 0x44 }),
            TunCase(name: "IPv4 IHL 0", expect: .rxDropBadInner, packet: v4With { $0[0] = 0x40 }),
            TunCase(name: "IPv4 IHL 15 over a 28-byte total", expect: .rxDropBadInner,
                    packet: v4With { $0[0] = 0x4f; $0[2] = 0; $0[3] = 28 }),
            TunCase(name: "IPv6 payload length 65535 beyond the packet", expect: .rxDropBadInner,
                    packet: v6With { $0[4] = 0xff; $0[5] = 0xff }),
            TunCase(name: "IPv6 payload length one past the padded packet", expect: .rxDropBadInner,
                    packet: v6With { p in
                        let padded = (p.count + 15) / 16 * 16
                        p[4] = 0; p[5] = UInt8(padded - 40 + 1)
                    }),
            TunCase(name: "IPv4 source outside A's AllowedIPs", expect: .rxDropDisallowedSource,
                    packet: v4From(0xC613_0063)),
            TunCase(name: "IPv4 source is B's own address", expect: .rxDropDisallowedSource,
                    packet: v4From(DevicePair.innerB)),
            TunCase(name: "IPv4 source 0.0.0.0", expect: .rxDropDisallowedSource, packet: v4From(0)),
            TunCase(name: "IPv6 source outside A's AllowedIPs", expect: .rxDropDisallowedSource,
                    packet: v6From((0xfd19_0000_0000_0000, 0x63))),
            TunCase(name: "IPv6 source is B's own address", expect: .rxDropDisallowedSource,
                    packet: v6From(DevicePair.innerB6)),
            TunCase(name: "IPv6 source ::", expect: .rxDropDisallowedSource, packet: v6From((0, 0))),
            TunCase(name: "IPv6 source is A's IPv4 address, v4-mapped", expect: .rxDropDisallowedSource,
                    packet: v6From((0, 0xffff_0000_0000 | UInt64(DevicePair.innerA)))),
        ]
    }

    // MARK: Tests

    func testParserRejections() throws { try run(parserCases()) }
    func testForgedAndReplayedTransport() throws { try run(transportCases()) }
    func testAuthenticPacketsWithBadInnerHeaders() throws { try run(sealedInnerCases()) }
    func testHostileHandshakeMessagesToResponder() throws { try run(handshakeCases()) }
    func testHostileHandshakeMessagesToInitiator() throws { try run(initiatorCases()) }

    func testReplayedInitiationIsStaleAfterTheFloodWindow() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        // Well past the 20 ms limit, yet short of every timer (the first is B's keepalive, 10 s after data).
        f.clock.advance(seconds: 1)
        try run(staleInitiationCases(), on: f)
    }

    func testInnerPacketsRefusedAfterDecryption() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        for c in tunCases() {
            check(c.name, f, expectB: [.delta(c.expect, 1)]) { f.pair.tunA.inject([c.packet]) }
        }
    }

    /// A replay must not reach the TUN even when the original and its copy are in flight together.
    func testReplayInTheSameBatchIsWrittenOnce() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        let inner = DevicePair.packet(77)
        let sealed = try f.sealedByA(inner)
        let before = f.snapshot(f.pair.b)
        for _ in 0..<5 { f.pair.bindB.inject(sealed, from: f.pair.endpointA) }
        XCTAssertTrue(waitUntil { f.pair.b.counters[.rxDropReplay] - before[.rxDropReplay]! >= 4 })
        XCTAssertEqual(f.pair.tunB.collect(atLeast: 1), [inner])
        XCTAssertTrue(waitUntil { f.pair.b.counters[.rxPackets] > before[.rxPackets]! })
        f.assertTunnelWorks("replay in one batch")
        let after = f.snapshot(f.pair.b)
        assertCounters("replay in one batch", device: "B", before: before, after: after,
                       expects: [.delta(.rxDropReplay, 4)], extra: [.rxPackets: 2])
    }

    // MARK: Running a table

    private func run(_ cases: [WireCase]) throws {
        let f = try HostileFixture()
        defer { f.stop() }
        try run(cases, on: f)
    }

    private func run(_ cases: [WireCase], on f: HostileFixture) throws {
        for c in cases {
            for fromStranger in [false, true] {
                let label = "\(c.name) (from \(fromStranger ? "a stranger" : "the peer's endpoint"))"
                let bind = c.target == .b ? f.pair.bindB : f.pair.bindA
                let source = fromStranger ? f.stranger : (c.target == .b ? f.pair.endpointA : f.pair.endpointB)
                let datagrams = try c.make(f)
                check(label, f, expectA: c.target == .a ? c.expects : [], expectB: c.target == .b ? c.expects : []) {
                    for d in datagrams { bind.inject(d, from: source) }
                }
            }
        }
    }

    /// Injects, waits for the expected counters, then requires a working tunnel, exact counters and an
    /// untouched session.
    private func check(_ label: String, _ f: HostileFixture, expectA: [Expect] = [], expectB: [Expect],
                       inject: () -> Void, file: StaticString = #filePath, line: UInt = #line) {
        let (a, b) = (f.pair.a, f.pair.b)
        let keysBefore = (f.currentKeypair(a), f.currentKeypair(b))
        let indicesBefore = (a.indices.count, b.indices.count)
        let before = (f.snapshot(a), f.snapshot(b))
        inject()
        let reached = waitUntil {
            let now = (f.snapshot(a), f.snapshot(b))
            return expectA.allSatisfy { $0.reached(before.0, now.0) } && expectB.allSatisfy { $0.reached(before.1, now.1) }
        }
        XCTAssertTrue(reached, "\(label): the expected counters did not move within 5 s", file: file, line: line)
        f.assertTunnelWorks(label, file: file, line: line)
        let after = (f.snapshot(a), f.snapshot(b))
        assertCounters(label, device: "A", before: before.0, after: after.0, expects: expectA, extra: [.rxPackets: 1],
                       file: file, line: line)
        assertCounters(label, device: "B", before: before.1, after: after.1, expects: expectB, extra: [.rxPackets: 1],
                       file: file, line: line)
        XCTAssertTrue(f.currentKeypair(a) === keysBefore.0 && f.currentKeypair(b) === keysBefore.1,
                      "\(label): a session key changed", file: file, line: line)
        XCTAssertTrue(a.indices.count == indicesBefore.0 && b.indices.count == indicesBefore.1,
                      "\(label): session indices were added or lost", file: file, line: line)
        XCTAssertEqual(f.endpoint(b), f.pair.endpointA, "\(label): B's endpoint for A moved", file: file, line: line)
        XCTAssertEqual(f.endpoint(a), f.pair.endpointB, "\(label): A's endpoint for B moved", file: file, line: line)
    }
}
