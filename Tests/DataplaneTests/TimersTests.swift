// PeerTimers as a table of event sequences: each step is an event, an expiry with the actions it must return,
// or a check of the pending deadlines. Times are plain nanosecond counts.
import XCTest
@testable import Dataplane

private let s = ProtocolLimits.second
private let ms = ProtocolLimits.millisecond
private let t0: UInt64 = 1_000 * s

/// The five deadlines; nil is not pending.
private struct Pending: Equatable {
    var retransmit: UInt64?
    var keepalive: UInt64?
    var newHandshake: UInt64?
    var zeroKeys: UInt64?
    var persistent: UInt64?

    init(retransmit: UInt64? = nil, keepalive: UInt64? = nil, newHandshake: UInt64? = nil, zeroKeys: UInt64? = nil,
         persistent: UInt64? = nil) {
        (self.retransmit, self.keepalive, self.newHandshake) = (retransmit, keepalive, newHandshake)
        (self.zeroKeys, self.persistent) = (zeroKeys, persistent)
    }

    init(_ t: PeerTimers) {
        self.init(retransmit: t.retransmitHandshake, keepalive: t.sendKeepalive, newHandshake: t.newHandshake,
                  zeroKeys: t.zeroKeyMaterial, persistent: t.persistentKeepalive)
    }
}

private enum Step {
    case dataSent(UInt64, jitter: UInt64)
    case dataReceived(UInt64)
    case packetSent
    case packetReceived
    case traversal(UInt64)
    case initiated(UInt64, jitter: UInt64)
    case complete
    case resetAttempts
    case derived(UInt64)
    case stop
    case expire(UInt64, [TimerAction])
    case pending(Pending)
    case next(UInt64?)
    case attempts(Int)
    case needAnother(Bool)
}

