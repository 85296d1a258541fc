// Key rotation on a fake clock: REKEY_AFTER_TIME makes the initiator start a new handshake when it next sends,
// and data keeps flowing across the switch; past REJECT_AFTER_TIME a key is neither used nor accepted.
//
// The control thread wakes at least once a second of real time; `kickControl()` makes it run the timers at once
// after the clock moves. Initiations are sent at most once per REKEY_TIMEOUT (5 s) of the fake clock.
import Crypto
import Dataplane
import Synchronization
import TestSupport
import XCTest

final class RekeyTests: XCTestCase {
    func testRekeyAfterTimeRotatesKeysWithoutLoss() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock, rekeyAfterTime: ProtocolLimits.rekeyAfterTime)
        pair.start()
        defer { pair.stop() }
        try establishAndQuiet(pair, clock)
        let first = (try current(pair.a), try current(pair.b))
        XCTAssertTrue(first.0.isInitiator)

        // Past REKEY_AFTER_TIME (counted from the handshake) but before REJECT_AFTER_TIME: the key still sends,
        // and the first send on it asks for a new handshake.
        waitForNewerHandshakeTimestamp()
        clock.advance(nanoseconds: first.0.createdAt + ProtocolLimits.rekeyAfterTime + ProtocolLimits.second - clock.now())
        var sent: [[UInt8]] = []
        var n = 1
        // Keep packets going while the handshake runs, so some are sealed with each key, then some more.
        let rotated = waitUntil {
            let chunk = (n..<n + 10).map { DevicePair.packet($0, size: 60 + $0 % 900) }
            n += 10
            pair.tunA.inject(chunk)
            sent += chunk
            return pair.a.counters[.handshakesCompleted] == 2 && pair.b.counters[.handshakesCompleted] == 2
        }
        XCTAssertTrue(rotated, "no second handshake within 5 s")
        let tail = (n..<n + 100).map { DevicePair.packet($0) }
        pair.tunA.inject(tail)
        sent += tail
        let got = pair.tunB.collect(atLeast: sent.count, timeoutNanoseconds: 10_000_000_000)
        XCTAssertEqual(got.count, sent.count)
        XCTAssertTrue(got == sent, "packets lost, duplicated or reordered across the key rotation")

        let second = (try current(pair.a), try current(pair.b))
        XCTAssertFalse(second.0 === first.0 || second.1 === first.1, "keys did not rotate")
        XCTAssertTrue(second.0.isInitiator, "A initiated the rekey")
        XCTAssertEqual(second.0.createdAt, clock.now())
        XCTAssertTrue(previous(pair.a) === first.0 && previous(pair.b) === first.1, "old keys kept as previous")
        XCTAssertEqual(pair.a.counters[.txHandshakeInitiations], 2)
        XCTAssertEqual(pair.b.counters[.txHandshakeResponses], 2)

        // Back the other way on the new key.
        let back = (1...100).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(back)
        XCTAssertTrue(pair.tunA.collect(atLeast: back.count) == back)
        XCTAssertEqual(pair.a.counters.totalDrops, 0)
        XCTAssertEqual(pair.b.counters.totalDrops, 0)
        XCTAssertEqual(pair.a.counters[.handshakesCompleted], 2)
        XCTAssertEqual(pair.b.counters[.handshakesCompleted], 2)
    }

    func testKeyIsRefusedAfterRejectAfterTime() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock)
        pair.start()
        defer { pair.stop() }
        try establishAndQuiet(pair, clock)
        let key = try current(pair.a)
        func sealed(_ inner: [UInt8], counter: UInt64) -> [UInt8] {
            Wire.transport(receiver: key.remoteIndex, counter: counter, inner: inner, key: key.sendKey)
        }

        // One second before REJECT_AFTER_TIME the key still works (sealed by hand: A sending it would rekey).
        clock.advance(nanoseconds: key.createdAt + ProtocolLimits.rejectAfterTime - ProtocolLimits.second - clock.now())
        pair.a.kickControl(); pair.b.kickControl()
        let early = DevicePair.packet(1)
        pair.bindB.inject(sealed(early, counter: try XCTUnwrap(key.reserveCounters(1, now: clock.now()))),
                          from: pair.endpointA)
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [early])
        XCTAssertEqual(pair.a.counters[.txHandshakeInitiations], 1, "nothing should have started a handshake")

        // One second after it, the key may not seal, and B refuses what was sealed with it.
        clock.advance(seconds: 2)
        XCTAssertNil(key.reserveCounters(1, now: clock.now()))
        let unused = key.sentCount + 1
        pair.bindB.inject(sealed(DevicePair.packet(2), counter: unused), from: pair.endpointA)
        XCTAssertTrue(waitUntil { pair.b.counters[.rxDropExpiredKey] == 1 })

        // A does not send with it either: its next packet waits for a new handshake and arrives under the new key.
        waitForNewerHandshakeTimestamp()
        let late = DevicePair.packet(3)
        pair.tunA.inject([late])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [late], "only the packet sent after the new handshake arrives")
        XCTAssertTrue(waitUntil { pair.b.counters[.handshakesCompleted] == 2 })
        XCTAssertEqual(pair.a.counters[.handshakesCompleted], 2)
        XCTAssertFalse(try current(pair.a) === key)

        // The expired key now sits in B's previous slot, and is still refused there.
        XCTAssertTrue(previous(pair.b)?.localIndex == key.remoteIndex)
        pair.bindB.inject(sealed(DevicePair.packet(4), counter: unused + 1), from: pair.endpointA)
        XCTAssertTrue(waitUntil { pair.b.counters[.rxDropExpiredKey] == 2 })
        let back = DevicePair.packet(5, fromA: false)
        pair.tunB.inject([back])
        XCTAssertEqual(pair.tunA.collect(atLeast: 1), [back])
        XCTAssertEqual(pair.tunB.collect(atLeast: 0, timeoutNanoseconds: 0), [])
        XCTAssertEqual(pair.b.counters.totalDrops, 2)
        XCTAssertEqual(pair.a.counters.totalDrops, 0)
    }

    /// The responder never rekeys on time, so the initiator also rekeys when it receives on a key older than
    /// REJECT_AFTER_TIME − KEEPALIVE_TIMEOUT − REKEY_TIMEOUT (165 s), once per key.
    func testInitiatorReceivingOnAnAgingKeyRekeys() throws {
        let clock = FakeClock()
        let pair = try DevicePair(clock: clock)
        pair.start()
        defer { pair.stop() }
        try establishAndQuiet(pair, clock)
        let first = try current(pair.a)
        let peerA = pair.a.peers[0]
        let threshold = ProtocolLimits.rejectAfterTime - ProtocolLimits.keepaliveTimeout - ProtocolLimits.rekeyTimeout
        waitForNewerHandshakeTimestamp()

        // Just short of it: B's data arrives and nothing happens (the decision is taken before the TUN write).
        clock.advance(nanoseconds: first.createdAt + threshold - ProtocolLimits.second - clock.now())
        let early = (1...10).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(early)
        XCTAssertTrue(pair.tunA.collect(atLeast: early.count) == early)
        XCTAssertFalse(peerA.lock.withLock { peerA.sentLastMinuteHandshake })

        // Just past it: the next packet received makes A start a handshake, which completes.
        clock.advance(nanoseconds: 2 * ProtocolLimits.second)
        let late = (11...20).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(late)
        XCTAssertTrue(pair.tunA.collect(atLeast: late.count) == late)
        XCTAssertTrue(waitUntil {
            pair.a.counters[.handshakesCompleted] == 2 && pair.b.counters[.handshakesCompleted] == 2
        }, "no second handshake within 5 s")
        XCTAssertFalse(try current(pair.a) === first)
        XCTAssertEqual(pair.a.counters[.txHandshakeInitiations], 2)

        // Data both ways on the new keys.
        let forward = (21...70).map { DevicePair.packet($0) }
        pair.tunA.inject(forward)
        XCTAssertTrue(pair.tunB.collect(atLeast: forward.count) == forward)
        let back = (71...120).map { DevicePair.packet($0, fromA: false) }
        pair.tunB.inject(back)
        XCTAssertTrue(pair.tunA.collect(atLeast: back.count) == back)
        XCTAssertEqual(pair.a.counters.totalDrops, 0)
        XCTAssertEqual(pair.b.counters.totalDrops, 0)
    }

    // MARK: Helpers

    private func current(_ device: Device) throws -> Keypair {
        let peer = device.peers[0]
        return try XCTUnwrap(peer.lock.withLock { peer.keypairs.current })
    }

    private func previous(_ device: Device) -> Keypair? {
        let peer = device.peers[0]
        return peer.lock.withLock { peer.keypairs.previous }
    }

    /// A initiates with one packet; then, 11 s later, B's keepalive (owed 10 s after it received data) reaches
    /// A and cancels A's "no reply, new handshake" timer. Afterwards neither side has a timer due before key
    /// zeroing, so only the test's own traffic moves anything.
    private func establishAndQuiet(_ pair: DevicePair, _ clock: FakeClock) throws {
        pair.tunA.inject([DevicePair.packet(0)])
        XCTAssertEqual(pair.tunB.collect(atLeast: 1), [DevicePair.packet(0)])
        clock.advance(nanoseconds: 11 * ProtocolLimits.second)
        pair.b.kickControl()
        pair.a.kickControl()
        XCTAssertTrue(waitUntil { pair.a.counters[.rxKeepalives] == 1 }, "B's keepalive did not arrive")
        // B counts the keepalive after its send returns, which may be after A has already received it.
        XCTAssertTrue(waitUntil { pair.b.counters[.txKeepalives] == 1 }, "B did not count its keepalive")
        XCTAssertEqual(pair.a.counters[.handshakesCompleted], 1)
    }

    /// Initiations carry a wall-clock TAI64N stamp that moves in steps of 2^24 ns, and a responder refuses one
    /// not newer than the last it accepted. Waits (about 17 ms at most) until an initiation made from now on
    /// is newer than any made before the call.
    private func waitForNewerHandshakeTimestamp() {
        let stamp = TAI64N.now()
        XCTAssertTrue(waitUntil(seconds: 1) { stamp < TAI64N.now() })
    }
}
