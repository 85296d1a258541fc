// Receive-side CoDel: kernel stamps → sojourns, and the per-datagram adapter onto the CoDel control law, on fake
// times (plain UInt64 nanoseconds).
import XCTest
@testable import Dataplane

final class ReceiveCoDelTests: XCTestCase {
    static let ms: UInt64 = 1_000_000
    static let target = 5 * ms
    static let interval = 100 * ms
    static let t0: UInt64 = 1_000_000 * ms
    static let params = CoDelParameters(target: target, interval: interval, mtu: 1420, ecn: true)
    static let unknown = ReceiveSojourn.unknown

    /// Runs `ReceiveSojourn.fill` on arrays.
    static func fill(_ stamps: [UInt64], lengths: [UInt32]? = nil, now: UInt64, full: Bool = false,
                     mtu: UInt32 = 1420) -> ([UInt64], Int) {
        let lens = lengths ?? Array(repeating: 1000, count: stamps.count)
        var out = [UInt64](repeating: 7, count: stamps.count)
        let k = stamps.withUnsafeBufferPointer { s in
            lens.withUnsafeBufferPointer { l in
                out.withUnsafeMutableBufferPointer { o in
                    ReceiveSojourn.fill(timestamps: s.baseAddress!, lengths: l.baseAddress!, count: stamps.count,
                                        realtimeNow: now, moreBehind: full, mtu: mtu, sojourns: o.baseAddress!)
                }
            }
        }
        return (out, k)
    }

    func testSojournsFromStamps() {
        let now: UInt64 = 1_700_000_000 * 1_000_000_000
        // (stamp, expected sojourn)
        let cases: [(UInt64, UInt64, String)] = [
            (0, Self.unknown, "no stamp"),
            (now - 3 * Self.ms, 3 * Self.ms, "normal"),
            (now, 0, "stamped at the read time"),
            (now + 5 * Self.ms, 0, "stamp in the future: REALTIME stepped back, clamped to 0"),
            (now - ReceiveSojourn.maxPlausibleSojourn, ReceiveSojourn.maxPlausibleSojourn, "at the bound"),
            (now - ReceiveSojourn.maxPlausibleSojourn - 1, Self.unknown, "beyond the bound: REALTIME stepped forward"),
            (now - 3600 * 1_000_000_000, Self.unknown, "an hour"),
            (1, Self.unknown, "epoch"),
        ]
        let (out, _) = Self.fill(cases.map(\.0), now: now)
        for (i, c) in cases.enumerated() { XCTAssertEqual(out[i], c.1, c.2) }
    }

    /// How many leading datagrams had more than one MTU queued behind them.
    func testBacklogAboveMTU() {
        let now: UInt64 = 10_000 * Self.ms
        // (lengths, socket not empty, mtu, expected)
        let cases: [([UInt32], Bool, UInt32, Int)] = [
            ([], false, 1420, 0),
            ([], true, 1420, 0),
            ([1400], false, 1420, 0),
            ([1400], true, 1420, 1),
            ([1000, 1000], false, 1420, 0),              // 1000 behind the first: ≤ MTU
            ([1000, 1000, 1000], false, 1420, 1),        // 2000 behind the first, 1000 behind the second
            ([1000, 710, 710], false, 1420, 0),          // exactly one MTU behind the first
            ([1000, 711, 710], false, 1420, 1),          // one byte more
            ([100, 100, 100, 1500, 100], false, 1420, 3),
            ([1500, 1500, 1500, 1500], true, 1420, 4),   // filled: the socket holds more
            ([1500, 1500, 1500, 1500], false, 1420, 3),   // 4500, 3000, 1500, 0 behind
            (Array(repeating: 1452, count: 64), false, 1420, 63), // a GRO train, socket emptied
        ]
        for (lengths, full, mtu, expected) in cases {
            let (_, k) = Self.fill(Array(repeating: now - Self.ms, count: lengths.count), lengths: lengths, now: now,
                                   full: full, mtu: mtu)
            XCTAssertEqual(k, expected, "\(lengths) full \(full)")
        }
    }