/// Each case: name, persistent keepalive interval in seconds, steps.
private let cases: [(String, UInt16, [Step])] = [
    ("nothing pending", 0, [
        .pending(Pending()), .next(nil), .expire(0, []), .expire(UInt64.max, []), .attempts(0),
    ]),
    ("data sent arms a new handshake at 15 s + jitter, once", 0, [
        .dataSent(t0, jitter: 100 * ms),
        .pending(Pending(newHandshake: t0 + 15 * s + 100 * ms)),
        .dataSent(t0 + 1 * s, jitter: 0),
        .dataSent(t0 + 14 * s, jitter: 300 * ms),
        .pending(Pending(newHandshake: t0 + 15 * s + 100 * ms)),
        .expire(t0 + 15 * s + 100 * ms - 1, []),
        .expire(t0 + 15 * s + 100 * ms, [.sendInitiation(retry: false)]),
        .pending(Pending()),
        .expire(t0 + 100 * s, []),
        .dataSent(t0 + 20 * s, jitter: 0),
        .pending(Pending(newHandshake: t0 + 35 * s)),
    ]),
    ("an authenticated packet received cancels the new handshake", 0, [
        .dataSent(t0, jitter: 0),
        .packetReceived,
        .pending(Pending()),
        .expire(t0 + 60 * s, []),
        .dataSent(t0 + 61 * s, jitter: 0),
        .pending(Pending(newHandshake: t0 + 76 * s)),
    ]),
    ("data received arms a keepalive at 10 s", 0, [
        .dataReceived(t0),
        .pending(Pending(keepalive: t0 + 10 * s)),
        .needAnother(false),
        .expire(t0 + 10 * s - 1, []),
        .expire(t0 + 10 * s, [.sendKeepalive]),
        .pending(Pending()),
        .expire(t0 + 30 * s, []),
    ]),
    ("a second data received asks for another keepalive after the first", 0, [
        .dataReceived(t0),
        .dataReceived(t0 + 3 * s),
        .needAnother(true),
        .pending(Pending(keepalive: t0 + 10 * s)),
        .expire(t0 + 10 * s, [.sendKeepalive]),
        .needAnother(false),
        .pending(Pending(keepalive: t0 + 20 * s)),
        .expire(t0 + 20 * s, [.sendKeepalive]),
        .pending(Pending()),
    ]),
    ("an authenticated packet sent cancels the keepalive", 0, [
        .dataReceived(t0),
        .packetSent,
        .pending(Pending()),
        .expire(t0 + 10 * s, []),
        .dataReceived(t0 + 11 * s),
        .pending(Pending(keepalive: t0 + 21 * s)),
    ]),
    ("sending and receiving cancel only their own timer", 0, [
        .dataSent(t0, jitter: 0),
        .dataReceived(t0),
        .packetSent,
        .pending(Pending(newHandshake: t0 + 15 * s)),
        .dataReceived(t0 + 1 * s),
        .packetReceived,
        .pending(Pending(keepalive: t0 + 11 * s)),
    ]),
    ("handshake initiated arms a retransmission at 5 s + jitter", 0, [
        .initiated(t0, jitter: 250 * ms),
        .pending(Pending(retransmit: t0 + 5 * s + 250 * ms)),
        .expire(t0 + 5 * s, []),
        .expire(t0 + 5 * s + 250 * ms, [.sendInitiation(retry: true)]),
        .attempts(1),
        .pending(Pending()),
        .initiated(t0 + 5 * s + 250 * ms, jitter: 0),
        .expire(t0 + 10 * s + 250 * ms, [.sendInitiation(retry: true)]),
        .attempts(2),
    ]),
    ("a new initiation moves the retransmission", 0, [
        .initiated(t0, jitter: 0),
        .initiated(t0 + 2 * s, jitter: 333 * ms),
        .pending(Pending(retransmit: t0 + 7 * s + 333 * ms)),
        .expire(t0 + 5 * s, []),
    ]),
    ("handshake complete cancels the retransmission and resets the attempts", 0, [
        .initiated(t0, jitter: 0),
        .expire(t0 + 5 * s, [.sendInitiation(retry: true)]),
        .initiated(t0 + 5 * s, jitter: 0),
        .expire(t0 + 10 * s, [.sendInitiation(retry: true)]),
        .attempts(2),
        .initiated(t0 + 10 * s, jitter: 0),
        .complete,
        .attempts(0),
        .pending(Pending()),
        .expire(t0 + 100 * s, []),
    ]),
    ("resetAttempts keeps the pending retransmission", 0, [
        .initiated(t0, jitter: 0),
        .expire(t0 + 5 * s, [.sendInitiation(retry: true)]),
        .initiated(t0 + 5 * s, jitter: 0),
        .resetAttempts,
        .attempts(0),
        .pending(Pending(retransmit: t0 + 10 * s)),
    ]),
    ("session derived arms key zeroing at 540 s, and a new session moves it", 0, [
        .derived(t0),
        .pending(Pending(zeroKeys: t0 + 540 * s)),
        .derived(t0 + 100 * s),
        .pending(Pending(zeroKeys: t0 + 640 * s)),
        .expire(t0 + 540 * s, []),
        .expire(t0 + 640 * s, [.zeroKeys]),
        .pending(Pending()),
    ]),
    ("persistent keepalive every 25 s after the last traversal", 25, [
        .pending(Pending()),
        .traversal(t0),
        .pending(Pending(persistent: t0 + 25 * s)),
        .traversal(t0 + 10 * s),
        .pending(Pending(persistent: t0 + 35 * s)),
        .expire(t0 + 25 * s, []),
        .expire(t0 + 35 * s, [.sendKeepalive]),
        .pending(Pending()),
        .traversal(t0 + 35 * s),
        .expire(t0 + 60 * s, [.sendKeepalive]),
    ]),
    ("persistent keepalive off at 0", 0, [
        .traversal(t0),
        .pending(Pending()),
        .expire(t0 + 1_000 * s, []),
    ]),
    ("persistent and ordinary keepalive due together send one keepalive", 10, [
        .dataReceived(t0),
        .traversal(t0),
        .pending(Pending(keepalive: t0 + 10 * s, persistent: t0 + 10 * s)),
        .expire(t0 + 10 * s, [.sendKeepalive]),
        .pending(Pending()),
    ]),
    ("nextDeadline is the earliest pending deadline", 25, [
        .next(nil),
        .derived(t0),
        .next(t0 + 540 * s),
        .traversal(t0),
        .next(t0 + 25 * s),
        .dataSent(t0, jitter: 0),
        .next(t0 + 15 * s),
        .dataReceived(t0 + 1 * s),
        .next(t0 + 11 * s),
        .initiated(t0 + 2 * s, jitter: 0),
        .next(t0 + 7 * s),
        .expire(t0 + 7 * s, [.sendInitiation(retry: true)]),
        .next(t0 + 11 * s),
        .expire(t0 + 11 * s, [.sendKeepalive]),
        .next(t0 + 15 * s),
        .packetReceived,
        .next(t0 + 25 * s),
        .stop,
        .next(nil),
    ]),
    ("everything due at once fires in a fixed order", 5, [
        .initiated(t0, jitter: 0),
        .dataReceived(t0),
        .dataSent(t0, jitter: 0),
        .derived(t0),
        .traversal(t0),
        .expire(t0 + 1_000 * s,
                [.sendInitiation(retry: true), .sendKeepalive, .sendInitiation(retry: false), .zeroKeys]),
        .pending(Pending()),
    ]),
    ("stop cancels everything", 25, [
        .initiated(t0, jitter: 0),
        .expire(t0 + 5 * s, [.sendInitiation(retry: true)]),
        .initiated(t0 + 5 * s, jitter: 0),
        .dataReceived(t0),
        .dataReceived(t0),
        .dataSent(t0, jitter: 0),
        .derived(t0),
        .traversal(t0),
        .stop,
        .pending(Pending()),
        .attempts(0),
        .needAnother(false),
        .expire(t0 + 1_000 * s, []),
    ]),
]

