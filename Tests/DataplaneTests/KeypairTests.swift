// Keypair counters and lifetime, and the previous/current/next rotation of KeypairSlots.
import Crypto
import Synchronization
import XCTest
@testable import Dataplane

private let s = ProtocolLimits.second
private let t0: UInt64 = 1_000 * s
private let R = ProtocolLimits.rejectAfterMessages

/// A keypair named by its local index.
private func keypair(_ index: UInt32, initiator: Bool, createdAt: UInt64 = t0) -> Keypair {
    Keypair(sendKey: SecretKey.random(), receiveKey: SecretKey.random(), localIndex: index, remoteIndex: index + 1000,
            isInitiator: initiator, createdAt: createdAt, peerID: 0)
}

/// previous, current, next by local index.
private func names(_ slots: KeypairSlots) -> [UInt32?] {
    [slots.previous?.localIndex, slots.current?.localIndex, slots.next?.localIndex]
}

final class KeypairTests: XCTestCase {
    // MARK: Slots

    func testInitiatorInstallRotatesCurrentToPrevious() {
        var slots = KeypairSlots()
        XCTAssertEqual(slots.install(keypair(1, initiator: true)).map(\.localIndex), [])
        XCTAssertEqual(names(slots), [nil, 1, nil])
        XCTAssertEqual(slots.install(keypair(2, initiator: true)).map(\.localIndex), [])
        XCTAssertEqual(names(slots), [1, 2, nil])
        XCTAssertEqual(slots.install(keypair(3, initiator: true)).map(\.localIndex), [1])
        XCTAssertEqual(names(slots), [2, 3, nil])
        XCTAssertEqual(slots.all.map(\.localIndex), [2, 3])
    }

    func testResponderInstallWaitsForConfirmation() {
        var slots = KeypairSlots()
        _ = slots.install(keypair(1, initiator: true))
        _ = slots.install(keypair(2, initiator: true))
        let r = keypair(3, initiator: false)
        XCTAssertEqual(slots.install(r).map(\.localIndex), [1], "as in the kernel, previous is retired")
        XCTAssertEqual(names(slots), [nil, 2, 3], "the responder's keypair waits in next")

        XCTAssertNil(slots.confirm(keypair(3, initiator: false)), "only the very keypair in next confirms")
        XCTAssertNil(slots.confirm(slots.current!))
        XCTAssertEqual(names(slots), [nil, 2, 3])

        XCTAssertNil(slots.confirm(r), "nothing left to drop")
        XCTAssertEqual(names(slots), [2, 3, nil])
        XCTAssertNil(slots.confirm(r), "confirming twice does nothing")
        XCTAssertEqual(names(slots), [2, 3, nil])
    }

    func testResponderInstallOnEmptySlots() {
        var slots = KeypairSlots()
        let r = keypair(1, initiator: false)
        XCTAssertEqual(slots.install(r).map(\.localIndex), [])
        XCTAssertEqual(names(slots), [nil, nil, 1])
        XCTAssertNil(slots.confirm(r), "nothing to drop")
        XCTAssertEqual(names(slots), [nil, 1, nil])
    }

    func testSecondResponderInstallReplacesNext() {
        var slots = KeypairSlots()
        _ = slots.install(keypair(1, initiator: true))
        let r1 = keypair(2, initiator: false), r2 = keypair(3, initiator: false)
        XCTAssertEqual(slots.install(r1).map(\.localIndex), [])
        XCTAssertEqual(slots.install(r2).map(\.localIndex), [2])
        XCTAssertEqual(names(slots), [nil, 1, 3])
        XCTAssertNil(slots.confirm(r1), "the replaced keypair no longer confirms")
        XCTAssertNil(slots.confirm(r2))
        XCTAssertEqual(names(slots), [1, 3, nil])
    }