    /// Feeds one datagram every `spacing` from `start` for `duration` with sojourn `sojourn(t)`; returns the
    /// times of the signals and the verdicts.
    static func run(_ s: inout ReceiveCoDel, start: UInt64, duration: UInt64, spacing: UInt64 = ms,
                    backlog: Bool = true, ecn: Bool = true, params: CoDelParameters = params,
                    sojourn: (UInt64) -> UInt64) -> [(UInt64, ReceiveCoDel.Verdict)] {
        var out: [(UInt64, ReceiveCoDel.Verdict)] = []
        var t = start
        while t < start + duration {
            let v = s.admit(sojourn: sojourn(t), backlogAboveMTU: backlog, now: t, ecnCapable: ecn, params: params)
            if v != .forward { out.append((t, v)) }
            t += spacing
        }
        return out
    }

    func testNoSignalBelowTarget() {
        for sojourn in [0, Self.ms, 4 * Self.ms, Self.target - 1] {
            var s = ReceiveCoDel()
            let signals = Self.run(&s, start: Self.t0, duration: 2000 * Self.ms) { _ in sojourn }
            XCTAssertTrue(signals.isEmpty, "sojourn \(sojourn)")
            XCTAssertFalse(s.codel.dropping)
            XCTAssertEqual(s.codel.firstAboveTime, 0)
        }
    }

    /// However old the datagrams, no signal while at most one MTU is queued behind them.
    func testNoSignalWithoutBacklog() {
        var s = ReceiveCoDel()
        let signals = Self.run(&s, start: Self.t0, duration: 2000 * Self.ms, backlog: false) { _ in 50 * Self.ms }
        XCTAssertTrue(signals.isEmpty)
        XCTAssertFalse(s.codel.dropping)
    }

    /// Under a standing delay the signals follow the control law: the first one just after an interval above
    /// target, then at drop_next += interval/√count; the same times as the send side's CoDel dequeue on a standing
    /// queue of ECN-capable packets, and within fixed-point error of the float reference.
    func testScheduleUnderStandingDelay() {
        for sojourn in [Self.target, 20 * Self.ms, 80 * Self.ms] {
            var rx = ReceiveCoDel()
            let signals = Self.run(&rx, start: Self.t0, duration: 3000 * Self.ms) { _ in sojourn }
            XCTAssertTrue(signals.allSatisfy { $0.1 == .markCE })

            var tx = CoDelState()
            var sendSide: [UInt64] = []
            var t = Self.t0
            while t < Self.t0 + 3000 * Self.ms {
                var q = TestFIFO(count: 100, time: t - sojourn, ecn: true)
                if tx.dequeue(queue: &q, now: t, params: Self.params).markCE { sendSide.append(t) }
                t += Self.ms
            }
            XCTAssertEqual(signals.map(\.0), sendSide, "sojourn \(sojourn): same schedule as the send side")

            // Float reference: the first signal at the first datagram strictly after t0 + interval; then the gap
            // before signal k + 1 is interval/√k. The fixed-point 1/√count takes one Newton step per count, so
            // it is exact at count 1 and within 2 % from count 5 on (plus the 1 ms arrival granularity).
            XCTAssertEqual(signals.first?.0, Self.t0 + Self.interval + Self.ms)
            XCTAssertEqual(signals[1].0 - signals[0].0, Self.interval)
            for k in 5..<signals.count {
                let gap = Double(signals[k].0 - signals[k - 1].0)
                let expected = Double(Self.interval) / Double(k).squareRoot()
                XCTAssertEqual(gap, expected, accuracy: 0.02 * expected + Double(Self.ms),
                               "gap before signal \(k) at sojourn \(sojourn)")
            }
            XCTAssertGreaterThan(signals.count, 20)
            XCTAssertEqual(rx.codel.count, UInt32(signals.count))
        }
    }