final class TimersTests: XCTestCase {
    func testSequences() {
        for (name, interval, steps) in cases {
            var timers = PeerTimers(persistentKeepaliveInterval: interval)
            for (n, step) in steps.enumerated() {
                run(step, on: &timers, "\(name), step \(n)")
            }
        }
    }

    /// 18 retransmissions (maxTimerHandshakes) are sent; the expiry after them gives up, arms key zeroing and
    /// cancels the keepalive.
    func testGiveUpAfterMaxRetries() {
        XCTAssertEqual(ProtocolLimits.maxTimerHandshakes, 18)
        var timers = PeerTimers()
        var t = t0
        timers.handshakeInitiated(now: t, jitter: 0)
        // Like the kernel: retries while attempts ≤ MAX_TIMER_HANDSHAKES, so MAX + 1 retries (MAX + 2 initiations).
        for attempt in 1...(ProtocolLimits.maxTimerHandshakes + 1) {
            t += 5 * s
            XCTAssertEqual(timers.expire(now: t), [.sendInitiation(retry: true)], "retry \(attempt)")
            XCTAssertEqual(timers.handshakeAttempts, attempt)
            timers.handshakeInitiated(now: t, jitter: 0)   // as the control thread does after each initiation
        }
        timers.dataReceived(now: t - 1 * s)
        t += 5 * s
        XCTAssertEqual(timers.expire(now: t), [.giveUp])
        XCTAssertEqual(Pending(timers), Pending(zeroKeys: t + 540 * s))
        XCTAssertEqual(timers.handshakeAttempts, 0)
        XCTAssertEqual(timers.expire(now: t + 539 * s), [])
        XCTAssertEqual(timers.expire(now: t + 540 * s), [.zeroKeys])
    }

