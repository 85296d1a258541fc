// CoDel (RFC 8289) as Linux runs it (include/net/codel_impl.h), for one FIFO: the per-flow state machine that
// FQ-CoDel drives. Pure: no clock, no memory; the queue it acts on is a generic parameter so the caller's
// dequeue and drop operations are specialised in, not called through a box or a closure.
//
// One dequeue:
//   pop the head → should-drop test (sojourn >= target for a whole interval, and more than one MTU still queued)
//   → not dropping but should drop: drop (or CE-mark) once, enter the dropping state, pick count (re-entry
//     hysteresis), schedule the next drop at now + interval/√count
//   → dropping and the next drop is due: drop (or mark) and pop again, each time count += 1 and
//     drop_next += interval/√count, until the head is fine or drop_next lies in the future
//   → an empty queue leaves the dropping state and forgets first_above_time.
//
// Differences from Linux, all deliberate:
//   - Time is UInt64 nanoseconds, not u32 units of 1024 ns. Comparisons stay wrap-safe (signed difference).
//   - count saturates at UInt32.max instead of wrapping.
//   - At most `maxDropsPerDequeue` drops per call; when the cap is reached while still dropping, drop_next is
//     rescheduled from now (a long service gap must not turn into a burst of hundreds of drops next time either).
//   - An empty queue also resets first_above_time (the 2026 fq_codel stale-state fix).
//   - The Newton step rescales an estimate that lies outside its basin of convergence (count·x² >= 3, reachable
//     after FQ-CoDel's "count += batch drops"); Linux lets the 64-bit arithmetic wrap there.
//   - ce_threshold is not implemented.

/// Parameters shared by every flow of a scheduler.
public struct CoDelParameters: Sendable, Equatable {
    /// Acceptable standing queue delay, nanoseconds (Linux and RFC default 5 ms).
    public var target: UInt64
    /// Window over which the sojourn must stay above target before dropping; also scales the control law.
    /// Nanoseconds (default 100 ms); below 2^47 ns.
    public var interval: UInt64
    /// Never drop while the backlog left behind the head is at most this many bytes (Linux `params->mtu`,
    /// the RFC's `maxpacket`): one tunnel MTU.
    public var mtu: UInt32
    /// Mark ECN-capable packets CE instead of dropping them.
    public var ecn: Bool
    /// Cap on drops in one dequeue call (Linux's newest codel.h: 256).
    public var maxDropsPerDequeue: Int

    public static let defaultTarget: UInt64 = 5_000_000
    public static let defaultInterval: UInt64 = 100_000_000
    public static let defaultMaxDropsPerDequeue = 256

    public init(target: UInt64 = defaultTarget, interval: UInt64 = defaultInterval, mtu: UInt32 = 1420,
                ecn: Bool = true, maxDropsPerDequeue: Int = defaultMaxDropsPerDequeue) {
        precondition(interval > 0 && interval < 1 << 47, "CoDel interval out of range")
        precondition(maxDropsPerDequeue >= 1, "CoDel needs at least one drop per dequeue")
        self.target = target
        self.interval = interval
        self.mtu = mtu
        self.ecn = ecn
        self.maxDropsPerDequeue = maxDropsPerDequeue
    }
}

/// What CoDel needs to know about a packet it looks at.
public struct CoDelPacket: Sendable, Equatable {
    public var handle: UInt32
    public var length: UInt32
    /// Nanoseconds, same clock as `now`.
    public var enqueueTime: UInt64
    /// ECT(0), ECT(1) or CE: a CE mark can replace a drop (Linux `INET_ECN_set_ce` succeeds).
    public var ecnCapable: Bool

    @inline(__always)
    public init(handle: UInt32, length: UInt32, enqueueTime: UInt64, ecnCapable: Bool) {
        self.handle = handle
        self.length = length
        self.enqueueTime = enqueueTime
        self.ecnCapable = ecnCapable
    }
}

/// The FIFO CoDel acts on. Implement it with a struct so `CoDelState.dequeue` specialises.
public protocol CoDelQueue {
    /// Removes and returns the head packet, or nil if the queue is empty. `backlogBytes` must already exclude it.
    mutating func popHead() -> CoDelPacket?
    /// The bytes still queued that the "at most one MTU" test looks at. Linux passes the whole qdisc's backlog
    /// (for FQ-CoDel: all flows), not the flow's.
    var backlogBytes: UInt64 { get }
    /// CoDel dropped `packet` (already popped); the queue owns what happens to it.
    mutating func drop(_ packet: CoDelPacket)
}

