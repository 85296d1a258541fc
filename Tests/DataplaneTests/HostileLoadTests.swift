// Hostile input in bulk: a burst of initiations that puts the responder under load (it must answer with cookie
// replies that really work), and a seeded flood of random datagrams while data flows both ways (every one must be
// dropped and counted, and the tunnel must not lose or reorder a packet).
import Crypto
import Dataplane
import TestSupport
import XCTest

final class HostileLoadTests: XCTestCase {
    func testInitiationBurstIsAnsweredWithWorkingCookies() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        let b = f.pair.b
        let mac1At = MessageLayout.mac1Offset(messageSize: MessageLayout.initiationSize)
        let mac2At = MessageLayout.mac2Offset(messageSize: MessageLayout.initiationSize)
        let indicesBefore = b.indices.count
        let before = f.snapshot(b)

        // Far more initiations than the load threshold, all at once, from one source: valid mac1, no mac2,
        // bodies that decrypt to nothing (each costs B a Diffie-Hellman unless it is under load).
        let n = 4 * ProtocolLimits.underLoadQueueLength
        var mac1BySender: [UInt32: [UInt8]] = [:]
        var burst: [([UInt8], Endpoint)] = []
        for i in 0..<n {
            var m = Wire.message(type: 1, size: 4) + SecureRandom.bytes(MessageLayout.initiationSize - 4)
            Wire.putLE32(&m, 4, UInt32(i))
            m = f.withMac1(m, for: b)
            mac1BySender[UInt32(i)] = Array(m[mac1At..<mac1At + 16])
            burst.append((m, f.stranger))
        }
        f.pair.bindB.inject(burst)

        // Each one is dropped exactly once: for its missing mac2 with a cookie reply (under load), or after full
        // processing (before the load was noticed), or at the queue.
        let settled = waitUntil(seconds: 20) {
            let s = f.snapshot(b)
            let d = { (c: Counter) in s[c]! - before[c]! }
            return d(.rxDropBadMac2) + d(.rxDropBadInitiation) + d(.rxDropHandshakeQueueFull) == UInt64(n)
        }
        XCTAssertTrue(settled, "the burst was not fully accounted for within 20 s")
        var after = f.snapshot(b)
        let cookieReplies = after[.txCookieReplies]! - before[.txCookieReplies]!
        XCTAssertGreaterThan(cookieReplies, 0, "B never considered itself under load")
        assertCounters("initiation burst", device: "B", before: before, after: after,
                       expects: [.sum([.rxDropBadMac2, .rxDropBadInitiation, .rxDropHandshakeQueueFull], UInt64(n))],
                       extra: [.rxHandshakeInitiations: after[.rxDropBadInitiation]! - before[.rxDropBadInitiation]!,
                               .txCookieReplies: after[.rxDropBadMac2]! - before[.rxDropBadMac2]!,
                               .rxPackets: 0])
        XCTAssertEqual(b.counters.totalDrops - before.drops, UInt64(n), "a refused initiation was not counted")
        XCTAssertEqual(b.indices.count, indicesBefore, "refused initiations left indices behind")

        // Every reply went back to the source, answers one of its initiations, and opens to the same cookie
        // (one source, one secret: the fake clock does not move, so the secret is never rotated).
        let replies = f.pair.network.recorded.filter { $0.to == f.stranger }.map(\.bytes)
        XCTAssertEqual(UInt64(replies.count), cookieReplies)
        var cookies = Set<[UInt8]>()
        for r in replies {
            XCTAssertEqual(r.count, MessageLayout.cookieReplySize)
            XCTAssertEqual(Wire.le32(r, 0), MessageType.cookieReply.rawValue)
            let mac1 = try XCTUnwrap(mac1BySender[Wire.le32(r, 4)], "reply to an index never sent")
            let cookie = try XCTUnwrap(XChaChaPoly.open(key: b.identity.cookieKey, nonce: Array(r[8..<32]),
                                                        ciphertext: Array(r[32..<64]), ad: mac1))
            cookies.insert(cookie)
        }
        XCTAssertEqual(cookies.count, 1)
        let cookie = try XCTUnwrap(cookies.first)