    /// Giving up keeps a key-zeroing deadline that is already pending.
    func testGiveUpKeepsPendingZeroing() {
        var timers = PeerTimers()
        timers.sessionDerived(now: t0)
        var t = t0
        timers.handshakeInitiated(now: t, jitter: 0)
        for _ in 1...(ProtocolLimits.maxTimerHandshakes + 1) {
            t += 5 * s
            XCTAssertEqual(timers.expire(now: t), [.sendInitiation(retry: true)])
            timers.handshakeInitiated(now: t, jitter: 0)
        }
        t += 5 * s
        XCTAssertEqual(timers.expire(now: t), [.giveUp])
        XCTAssertEqual(timers.zeroKeyMaterial, t0 + 540 * s)
    }

    /// Jitter is added as given, up to its maximum.
    func testJitterBounds() {
        for jitter in [0, 1, ProtocolLimits.rekeyTimeoutJitterMax] {
            var timers = PeerTimers()
            timers.handshakeInitiated(now: t0, jitter: jitter)
            timers.dataSent(now: t0, jitter: jitter)
            XCTAssertEqual(timers.retransmitHandshake, t0 + ProtocolLimits.rekeyTimeout + jitter)
            XCTAssertEqual(timers.newHandshake,
                           t0 + ProtocolLimits.keepaliveTimeout + ProtocolLimits.rekeyTimeout + jitter)
        }
    }

    private func run(_ step: Step, on t: inout PeerTimers, _ what: String) {
        switch step {
        case .dataSent(let now, let jitter): t.dataSent(now: now, jitter: jitter)
        case .dataReceived(let now): t.dataReceived(now: now)
        case .packetSent: t.anyAuthenticatedPacketSent()
        case .packetReceived: t.anyAuthenticatedPacketReceived()
        case .traversal(let now): t.anyAuthenticatedPacketTraversal(now: now)
        case .initiated(let now, let jitter): t.handshakeInitiated(now: now, jitter: jitter)
        case .complete: t.handshakeComplete()
        case .resetAttempts: t.resetAttempts()
        case .derived(let now): t.sessionDerived(now: now)
        case .stop: t.stop()
        case .expire(let now, let actions): XCTAssertEqual(t.expire(now: now), actions, what)
        case .pending(let p): XCTAssertEqual(Pending(t), p, what)
        case .next(let deadline): XCTAssertEqual(t.nextDeadline, deadline, what)
        case .attempts(let n): XCTAssertEqual(t.handshakeAttempts, n, what)
        case .needAnother(let b): XCTAssertEqual(t.needAnotherKeepalive, b, what)
        }
    }

    /// Timer jitter: whole milliseconds in 0 ..< 333 ms, spread over the range, and a different sequence per seed.
    func testTimerJitterRangeAndSpread() {
        let ms = ProtocolLimits.millisecond
        for seed: UInt64 in [0, 1, 0xdead_beef, .max] {
            let jitter = TimerJitter(seed: seed)
            var seen = Set<UInt64>()
            var low = 0
            for _ in 0..<20_000 {
                let j = jitter.next()
                XCTAssertLessThan(j, ProtocolLimits.rekeyTimeoutJitterMax, "seed \(seed)")
                XCTAssertEqual(j % ms, 0, "seed \(seed): whole milliseconds")
                seen.insert(j / ms)
                if j < ProtocolLimits.rekeyTimeoutJitterMax / 2 { low += 1 }
            }
            XCTAssertEqual(seen.count, 333, "seed \(seed): every millisecond value drawn")
            XCTAssertEqual(Double(low) / 20_000, 0.5, accuracy: 0.03, "seed \(seed): as many below the middle as above")
        }
        let a = TimerJitter(seed: 1), b = TimerJitter(seed: 2)
        XCTAssertNotEqual((0..<16).map { _ in a.next() }, (0..<16).map { _ in b.next() })
    }
}
