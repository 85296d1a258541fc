// CoDel state machine against Linux semantics, on a fake clock (plain UInt64 nanoseconds).
import XCTest
@testable import Dataplane

/// A FIFO for CoDel tests. `backlogBytes` is the bytes left behind the head, as the scheduler passes it.
struct TestFIFO: CoDelQueue {
    var packets: [CoDelPacket] = []
    var head = 0
    var backlogBytes: UInt64 = 0
    var dropped: [UInt32] = []

    /// `count` packets of `length` bytes, all enqueued at `time`.
    init(count: Int, length: UInt32 = 1000, time: UInt64, ecn: Bool = false) {
        for i in 0..<count {
            packets.append(CoDelPacket(handle: UInt32(i), length: length, enqueueTime: time, ecnCapable: ecn))
        }
        backlogBytes = UInt64(count) * UInt64(length)
    }

    var remaining: Int { packets.count - head }

    mutating func popHead() -> CoDelPacket? {
        guard head < packets.count else { return nil }
        let p = packets[head]
        head += 1
        backlogBytes -= UInt64(p.length)
        return p
    }

    mutating func drop(_ packet: CoDelPacket) { dropped.append(packet.handle) }
}

final class CoDelTests: XCTestCase {
    static let ms: UInt64 = 1_000_000
    static let interval = 100 * ms
    static let target = 5 * ms
    static let t0: UInt64 = 1_000_000 * ms   // 1000 s: well clear of 0, which means "not above"
    static let params = CoDelParameters(target: target, interval: interval, mtu: 1420, ecn: false)

    /// One dequeue from a standing queue: `depth` packets whose sojourn is `sojourn` at `now`.
    @discardableResult
    static func standing(_ s: inout CoDelState, now: UInt64, sojourn: UInt64, depth: Int = 100,
                         ecn: Bool = false, params: CoDelParameters = params) -> CoDelDequeueResult {
        var q = TestFIFO(count: depth, time: now - sojourn, ecn: ecn)
        let r = s.dequeue(queue: &q, now: now, params: params)
        XCTAssertEqual(q.dropped.count, r.drops)
        return r
    }

    func testDefaults() {
        let p = CoDelParameters()
        XCTAssertEqual(p.target, 5_000_000)
        XCTAssertEqual(p.interval, 100_000_000)
        XCTAssertTrue(p.ecn)
        XCTAssertEqual(p.maxDropsPerDequeue, 256)
        XCTAssertEqual(CoDelState(), CoDelState(), "all zero initially")
        XCTAssertLessThanOrEqual(MemoryLayout<CoDelState>.size, 40)
    }

    /// Sojourn below target never drops, however long it lasts and however deep the queue.
    func testNoDropBelowTarget() {
        for sojourn in [0, 1 * Self.ms, 4 * Self.ms, Self.target - 1] {
            var s = CoDelState()
            var drops = 0
            for i in 0..<2000 {   // 2 s at 1 ms
                drops += Self.standing(&s, now: Self.t0 + UInt64(i) * Self.ms, sojourn: sojourn, depth: 1000).drops
            }
            XCTAssertEqual(drops, 0, "sojourn \(sojourn)")
            XCTAssertFalse(s.dropping)
            XCTAssertEqual(s.firstAboveTime, 0)
            XCTAssertEqual(s.lastSojourn, sojourn)
        }
    }

    /// With at most one MTU queued behind the head, an old packet is not dropped.
    func testNoDropWithAtMostOneMTUQueued() {
        // (packets, length, drops expected?) — the backlog tested is the bytes behind the head.
        let cases: [(Int, UInt32, Bool)] = [
            (1, 1400, false),    // nothing behind the head
            (2, 1420, false),    // exactly one MTU behind
            (3, 710, false),     // 1420 behind
            (2, 1421, true),     // one byte over
            (3, 711, true),
        ]
        for (n, length, expectDrops) in cases {
            var s = CoDelState()
            var drops = 0
            for i in 0..<500 {
                var q = TestFIFO(count: n, length: length, time: Self.t0)   // sojourn grows to 500 ms
                drops += s.dequeue(queue: &q, now: Self.t0 + 10 * Self.ms + UInt64(i) * Self.ms,
                                   params: Self.params).drops
            }
            XCTAssertEqual(drops > 0, expectDrops, "\(n) × \(length)")
        }
    }