        // With that cookie as mac2, an initiation from the same source gets past the load check to the handshake
        // (and is refused there, its key being unknown); the same bytes from another address get another cookie.
        func withMac2(_ msg: [UInt8]) -> [UInt8] {
            var m = msg
            m.replaceSubrange(mac2At..<mac2At + 16, with: Blake2s.mac(key: cookie, data: Array(m[0..<mac2At]),
                                                                       outputLength: 16))
            return m
        }
        let limiter = RateLimiter()
        let burstAllowed = Int(limiter.tokenMax / limiter.packetCost)
        let extra = burstAllowed + 6
        let stage = f.snapshot(b)
        var paid: [([UInt8], Endpoint)] = []
        for _ in 0..<extra { paid.append((withMac2(try f.strangerInitiation(to: b)), f.stranger)) }
        f.pair.bindB.inject(paid)
        let elsewhere = Endpoint(address: IPAddress("203.0.113.10")!, port: 40404)
        f.pair.bindB.inject(withMac2(try f.strangerInitiation(to: b)), from: elsewhere)
        XCTAssertTrue(waitUntil {
            let s = f.snapshot(b)
            return s[.rxDropBadInitiation]! - stage[.rxDropBadInitiation]! >= UInt64(burstAllowed)
                && s[.rxDropRateLimited]! - stage[.rxDropRateLimited]! >= UInt64(extra - burstAllowed)
                && s[.txCookieReplies]! - stage[.txCookieReplies]! >= 1
        })
        f.assertTunnelWorks("after the initiation burst")
        after = f.snapshot(b)
        // The fake clock is frozen, so the source's bucket never refills: exactly one burst gets through.
        assertCounters("initiations with a valid cookie", device: "B", before: stage, after: after,
                       expects: [.delta(.rxHandshakeInitiations, UInt64(burstAllowed)),
                                 .delta(.rxDropBadInitiation, UInt64(burstAllowed)),
                                 .delta(.rxDropRateLimited, UInt64(extra - burstAllowed)),
                                 .delta(.rxDropBadMac2, 1), .delta(.txCookieReplies, 1)],
                       extra: [.rxPackets: 1])
        XCTAssertEqual(f.endpoint(b), f.pair.endpointA)
        XCTAssertEqual(b.indices.count, indicesBefore)
    }

    /// A real peer's first initiation reaches B while it is under load: B answers with a cookie, and A's
    /// retransmission 5 s later carries it as mac2 and completes the handshake, still under load.
    func testPeerHandshakesThroughACookieWhileUnderLoad() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock)
        pair.network.isRecording = true
        pair.start()
        defer { pair.stop() }
        let (a, b) = (pair.a, pair.b)
        let stranger = Endpoint(address: IPAddress("203.0.113.9")!, port: 40404)
        let junkIdentity = StaticIdentity(privateKey: X25519.generatePrivateKey())
        let junkKeys = PeerKeys(identity: junkIdentity, remoteStatic: b.identity.publicKey, presharedKey: nil)
        /// Puts B under load (until one second past the fake clock's present) and waits until it says so.
        func overload() {
            let repliesBefore = b.counters[.txCookieReplies]
            var burst: [([UInt8], Endpoint)] = []
            var generator = CookieGenerator()
            for _ in 0..<4 * ProtocolLimits.underLoadQueueLength {
                var m = Wire.message(type: 1, size: 4) + SecureRandom.bytes(MessageLayout.initiationSize - 4)
                generator.addMacs(&m, peer: junkKeys, now: clock.now())
                burst.append((m, stranger))
            }
            pair.bindB.inject(burst)
            XCTAssertTrue(waitUntil { b.counters[.txCookieReplies] > repliesBefore }, "B did not go under load")
        }
        func initiationsFromA() -> [[UInt8]] {
            pair.network.recorded.filter { $0.from == pair.endpointA && $0.bytes.first == 1 }.map(\.bytes)
        }

        overload()
        pair.tunA.inject([DevicePair.packet(1)])
        XCTAssertTrue(waitUntil { a.counters[.rxCookieReplies] == 1 }, "A got no cookie reply")
        XCTAssertEqual(a.counters[.rxDropBadCookie], 0, "A could not open B's cookie reply")
        XCTAssertEqual(b.counters[.rxHandshakeInitiations] - b.counters[.rxDropBadInitiation], 0,
                       "A's first initiation got past the load check without a cookie")

        // A retransmits REKEY_TIMEOUT (+ up to 333 ms jitter) later. Overload B again just before, so it is
        // still under load when the retransmission arrives.
        clock.advance(nanoseconds: 4_500 * ProtocolLimits.millisecond)
        overload()
        clock.advance(nanoseconds: 900 * ProtocolLimits.millisecond)
        a.kickControl()
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(1)])
        XCTAssertEqual(a.counters[.handshakesCompleted], 1)
        XCTAssertEqual(a.counters[.txHandshakeInitiations], 2)
        XCTAssertEqual(a.counters[.rxCookieReplies], 1)
        XCTAssertEqual(b.counters[.rxDropRateLimited], 0)
        XCTAssertEqual(b.counters[.rxDropBadMac2], b.counters[.txCookieReplies], "every cookie reply answers a drop")
        let sent = initiationsFromA()
        let mac2 = MessageLayout.mac2Offset(messageSize: MessageLayout.initiationSize)
        XCTAssertEqual(sent.count, 2)
        XCTAssertTrue(sent.first.map { $0[mac2...].allSatisfy { $0 == 0 } } ?? false, "first initiation had a mac2")
        XCTAssertFalse(sent.last.map { $0[mac2...].allSatisfy { $0 == 0 } } ?? true, "retransmission lacks mac2")
        pair.tunB.inject([DevicePair.packet(2, fromA: false)])
        XCTAssertEqual(pair.tunA.collect(atLeast: 1), [DevicePair.packet(2, fromA: false)])
    }

    func testRandomFloodWhileDataFlows() throws {
        let f = try HostileFixture()
        defer { f.stop() }
        f.pair.network.isRecording = false
        let (a, b) = (f.pair.a, f.pair.b)
        let liveAtB = try XCTUnwrap(f.currentKeypair(b)).localIndex
        let liveAtA = try XCTUnwrap(f.currentKeypair(a)).localIndex
        let keysBefore = (f.currentKeypair(a), f.currentKeypair(b))
        let indicesBefore = (a.indices.count, b.indices.count)
        let before = (f.snapshot(a), f.snapshot(b))
        var rng = SeededRandom(seed: 0x5eed_0f_f100d)
        var expectA = FloodTally(), expectB = FloodTally()
        var sentAB: [[UInt8]] = [], sentBA: [[UInt8]] = []

        // 40 rounds of 500 datagrams to B and 125 to A, each round followed by a few real packets each way.
        for round in 0..<40 {
            var toB: [([UInt8], Endpoint)] = [], toA: [([UInt8], Endpoint)] = []
            for i in 0..<625 {
                let toPeerB = i < 500
                let d = FloodTally.garbage(&rng, liveIndex: toPeerB ? liveAtB : liveAtA)
                let source = rng.next() % 4 == 0 ? (toPeerB ? f.pair.endpointA : f.pair.endpointB)
                    : Self.randomEndpoint(&rng)
                if toPeerB {
                    expectB.add(d, liveIndex: liveAtB)
                    toB.append((d, source))
                } else {
                    expectA.add(d, liveIndex: liveAtA)
                    toA.append((d, source))
                }
            }
            f.pair.bindB.inject(toB)
            f.pair.bindA.inject(toA)
            let ab = (0..<5).map { DevicePair.packet(round * 5 + $0, size: 40 + 29 * $0) }
            let ba = (0..<5).map { DevicePair.packet(round * 5 + $0, fromA: false, size: 1300 - 200 * $0) }
            f.pair.tunA.inject(ab)
            f.pair.tunB.inject(ba)
            sentAB += ab
            sentBA += ba
        }
        XCTAssertEqual(expectB.total, 20_000)

        // Then a clean run of 100 packets each way: everything sent arrives once, in order.
        let ab = (200..<300).map { DevicePair.packet($0) }
        let ba = (200..<300).map { DevicePair.packet($0, fromA: false) }
        f.pair.tunA.inject(ab)
        f.pair.tunB.inject(ba)
        sentAB += ab
        sentBA += ba
        let gotB = f.pair.tunB.collect(atLeast: sentAB.count, timeoutNanoseconds: 30_000_000_000)
        let gotA = f.pair.tunA.collect(atLeast: sentBA.count, timeoutNanoseconds: 30_000_000_000)
        XCTAssertEqual(gotB.count, sentAB.count)
        XCTAssertTrue(gotB == sentAB, "A→B packets lost, duplicated or reordered under the flood")
        XCTAssertEqual(gotA.count, sentBA.count)
        XCTAssertTrue(gotA == sentBA, "B→A packets lost, duplicated or reordered under the flood")

        // Every garbage datagram is dropped exactly once, under the reason its bytes call for.
        let settled = waitUntil(seconds: 20) {
            a.counters.totalDrops - before.0.drops == UInt64(expectA.total)
                && b.counters.totalDrops - before.1.drops == UInt64(expectB.total)
                && a.counters[.rxPackets] - before.0[.rxPackets]! == UInt64(sentBA.count)
                && b.counters[.rxPackets] - before.1[.rxPackets]! == UInt64(sentAB.count)
        }
        XCTAssertTrue(settled, "drops or deliveries not all counted within 20 s")
        let after = (f.snapshot(a), f.snapshot(b))
        XCTAssertEqual(a.counters.totalDrops - before.0.drops, UInt64(expectA.total))
        XCTAssertEqual(b.counters.totalDrops - before.1.drops, UInt64(expectB.total))
        expectA.assertMatches("flood to A", before: before.0, after: after.0, delivered: sentBA.count)
        expectB.assertMatches("flood to B", before: before.1, after: after.1, delivered: sentAB.count)

        XCTAssertTrue(f.currentKeypair(a) === keysBefore.0 && f.currentKeypair(b) === keysBefore.1)
        XCTAssertEqual(f.endpoint(b), f.pair.endpointA)
        XCTAssertEqual(f.endpoint(a), f.pair.endpointB)
        XCTAssertEqual(a.indices.count, indicesBefore.0)
        XCTAssertEqual(b.indices.count, indicesBefore.1)
        f.assertTunnelWorks("after the flood")
    }

    static func randomEndpoint(_ rng: inout SeededRandom) -> Endpoint {
        let port = UInt16(truncatingIfNeeded: rng.next())
        if rng.next() % 3 == 0 {
            return Endpoint(address: .v6(0x2001_0db8_0000_0000 | rng.next() >> 32, rng.next()), port: port)
        }
        return Endpoint(address: .v4(UInt32(truncatingIfNeeded: rng.next())), port: port)
    }
}