/// The outcome of one dequeue: the packet to send, if any, and whether it must be marked CE first.
public struct CoDelDequeueResult: Sendable, Equatable {
    public var packet: CoDelPacket?
    public var markCE: Bool
    /// Packets handed to `CoDelQueue.drop` during this call.
    public var drops: Int
}

/// Per-flow CoDel variables (Linux `struct codel_vars`). All zero is the initial state.
public struct CoDelState: Sendable, Equatable {
    /// First time the sojourn may be judged to have stayed above target for an interval; 0: not above.
    public var firstAboveTime: UInt64 = 0
    /// When the next drop is due while dropping.
    public var dropNext: UInt64 = 0
    /// Sojourn of the last packet looked at (Linux `ldelay`).
    public var lastSojourn: UInt64 = 0
    /// Drops since entering the dropping state (plus the hysteresis carry-over); saturates.
    public var count: UInt32 = 0
    /// `count` when the dropping state was last entered.
    public var lastCount: UInt32 = 0
    /// 1/√count in Q0.16.
    public var recInvSqrt: UInt16 = 0
    public var dropping = false

    public init() {}

    /// Q0.16 → Q0.32 shift (Linux REC_INV_SQRT_SHIFT).
    static let recInvSqrtShift: UInt64 = 16
    /// ≈ 1.0 in Q0.16: the value for count = 1.
    static let recInvSqrtOne: UInt16 = 0xffff

    // MARK: time, wrap-safe like Linux's codel_time_after

    @inline(__always) static func after(_ a: UInt64, _ b: UInt64) -> Bool { Int64(bitPattern: a &- b) > 0 }
    @inline(__always) static func afterOrEqual(_ a: UInt64, _ b: UInt64) -> Bool { Int64(bitPattern: a &- b) >= 0 }

    // MARK: control law

    /// One Newton–Raphson step towards 1/√count, in fixed point: x' = x·(3 − count·x²)/2, with x in Q0.32
    /// computed from the Q0.16 stored value (Linux `codel_Newton_step`).
    @inline(__always)
    static func newtonStep(count: UInt32, recInvSqrt: UInt16) -> UInt16 {
        let c = UInt64(count)
        var x = UInt64(recInvSqrt) << recInvSqrtShift                // Q0.32
        var x2 = (x &* x) >> 32                                       // x², Q0.32
        // Newton converges only from count·x² < 3; halve an estimate left far too high (rare: after a jump in
        // count from batch drops at the limit, or near saturation, where count·x² may not even fit 64 bits).
        var cx2 = c.multipliedReportingOverflow(by: x2)
        while cx2.overflow || cx2.partialValue >= 3 << 32 {
            x >>= 1
            x2 = (x &* x) >> 32
            cx2 = c.multipliedReportingOverflow(by: x2)
        }
        var v = (3 << 32) - cx2.partialValue                          // (3 − count·x²), Q2.32
        v >>= 2                                                       // keeps the next product within 64 bits
        v = (v &* x) >> 31                                            // ·x/2, back to Q0.32
        return UInt16(truncatingIfNeeded: min(v >> recInvSqrtShift, UInt64(recInvSqrtOne)))
    }

    /// t + interval/√count, as interval · (1/√count) with the reciprocal in fixed point (Linux
    /// `reciprocal_scale(interval, rec_inv_sqrt << 16)`): no divide, no square root.
    @inline(__always)
    static func controlLaw(_ t: UInt64, interval: UInt64, recInvSqrt: UInt16) -> UInt64 {
        t &+ ((interval &* UInt64(recInvSqrt)) >> recInvSqrtShift)
    }

    @inline(__always)
    mutating func incrementCount() {
        if count != .max { count += 1 }
    }

    /// Adds `n` to count without wrapping (FQ-CoDel strengthens a flow's signal by the packets it dropped at the
    /// limit).
    @inline(__always)
    public mutating func addToCount(_ n: UInt32) {
        let (sum, overflow) = count.addingReportingOverflow(n)
        count = overflow ? .max : sum
    }

