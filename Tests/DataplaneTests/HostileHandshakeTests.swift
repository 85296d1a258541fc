// Hostile input while a handshake is half done: forgeries aimed at the initiator's pending handshake index, and
// at the responder's unconfirmed session, must be refused without disturbing the genuine exchange that follows.
import Crypto
import Dataplane
import TestSupport
import XCTest

final class HostileHandshakeTests: XCTestCase {
    /// Only A runs at first, so its initiation waits unread in B's socket while forged answers reach A. Forging
    /// a response's mac1 takes nothing but A's public key; the receiver index is visible in A's initiation.
    func testForgedAnswersDoNotDerailAPendingHandshake() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock)
        pair.network.isRecording = true
        pair.a.start()
        defer { pair.stop() }
        pair.tunA.inject([DevicePair.packet(1)])
        XCTAssertTrue(waitUntil { pair.network.recorded.contains { $0.bytes.first == 1 } })
        let initiation = try XCTUnwrap(pair.network.recorded.first { $0.bytes.first == 1 }).bytes
        let pending = Wire.le32(initiation, 4)
        guard case .handshake? = pair.a.indices.lookup(pending) else { return XCTFail("no pending handshake index") }

        let forger = StaticIdentity(privateKey: X25519.generatePrivateKey())
        let keysForA = PeerKeys(identity: forger, remoteStatic: pair.a.identity.publicKey, presharedKey: nil)
        func response(ephemeral: [UInt8]) -> [UInt8] {
            var m = Wire.message(type: 2, size: 4) + SecureRandom.bytes(MessageLayout.responseSize - 4)
            Wire.putLE32(&m, 8, pending)
            m.replaceSubrange(12..<44, with: ephemeral)
            var generator = CookieGenerator()
            generator.addMacs(&m, peer: keysForA, now: clock.now())
            return m
        }
        var cookie = Wire.message(type: 3, size: 4) + SecureRandom.bytes(MessageLayout.cookieReplySize - 4)
        Wire.putLE32(&cookie, 4, pending)
        let forgeries = [
            response(ephemeral: X25519.publicKey(for: X25519.generatePrivateKey()).bytes),
            response(ephemeral: [UInt8](repeating: 0, count: 32)),
            Wire.flipped(response(ephemeral: SecureRandom.bytes(32)), byte: 50),
            cookie,
        ]
        let before = Dictionary(uniqueKeysWithValues: pair.a.counters.snapshot())
        for source in [pair.endpointB, Endpoint(address: IPAddress("203.0.113.9")!, port: 51821)] {
            for m in forgeries { pair.bindA.inject(m, from: source) }
        }
        let expects: [Expect] = [.delta(.rxHandshakeResponses, 4), .delta(.rxDropBadResponse, 4),
                                 .delta(.rxDropBadMac1, 2), .delta(.rxCookieReplies, 2), .delta(.rxDropBadCookie, 2)]
        XCTAssertTrue(waitUntil {
            let now = Dictionary(uniqueKeysWithValues: pair.a.counters.snapshot())
            return expects.allSatisfy { $0.reached(before, now) }
        })
        assertCounters("forged answers", device: "A", before: before,
                       after: Dictionary(uniqueKeysWithValues: pair.a.counters.snapshot()), expects: expects)
        guard case .handshake? = pair.a.indices.lookup(pending) else { return XCTFail("pending handshake lost") }

        // B comes up, reads the genuine initiation, and its response completes the handshake at once (the fake
        // clock is frozen, so A would never retransmit: the first initiation must still be good).
        pair.b.start()
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(1)])
        XCTAssertEqual(pair.a.counters[.handshakesCompleted], 1)
        XCTAssertEqual(pair.a.counters[.txHandshakeInitiations], 1)
        let peer = pair.a.peers[0]
        XCTAssertEqual(peer.lock.withLock { peer.endpoint }, pair.endpointB)
        pair.tunB.inject([DevicePair.packet(2, fromA: false)])
        XCTAssertEqual(pair.tunA.collect(atLeast: 1), [DevicePair.packet(2, fromA: false)])
    }

    /// The test plays A itself (it holds A's private key) with A's device down, so B's new session stays
    /// unconfirmed for as long as the test likes. Nothing but an authentic packet may confirm it.
    func testForgedPacketsCannotConfirmAPendingSession() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock)
        pair.network.isRecording = true
        pair.b.start()
        defer { pair.stop() }
        let keysForB = PeerKeys(identity: pair.a.identity, remoteStatic: pair.b.identity.publicKey, presharedKey: nil)
        var handshake = Handshake()
        var initiation = try XCTUnwrap(Noise.createInitiation(identity: pair.a.identity, peer: keysForB,
                                                              handshake: &handshake, localIndex: 0x000a_11ce,
                                                              timestamp: TAI64N.now()))
        var generator = CookieGenerator()
        generator.addMacs(&initiation, peer: keysForB, now: clock.now())
        pair.bindB.inject(initiation, from: pair.endpointA)
        XCTAssertTrue(waitUntil { pair.network.recorded.contains { $0.bytes.first == 2 } })
        let response = try XCTUnwrap(pair.network.recorded.first { $0.bytes.first == 2 }).bytes
        XCTAssertTrue(Noise.consumeResponse(response, identity: pair.a.identity, peer: keysForB, handshake: &handshake))
        let session = try XCTUnwrap(Noise.beginSession(handshake: &handshake, now: clock.now(), peerID: 0))

        let peer = pair.b.peers[0]
        let pendingAtB = try XCTUnwrap(peer.lock.withLock { peer.keypairs.next })
        XCTAssertNil(peer.lock.withLock { peer.keypairs.current })
        XCTAssertEqual(pendingAtB.localIndex, session.remoteIndex)

        let index = session.remoteIndex
        let genuine5 = Wire.transport(receiver: index, counter: 5, inner: DevicePair.packet(5), key: session.sendKey)
        let forgeries = [
            Wire.transport(receiver: index, counter: 0, inner: DevicePair.packet(0), key: .random()),
            Wire.unsealedTransport(receiver: index, counter: 0, bodyLength: MessageLayout.tagSize),
            Wire.flipped(genuine5, byte: 30),
            Wire.flipped(genuine5, byte: genuine5.count - 1),
            Wire.transport(receiver: index, counter: ProtocolLimits.rejectAfterMessages, inner: DevicePair.packet(6),
                           key: session.sendKey),
        ]
        let before = Dictionary(uniqueKeysWithValues: pair.b.counters.snapshot())
        for m in forgeries { pair.bindB.inject(m, from: Endpoint(address: IPAddress("203.0.113.9")!, port: 9)) }
        let expects: [Expect] = [.delta(.rxDropBadMac, 4), .delta(.rxDropReplay, 1)]
        XCTAssertTrue(waitUntil {
            let now = Dictionary(uniqueKeysWithValues: pair.b.counters.snapshot())
            return expects.allSatisfy { $0.reached(before, now) }
        })
        // Bad MACs are counted by the last stage, so every forgery has been fully handled by now.
        assertCounters("forged first packets", device: "B", before: before,
                       after: Dictionary(uniqueKeysWithValues: pair.b.counters.snapshot()), expects: expects)
        XCTAssertTrue(peer.lock.withLock { peer.keypairs.next } === pendingAtB, "a forgery touched the pending session")
        XCTAssertNil(peer.lock.withLock { peer.keypairs.current }, "a forgery confirmed the session")
        XCTAssertEqual(peer.lock.withLock { peer.endpoint }, pair.endpointA, "a forgery moved the endpoint")
        XCTAssertEqual(pair.tunB.collect(atLeast: 0, timeoutNanoseconds: 0), [])

        // The genuine packet (the one the forgeries were cut from) confirms it and is delivered.
        pair.bindB.inject(genuine5, from: pair.endpointA)
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(5)])
        XCTAssertTrue(waitUntil { pair.b.counters[.handshakesCompleted] == 1 })
        XCTAssertTrue(peer.lock.withLock { peer.keypairs.current } === pendingAtB)

        // B now answers under the confirmed key, and what it sends opens with the test's receive key.
        let reply = DevicePair.packet(9, fromA: false)
        pair.tunB.inject([reply])
        XCTAssertTrue(waitUntil { pair.network.recorded.contains { $0.bytes.first == 4 && $0.to == pair.endpointA } })
        var sealed = try XCTUnwrap(pair.network.recorded.first { $0.bytes.first == 4 && $0.to == pair.endpointA }).bytes
        XCTAssertEqual(Wire.le32(sealed, 4), session.localIndex)
        let counter = (0..<8).reduce(UInt64(0)) { $0 | UInt64(sealed[8 + $1]) << (8 * UInt64($1)) }
        let opened = sealed.withUnsafeMutableBytes { b in
            session.receiveKey.withUnsafeBytes { k in
                ChaChaPoly.open(key: k.baseAddress!, counter: counter, buffer: b.baseAddress! + 16,
                                length: b.count - 16, ad: nil)
            }
        }
        XCTAssertTrue(opened)
        XCTAssertEqual(Array(sealed[16..<16 + reply.count]), reply)
    }
}