    /// Not-ECT inner packets, or ECN turned off, are dropped instead; the schedule is the same.
    func testDropInsteadOfMark() {
        var marked = ReceiveCoDel(), dropped = ReceiveCoDel(), noECN = ReceiveCoDel()
        var off = Self.params
        off.ecn = false
        let a = Self.run(&marked, start: Self.t0, duration: 1000 * Self.ms) { _ in 30 * Self.ms }
        let b = Self.run(&dropped, start: Self.t0, duration: 1000 * Self.ms, ecn: false) { _ in 30 * Self.ms }
        let c = Self.run(&noECN, start: Self.t0, duration: 1000 * Self.ms, params: off) { _ in 30 * Self.ms }
        XCTAssertFalse(a.isEmpty)
        XCTAssertTrue(a.allSatisfy { $0.1 == .markCE })
        XCTAssertTrue(b.allSatisfy { $0.1 == .drop })
        XCTAssertTrue(c.allSatisfy { $0.1 == .drop })
        XCTAssertEqual(a.map(\.0), b.map(\.0))
        XCTAssertEqual(a.map(\.0), c.map(\.0))
    }

    /// When the delay goes away the state resets: no signal while below target, and a new episode waits a full
    /// interval above target again; re-entering soon after resumes near the old rate (hysteresis).
    func testResetWhenDelayGoesAway() {
        var s = ReceiveCoDel()
        let first = Self.run(&s, start: Self.t0, duration: 1000 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertTrue(s.codel.dropping)
        let countBefore = s.codel.count
        XCTAssertGreaterThan(countBefore, 5)
        let t1 = Self.t0 + 1000 * Self.ms
        let quiet = Self.run(&s, start: t1, duration: 200 * Self.ms) { _ in Self.ms }
        XCTAssertTrue(quiet.isEmpty)
        XCTAssertFalse(s.codel.dropping)
        XCTAssertEqual(s.codel.firstAboveTime, 0)
        // Back above target: nothing for an interval, then the episode resumes with count = last episode's drops.
        let t2 = t1 + 200 * Self.ms
        let again = Self.run(&s, start: t2, duration: 300 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertEqual(again.first?.0, t2 + Self.interval + Self.ms)
        XCTAssertFalse(first.isEmpty)
        XCTAssertGreaterThan(again.count, 3, "resumes faster than a fresh start")

        // Long after (more than 16 intervals), a new episode starts from count 1.
        var fresh = s
        let t3 = t2 + 300 * Self.ms
        _ = Self.run(&fresh, start: t3, duration: 10 * Self.ms) { _ in Self.ms }
        let late = t3 + 20 * Self.interval
        _ = Self.run(&fresh, start: late, duration: Self.interval + 2 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertTrue(fresh.codel.dropping)
        XCTAssertEqual(fresh.codel.count, 1)
    }

    /// A UDP-GRO super-packet's segments share one stamp: judged one by one they behave exactly like that many
    /// datagrams with equal stamps, and a batch read late signals several in a row, at most the cap per read.
    func testGROSegmentsSharingOneStamp() {
        var base = ReceiveCoDel()
        _ = Self.run(&base, start: Self.t0, duration: 500 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertTrue(base.codel.dropping)
        // The reader was stalled 300 ms; a 64-segment train comes out with one stamp 300 ms old.
        let now = Self.t0 + 800 * Self.ms
        for cap in [256, 4] {
            var p = Self.params
            p.maxDropsPerDequeue = cap
            var s = base
            var verdicts: [ReceiveCoDel.Verdict] = []
            for _ in 0..<64 {
                verdicts.append(s.admit(sojourn: 300 * Self.ms, backlogAboveMTU: true, now: now, ecnCapable: true,
                                        params: p))
            }
            let signalled = verdicts.filter { $0 == .markCE }.count
            // The signals come first, then the schedule has caught up with now.
            XCTAssertEqual(Array(verdicts.prefix(signalled)), Array(repeating: .markCE, count: signalled))
            XCTAssertTrue(verdicts.dropFirst(signalled).allSatisfy { $0 == .forward })
            XCTAssertTrue(CoDelState.after(s.codel.dropNext, now))
            if cap == 4 {
                XCTAssertEqual(signalled, 4)
            } else {
                XCTAssertGreaterThan(signalled, 1, "a late read signals a backlog of overdue drops")
                XCTAssertLessThan(signalled, 64)
            }
            // Separate datagrams with equal stamps: the same verdicts.
            var t = base
            let separate = (0..<64).map { _ in
                t.admit(sojourn: 300 * Self.ms, backlogAboveMTU: true, now: now, ecnCapable: true, params: p)
            }
            XCTAssertEqual(separate, verdicts)
            XCTAssertEqual(t, s)
        }
    }

    /// Datagrams without a usable stamp leave the state alone.
    func testUnknownSojournIsIgnored() {
        var s = ReceiveCoDel()
        _ = Self.run(&s, start: Self.t0, duration: 400 * Self.ms) { _ in 30 * Self.ms }
        let before = s
        for i in 0..<1000 {
            XCTAssertEqual(s.admit(sojourn: Self.unknown, backlogAboveMTU: true, now: Self.t0 + UInt64(400 + i) * Self.ms,
                                   ecnCapable: true, params: Self.params), .forward)
        }
        XCTAssertEqual(s, before)
    }

    /// A REALTIME step cannot cause a signal: the control law runs on the monotonic batch time, and the stamps
    /// taken before the step (the datagrams in the socket buffer at that moment, read in one batch) become unknown,
    /// 0, or one batch's worth of large sojourns, which cannot last an interval.
    func testClockStepsCauseNoSignal() {
        let real: UInt64 = 1_700_000_000 * 1_000_000_000
        let s1: Int64 = 1_000_000_000
        for step in [3600 * s1, -3600 * s1, 10 * s1, 3 * s1, s1, -s1, -50_000_000] {
            var s = ReceiveCoDel()
            var signals = 0
            // 2 s: a batch of 10 datagrams every 10 ms, each stamped 1–10 ms before its read. The clock steps
            // just before the read of batch 100.
            for b in 0..<200 {
                let mono = Self.t0 + UInt64(b) * 10 * Self.ms
                let realRead = real + UInt64(b) * 10 * Self.ms
                let after = b >= 100 ? step : 0
                let before = b > 100 ? step : 0   // batch 100 was stamped before the step
                let stamps = (0..<10).map { UInt64(Int64(realRead) - Int64(10 - $0) * Int64(Self.ms) + before) }
                let (soj, k) = Self.fill(stamps, now: UInt64(Int64(realRead) + after), full: true)
                XCTAssertEqual(k, 10)
                for j in 0..<10 where s.admit(sojourn: soj[j], backlogAboveMTU: true, now: mono, ecnCapable: true,
                                             params: Self.params) != .forward {
                    signals += 1
                }
            }
            XCTAssertEqual(signals, 0, "step \(step)")
            XCTAssertFalse(s.codel.dropping)
        }
    }

    func testCountSaturates() {
        var s = ReceiveCoDel()
        _ = Self.run(&s, start: Self.t0, duration: 300 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertTrue(s.codel.dropping)
        s.codel.count = .max - 1
        _ = Self.run(&s, start: Self.t0 + 300 * Self.ms, duration: 2000 * Self.ms) { _ in 30 * Self.ms }
        XCTAssertEqual(s.codel.count, .max)
        XCTAssertTrue(s.codel.dropping)
    }

    func testPerPeerStatesAreLazy() {
        let aqm = ReceiveAQM(peers: 10_000, params: Self.params)
        XCTAssertFalse(aqm.hasState(42))
        let p = aqm.state(42)
        XCTAssertTrue(aqm.hasState(42))
        XCTAssertEqual(p, aqm.state(42))
        XCTAssertFalse(aqm.hasState(43))
        XCTAssertLessThanOrEqual(MemoryLayout<ReceiveCoDel>.size, 64)
    }
}