    /// The first drop comes strictly after first_above_time = (first time above target) + interval.
    func testFirstDropOneIntervalAfterFirstAbove() {
        // (offset from the first dequeue above target, drops expected at that dequeue)
        let steps: [(UInt64, Int)] = [
            (0, 0),                          // sets first_above_time = t0 + interval
            (1 * Self.ms, 0),
            (Self.interval / 2, 0),
            (Self.interval, 0),              // not after first_above_time yet
            (Self.interval + 1, 1),          // enter dropping: one drop
            (Self.interval + 2, 0),          // next drop is an interval away
        ]
        var s = CoDelState()
        for (offset, expected) in steps {
            let r = Self.standing(&s, now: Self.t0 + offset, sojourn: 20 * Self.ms)
            XCTAssertEqual(r.drops, expected, "at +\(offset)")
            if offset == 0 { XCTAssertEqual(s.firstAboveTime, Self.t0 + Self.interval) }
        }
        XCTAssertTrue(s.dropping)
        XCTAssertEqual(s.count, 1)
        XCTAssertEqual(s.lastCount, 1)
        // count 1: drop_next = now + interval · 0xffff / 2^16
        XCTAssertEqual(s.dropNext, Self.t0 + Self.interval + 1 + (Self.interval * 0xffff) >> 16)

        // A sojourn back under target resets first_above_time and leaves the dropping state.
        Self.standing(&s, now: Self.t0 + Self.interval + 3, sojourn: 1 * Self.ms)
        XCTAssertFalse(s.dropping)
        XCTAssertEqual(s.firstAboveTime, 0)
    }

    /// A standing queue is dropped from at drop_next += interval/√count: the fixed-point schedule matches a float
    /// run of the same Newton recurrence within a few Q0.16 steps, and the exact 1/√count within 1% from count 8.
    func testDropScheduleFollowsInverseSquareRoot() {
        var s = CoDelState()
        let step: UInt64 = 10_000   // dequeue every 10 µs
        var now = Self.t0
        var schedule: [(count: UInt32, dropNext: UInt64)] = []
        while schedule.count < 3000 {
            let r = Self.standing(&s, now: now, sojourn: 50 * Self.ms)
            XCTAssertLessThanOrEqual(r.drops, 1, "the schedule is slower than the dequeues")
            if r.drops == 1 {
                schedule.append((s.count, s.dropNext))
                XCTAssertGreaterThan(s.dropNext, now)
            }
            now += step
        }
        let interval = Double(Self.interval)
        var x = 1.0   // float Newton iterate for 1/√count
        for k in 1..<schedule.count {
            let count = schedule[k].count
            XCTAssertEqual(count, schedule[k - 1].count + 1)
            x = x * (3 - Double(count) * x * x) / 2
            let gap = Double(schedule[k].dropNext - schedule[k - 1].dropNext)
            XCTAssertEqual(gap, interval * x, accuracy: interval * 4 / 65536 + 1, "count \(count)")
            if count >= 8 {
                XCTAssertEqual(gap, interval / Double(count).squareRoot(),
                               accuracy: 0.01 * interval / Double(count).squareRoot(), "count \(count)")
            }
        }
    }

    /// Drive a state into dropping and let count climb to `count`; returns the time of the last drop.
    static func dropUntil(_ s: inout CoDelState, count: UInt32, from start: UInt64) -> UInt64 {
        var now = start
        while !(s.dropping && s.count >= count) {
            standing(&s, now: now, sojourn: 50 * ms)
            now += 1 * ms
        }
        return now
    }

    /// Re-entering within 16 intervals of the last drop_next resumes at count = count − lastcount; later, at 1.
    func testReentryHysteresis() {
        let i = Self.interval
        // (gap from the old drop_next to re-entry, count at leaving, expected count on re-entry)
        let cases: [(UInt64, UInt32, UInt32)] = [
            (2 * i, 10, 9),
            (16 * i - 1, 10, 9),
            (16 * i, 10, 1),
            (40 * i, 10, 1),
            (2 * i, 2, 1),        // delta 1: not > 1
            (2 * i, 30, 29),
        ]
        for (gap, leaveCount, expected) in cases {
            var s = CoDelState()
            let t = Self.dropUntil(&s, count: leaveCount, from: Self.t0)
            XCTAssertEqual(s.count, leaveCount)
            XCTAssertEqual(s.lastCount, 1)
            Self.standing(&s, now: t, sojourn: 1 * Self.ms)   // below target: leave dropping
            XCTAssertFalse(s.dropping)
            let dropNext = s.dropNext
            // Above target again at r; entry one interval (+1 ns) later, `gap` after the old drop_next.
            let entry = dropNext + gap
            let r = entry - i - 1
            XCTAssertEqual(Self.standing(&s, now: r, sojourn: 50 * Self.ms).drops, 0)
            XCTAssertEqual(Self.standing(&s, now: entry, sojourn: 50 * Self.ms).drops, 1)
            XCTAssertTrue(s.dropping)
            XCTAssertEqual(s.count, expected, "gap \(gap), left at \(leaveCount)")
            XCTAssertEqual(s.lastCount, expected)
            if expected == 1 {
                XCTAssertEqual(s.recInvSqrt, 0xffff)
            } else {
                // One Newton step from the old estimate: within 10% of 1/√count, and below it is fine.
                let x = Double(s.recInvSqrt) / 65536
                XCTAssertEqual(x, 1 / Double(expected).squareRoot(), accuracy: 0.1 / Double(expected).squareRoot())
            }
        }
    }