    // MARK: the algorithm

    /// Linux `codel_should_drop`: has the sojourn stayed at or above target for a whole interval?
    @inline(__always)
    mutating func shouldDrop(_ packet: CoDelPacket?, backlog: UInt64, now: UInt64,
                             params: CoDelParameters) -> Bool {
        guard let packet else {
            firstAboveTime = 0
            return false
        }
        let sojourn = Self.after(now, packet.enqueueTime) ? now &- packet.enqueueTime : 0
        lastSojourn = sojourn
        if sojourn < params.target || backlog <= UInt64(params.mtu) {
            // Went below: stay below for at least an interval.
            firstAboveTime = 0
            return false
        }
        if firstAboveTime == 0 {
            // Just went above; if it stays above for an interval, dropping is allowed.
            firstAboveTime = now &+ params.interval
            return false
        }
        return Self.after(now, firstAboveTime)
    }

    /// Takes the next packet to send from `queue`, dropping (through `queue.drop`) or asking for a CE mark as the
    /// control law says (Linux `codel_dequeue`).
    @inline(__always)
    public mutating func dequeue<Q: CoDelQueue>(queue: inout Q, now: UInt64,
                                               params: CoDelParameters) -> CoDelDequeueResult {
        guard var packet = queue.popHead() else {
            dropping = false
            firstAboveTime = 0
            return CoDelDequeueResult(packet: nil, markCE: false, drops: 0)
        }
        var drops = 0
        var mark = false
        let drop = shouldDrop(packet, backlog: queue.backlogBytes, now: now, params: params)

        if dropping {
            if !drop {
                // Sojourn back below target: leave the dropping state.
                dropping = false
            } else {
                // Drop at every due time; a large backlog can make several due now.
                while dropping && Self.afterOrEqual(now, dropNext) {
                    incrementCount()
                    recInvSqrt = Self.newtonStep(count: count, recInvSqrt: recInvSqrt)
                    if params.ecn && packet.ecnCapable {
                        mark = true
                        dropNext = Self.controlLaw(dropNext, interval: params.interval, recInvSqrt: recInvSqrt)
                        break
                    }
                    queue.drop(packet)
                    drops += 1
                    let next = queue.popHead()
                    if !shouldDrop(next, backlog: queue.backlogBytes, now: now, params: params) {
                        dropping = false
                    } else if drops >= params.maxDropsPerDequeue {
                        // Cap reached: send this one and resynchronise the schedule to now.
                        dropNext = Self.controlLaw(now, interval: params.interval, recInvSqrt: recInvSqrt)
                        packet = next!
                        break
                    } else {
                        dropNext = Self.controlLaw(dropNext, interval: params.interval, recInvSqrt: recInvSqrt)
                    }
                    guard let next else { return CoDelDequeueResult(packet: nil, markCE: false, drops: drops) }
                    packet = next
                }
            }
        } else if drop {
            if params.ecn && packet.ecnCapable {
                mark = true
            } else {
                queue.drop(packet)
                drops = 1
                let next = queue.popHead()
                _ = shouldDrop(next, backlog: queue.backlogBytes, now: now, params: params)
                guard let next else {
                    enterDropping(now: now, params: params)
                    return CoDelDequeueResult(packet: nil, markCE: false, drops: drops)
                }
                packet = next
            }
            enterDropping(now: now, params: params)
        }
        return CoDelDequeueResult(packet: packet, markCE: mark, drops: drops)
    }

    /// Enters the dropping state. If the last dropping episode ended recently (drop_next within 16 intervals),
    /// resume near the drop rate that controlled the queue then (count = drops of that episode); else restart at 1.
    @inline(__always)
    mutating func enterDropping(now: UInt64, params: CoDelParameters) {
        dropping = true
        let delta = count &- lastCount
        if delta > 1 && Int64(bitPattern: now &- dropNext) < Int64(16 * params.interval) {
            count = delta
            // The estimate is for the old, larger count; later steps correct it quadratically.
            recInvSqrt = Self.newtonStep(count: count, recInvSqrt: recInvSqrt)
        } else {
            count = 1
            recInvSqrt = Self.recInvSqrtOne
        }
        lastCount = count
        dropNext = Self.controlLaw(now, interval: params.interval, recInvSqrt: recInvSqrt)
    }
}