    /// An initiator session completing while a responder session waits unconfirmed: the unconfirmed one becomes
    /// previous (it may still receive), the old current goes.
    func testInitiatorInstallWhileNextExists() {
        var slots = KeypairSlots()
        _ = slots.install(keypair(1, initiator: true))
        _ = slots.install(keypair(2, initiator: true))
        XCTAssertEqual(slots.install(keypair(3, initiator: false)).map(\.localIndex), [1])
        XCTAssertEqual(names(slots), [nil, 2, 3])
        XCTAssertEqual(slots.install(keypair(4, initiator: true)).map(\.localIndex), [2])
        XCTAssertEqual(names(slots), [3, 4, nil])

        var fresh = KeypairSlots()
        _ = fresh.install(keypair(5, initiator: false))
        XCTAssertEqual(fresh.install(keypair(6, initiator: true)).map(\.localIndex), [])
        XCTAssertEqual(names(fresh), [5, 6, nil])
    }

    func testClear() {
        var slots = KeypairSlots()
        _ = slots.install(keypair(1, initiator: true))
        _ = slots.install(keypair(2, initiator: true))
        _ = slots.install(keypair(3, initiator: false))   // retires 1
        XCTAssertEqual(names(slots), [nil, 2, 3])
        XCTAssertEqual(slots.clear().map(\.localIndex), [2, 3])
        XCTAssertEqual(names(slots), [nil, nil, nil])
        XCTAssertEqual(slots.clear().count, 0)
    }

    // MARK: Counters and lifetime

    func testReserveCountersAreConsecutive() {
        let k = keypair(1, initiator: true)
        XCTAssertEqual(k.reserveCounters(1, now: t0), 0)
        XCTAssertEqual(k.reserveCounters(1, now: t0), 1)
        XCTAssertEqual(k.reserveCounters(5, now: t0), 2)
        XCTAssertEqual(k.reserveCounters(128, now: t0), 7)
        XCTAssertEqual(k.reserveCounters(1, now: t0), 135)
        XCTAssertEqual(k.sentCount, 136)
    }

    /// Each case: key age, whether it may still send and receive.
    static let ages: [(UInt64, Bool)] = [
        (0, true),
        (120 * s, true),
        (180 * s - 1, true),
        (180 * s, false),
        (180 * s + 1, false),
        (1_000_000 * s, false),
    ]

    func testKeyAge() {
        XCTAssertEqual(ProtocolLimits.rejectAfterTime, 180 * s)
        for (age, live) in Self.ages {
            let k = keypair(1, initiator: true)
            XCTAssertEqual(k.reserveCounters(1, now: t0 + age) != nil, live, "age \(age)")
            XCTAssertEqual(k.canReceive(now: t0 + age), live, "age \(age)")
        }
    }

    /// Each case: counter before, how many to reserve, the first counter or nil.
    static let limits: [(UInt64, UInt64, UInt64?)] = [
        (R - 1, 1, R - 1),         // the last counter that may be used
        (R - 1, 2, nil),           // the second one would be R
        (R, 1, nil),
        (R + 1, 1, nil),
        (R - 128, 128, R - 128),
        (R - 127, 128, nil),
        (UInt64.max, 1, nil),      // the add wraps to 0, but the reservation started at max
        (UInt64.max - 1, 4, nil),
        (ProtocolLimits.rekeyAfterMessages, 1, ProtocolLimits.rekeyAfterMessages),  // rekey is not refusal
    ]

    func testRejectAfterMessages() {
        XCTAssertEqual(R, 18_446_744_073_709_543_423, "2^64 - 2^13 - 1")
        for (start, count, expected) in Self.limits {
            let k = keypair(1, initiator: true)
            k.setSentCount(start)
            XCTAssertEqual(k.reserveCounters(count, now: t0), expected, "start \(start) count \(count)")
        }
    }

    /// Once a key has refused to send, it keeps refusing: failed reservations must not walk the counter around
    /// past 2^64 back to small, already used nonces.
    func testRefusalIsFinal() {
        let k = keypair(1, initiator: true)
        k.setSentCount(R - 10)
        XCTAssertEqual(k.reserveCounters(10, now: t0), R - 10)
        for attempt in 0..<200 {
            XCTAssertNil(k.reserveCounters(128, now: t0), "attempt \(attempt)")
        }
        XCTAssertNil(k.reserveCounters(1, now: t0))
        XCTAssertGreaterThanOrEqual(k.sentCount, R)
    }
}