    /// An empty queue leaves the dropping state and forgets first_above_time; count and lastcount stay for the
    /// hysteresis.
    func testStateResetWhenEmpty() {
        var s = CoDelState()
        let t = Self.dropUntil(&s, count: 5, from: Self.t0)
        XCTAssertTrue(s.dropping)
        XCTAssertNotEqual(s.firstAboveTime, 0)
        var empty = TestFIFO(count: 0, time: t)
        let r = s.dequeue(queue: &empty, now: t, params: Self.params)
        XCTAssertNil(r.packet)
        XCTAssertEqual(r.drops, 0)
        XCTAssertFalse(s.dropping)
        XCTAssertEqual(s.firstAboveTime, 0)
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.lastCount, 1)

        // A sparse flow that comes back after an idle gap longer than an interval starts from scratch:
        // its first packet above target only arms first_above_time.
        XCTAssertEqual(Self.standing(&s, now: t + 5 * Self.interval, sojourn: 20 * Self.ms).drops, 0)
        XCTAssertEqual(s.firstAboveTime, t + 6 * Self.interval)
    }

    /// count stops at UInt32.max instead of wrapping to 0 (which would reset the drop rate).
    func testCountSaturates() {
        var s = CoDelState()
        let t = Self.dropUntil(&s, count: 3, from: Self.t0)
        s.count = .max - 1
        s.dropNext = t
        Self.standing(&s, now: t, sojourn: 50 * Self.ms)
        XCTAssertEqual(s.count, .max)
        // At 1/√(2^32) the Q0.16 reciprocal is down to its last bit or zero: drops come at every dequeue.
        s.dropNext = t + 1
        XCTAssertGreaterThanOrEqual(Self.standing(&s, now: t + 1, sojourn: 50 * Self.ms).drops, 1)
        XCTAssertEqual(s.count, .max)
        XCTAssertTrue(s.dropping)

        s.count = .max - 10
        s.addToCount(64)
        XCTAssertEqual(s.count, .max)
        s.count = 5
        s.addToCount(64)
        XCTAssertEqual(s.count, 69)

        // The Newton step stays defined at the extremes and out of its convergence basin.
        XCTAssertLessThanOrEqual(CoDelState.newtonStep(count: .max, recInvSqrt: 0xffff), 2)
        XCTAssertEqual(CoDelState.newtonStep(count: 1, recInvSqrt: 0xffff), 0xffff)
        let jumped = CoDelState.newtonStep(count: 65, recInvSqrt: 0xffff)   // count 1 → 65 after batch drops
        XCTAssertGreaterThan(jumped, 0)
        XCTAssertLessThan(Double(jumped) / 65536, 3 / Double(65).squareRoot())
    }

    /// After a long service gap drop_next lies far behind; one dequeue drops at most maxDropsPerDequeue and
    /// resynchronises the schedule to now.
    func testDropCapAfterLongServiceGap() {
        for cap in [256, 10] {
            var params = Self.params
            params.maxDropsPerDequeue = cap
            var s = CoDelState()
            let t = Self.dropUntil(&s, count: 2, from: Self.t0)
            let late = t + 100_000 * Self.ms   // 100 s without service
            var q = TestFIFO(count: 5000, time: t)
            let r = s.dequeue(queue: &q, now: late, params: params)
            XCTAssertEqual(r.drops, cap)
            XCTAssertNotNil(r.packet)
            XCTAssertTrue(s.dropping)
            XCTAssertEqual(s.count, UInt32(2 + cap))
            XCTAssertGreaterThan(s.dropNext, late, "resynchronised to now")
            XCTAssertLessThanOrEqual(s.dropNext, late + Self.interval)
            // The next dequeue at the same time drops nothing more.
            XCTAssertEqual(s.dequeue(queue: &q, now: late, params: params).drops, 0)
        }
    }

    /// With ECN, an ECT packet is marked where a Not-ECT one would be dropped; without ECN both are dropped.
    func testECNMarksInsteadOfDropping() {
        // (ecn on, packets ECN-capable) → marks expected, drops expected
        let cases: [(Bool, Bool, Bool, Bool)] = [
            (true, true, true, false),
            (true, false, false, true),
            (false, true, false, true),
            (false, false, false, true),
        ]
        for (ecn, capable, expectMarks, expectDrops) in cases {
            var params = Self.params
            params.ecn = ecn
            var s = CoDelState()
            var marks = 0
            var drops = 0
            var marksAtCount: [UInt32] = []
            for i in 0..<3000 {   // 3 s at 1 ms
                let r = Self.standing(&s, now: Self.t0 + UInt64(i) * Self.ms, sojourn: 50 * Self.ms,
                                      ecn: capable, params: params)
                drops += r.drops
                if r.markCE {
                    marks += 1
                    marksAtCount.append(s.count)
                    XCTAssertEqual(r.packet?.handle, 0, "the head itself is marked, nothing dropped")
                }
            }
            XCTAssertEqual(marks > 0, expectMarks, "ecn \(ecn) capable \(capable)")
            XCTAssertEqual(drops > 0, expectDrops, "ecn \(ecn) capable \(capable)")
            if expectMarks {
                // Marks follow the same control law as drops: count climbs by one per mark.
                XCTAssertEqual(marksAtCount.first, 1)
                XCTAssertEqual(marksAtCount, Array(1...UInt32(marksAtCount.count)))
            }
        }
    }
}