private extension Dictionary where Key == Counter, Value == UInt64 {
    var drops: UInt64 { filter { $0.key.name.contains("_drop_") }.values.reduce(0, +) }
}

/// Random datagrams and, for each, the drop reason the protocol's rules call for (worked out from the wire format
/// here, independently of the receive path).
struct FloodTally {
    var total = 0
    var short = 0
    var badType = 0
    var badSize = 0
    /// Transport-sized, type 4, to an index the device does not have.
    var unknownIndex = 0
    /// Transport to the live index with a counter the device may not accept at all.
    var counterTooHigh = 0
    /// Transport to the live index that cannot authenticate.
    var forged = 0
    /// Initiation- or response-sized (mac1 cannot be right).
    var handshakeSized = 0
    /// Cookie-reply-sized (its index is unknown, or its tag cannot be right).
    var cookieSized = 0

    static func randomBytes(_ rng: inout SeededRandom, _ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count + 8)
        while out.count < count {
            withUnsafeBytes(of: rng.next()) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(count))
    }

    /// Random size (0…1600) and contents, with the type word and receiver index often made to look right.
    static func garbage(_ rng: inout SeededRandom, liveIndex: UInt32) -> [UInt8] {
        var size = Int(rng.next() % 1601)
        let kind = rng.next() % 10
        let type = UInt32(1 + rng.next() % 4)
        switch kind {
        case 6: size = [MessageLayout.initiationSize, MessageLayout.responseSize,
                        MessageLayout.cookieReplySize][Int(type - 1) % 3]
        case 7, 8: size = max(size, MessageLayout.transportMinimumSize)
        case 9: size = Int(rng.next() % 41)
        default: break
        }
        var d = randomBytes(&rng, size)
        guard size >= 4 else { return d }
        switch kind {
        case 3, 4, 5, 9: Wire.putLE32(&d, 0, type)
        case 6: Wire.putLE32(&d, 0, type == 4 ? 3 : type)
        case 7, 8:
            Wire.putLE32(&d, 0, MessageType.transport.rawValue)
            Wire.putLE32(&d, 4, liveIndex)
            if kind == 8 && rng.next() % 8 == 0 { Wire.putLE64(&d, 8, UInt64.max - rng.next() % 16384) }
        default: break
        }
        if Wire.le32(d, 0) == MessageType.cookieReply.rawValue && size >= 8 && rng.next() % 2 == 0 {
            Wire.putLE32(&d, 4, liveIndex)
        }
        return d
    }

    mutating func add(_ d: [UInt8], liveIndex: UInt32) {
        total += 1
        guard d.count >= 4 else { short += 1; return }
        switch Wire.le32(d, 0) {
        case 1: if d.count == MessageLayout.initiationSize { handshakeSized += 1 } else { badSize += 1 }
        case 2: if d.count == MessageLayout.responseSize { handshakeSized += 1 } else { badSize += 1 }
        case 3: if d.count == MessageLayout.cookieReplySize { cookieSized += 1 } else { badSize += 1 }
        case 4:
            if d.count < MessageLayout.transportMinimumSize {
                badSize += 1
            } else if Wire.le32(d, 4) != liveIndex {
                unknownIndex += 1
            } else if (0..<8).reduce(UInt64(0), { $0 | UInt64(d[8 + $1]) << (8 * UInt64($1)) })
                        >= ProtocolLimits.rejectAfterMessages {
                counterTooHigh += 1
            } else {
                forged += 1
            }
        default: badType += 1
        }
    }

    /// Exact where only garbage can move a counter; sums where the outcome depends on the control thread's
    /// load (a full handshake queue drops a message before its mac1 or index is looked at).
    func assertMatches(_ label: String, before: [Counter: UInt64], after: [Counter: UInt64], delivered: Int,
                       file: StaticString = #filePath, line: UInt = #line) {
        assertCounters(label, device: "", before: before, after: after, expects: [
            .delta(.rxDropShort, UInt64(short)),
            .delta(.rxDropBadType, UInt64(badType)),
            .delta(.rxDropBadSize, UInt64(badSize)),
            .delta(.rxDropBadMac, UInt64(forged)),
            .delta(.rxDropReplay, UInt64(counterTooHigh)),
            .sum([.rxDropUnknownIndex, .rxDropBadMac1, .rxDropBadCookie, .rxDropHandshakeQueueFull],
                 UInt64(unknownIndex + handshakeSized + cookieSized)),
        ], extra: [
            .rxPackets: UInt64(delivered),
            .rxCookieReplies: after[.rxCookieReplies]! - before[.rxCookieReplies]!,
        ], file: file, line: line)
        let unknown = after[.rxDropUnknownIndex]! - before[.rxDropUnknownIndex]!
        XCTAssertGreaterThanOrEqual(unknown, UInt64(unknownIndex), "\(label): transport to unknown indices",
                                    file: file, line: line)
        XCTAssertLessThanOrEqual(after[.rxCookieReplies]! - before[.rxCookieReplies]!, UInt64(cookieSized),
                                 "\(label): cookie replies", file: file, line: line)
        XCTAssertGreaterThan(short, 0, "\(label): generator never made a short datagram", file: file, line: line)
        XCTAssertGreaterThan(forged * handshakeSized * cookieSized * counterTooHigh, 0,
                             "\(label): generator missed a class", file: file, line: line)
    }
}
