// Receive-side CoDel: the queue is the receive side as a whole, the kernel's UDP socket buffer plus vpnfast's
// own batches on their way to the tun-writer. vpnfast cannot dequeue from the socket one packet at a time, but
// it can see how long each datagram has waited: the kernel stamps each datagram when it enters the stack
// (SO_TIMESTAMPNS, CLOCK_REALTIME), and the tun-writer reads the clock once per batch when it takes it, which
// is where a packet leaves the receive queue (the dequeue). No userspace queue is added; the verdict is applied
// to the inner packet there (CE mark after RFC 6040 decapsulation, or drop). See Pipeline/ReceiveAQM.swift.
//
// Mapping onto CoDel (CoDel.swift, Linux codel_dequeue semantics):
//   dequeue time `now`   the moment the tun-writer took the batch (monotonic clock: the state machine never
//                         sees a REALTIME step; only the sojourn is taken from REALTIME, and it is clamped)
//   sojourn               that moment − kernel stamp, per datagram (a UDP-GRO super-packet's segments share one)
//   "≤ one MTU queued"    the bytes of the datagrams behind this one in the same batch, plus "more than an MTU"
//                         when anything is known to be queued behind the batch: another batch waiting, or a
//                         receive call that filled every message slot it asked for (the socket probably holds
//                         more; a receive that came back short emptied it: recvmmsg stops when the queue is dry
//                         and the io_uring backend tops up before returning). No extra syscall: FIONREAD on UDP
//                         reports only the next datagram, io_uring has already taken the queue out of the
//                         socket, and the rule only needs "more than one MTU or not".
//   the per-dequeue loop  unrolled over packets: every datagram is one dequeue. In the dropping state a datagram
//                         gets the signal when `now` has reached drop_next; drop_next then moves by
//                         interval/√count, so a batch taken after a long wait can signal several of its
//                         datagrams in a row, as Linux's while-loop does for a backlog. Marks and drops both
//                         count towards the cap per dequeue (datagrams judged at the same `now`); at the cap
//                         drop_next is resynchronised to now + interval/√count, as on the send side.
//   ECN                   the caller says whether the (decapsulated) inner packet is ECN-capable: mark CE if ECN
//                         is on, else drop. Either way the control law advances the same (the packet leaves the
//                         queue regardless, so a mark shrinks this queue as much as a drop does).
// A datagram whose stamp is unknown (0) or implausible (older than `maxPlausibleSojourn`: the clock stepped
// forward) does not touch the state; a stamp in the future (the clock stepped back) counts as sojourn 0.

/// Per-datagram sojourn times of a received batch.
public enum ReceiveSojourn {
    /// The sojourn of a datagram without a usable kernel stamp.
    public static let unknown = UInt64.max
    /// Longer than any real wait on the receive side (CoDel acts within a few intervals of a standing queue;
    /// a 16 MiB socket buffer drains in 1.3 s even at 100 Mbit/s): a longer apparent wait is a REALTIME step.
    public static let maxPlausibleSojourn: UInt64 = 4_000_000_000

    /// Fills `sojourns[0..<count]` from the kernel stamps (`realtimeNow`: CLOCK_REALTIME when the batch was taken)
    /// and returns how many leading datagrams had more than `mtu` bytes queued behind them. `moreBehind`:
    /// something is known to be queued behind the batch, taken to be more than an MTU.
    public static func fill(timestamps: UnsafePointer<UInt64>, lengths: UnsafePointer<UInt32>, count: Int,
                            realtimeNow: UInt64, moreBehind: Bool, mtu: UInt32,
                            sojourns: UnsafeMutablePointer<UInt64>) -> Int {
        for i in 0..<count {
            let stamp = timestamps[i]
            if stamp == 0 {
                sojourns[i] = unknown
            } else if stamp >= realtimeNow {
                sojourns[i] = 0
            } else {
                let d = realtimeNow - stamp
                sojourns[i] = d > maxPlausibleSojourn ? unknown : d
            }
        }
        if moreBehind || count == 0 { return count }
        // Behind datagram j are lengths[j+1..<count]; that sum only shrinks as j grows. Find the first j whose
        // remainder is at most one MTU.
        var first = count - 1
        var behind: UInt64 = 0
        while first > 0 && behind + UInt64(lengths[first]) <= UInt64(mtu) {
            behind += UInt64(lengths[first])
            first -= 1
        }
        return first
    }
}

/// One peer's receive-side CoDel (small: the CoDel variables and the per-dequeue cap bookkeeping).
public struct ReceiveCoDel: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        case forward
        case markCE
        case drop
    }

    public var codel = CoDelState()
    /// The `now` of the last congestion signal, and how many signals were given at it.
    var signalTime: UInt64 = 0
    var signalsAtTime = 0

    public init() {}

    /// Judges one datagram, in arrival order: `sojourn` from `ReceiveSojourn.fill`, `backlogAboveMTU` whether
    /// more than one MTU was queued behind it, `now` the monotonic time its batch was taken, `ecnCapable` whether
    /// the inner packet is ECT(0), ECT(1) or CE.
    @inline(__always)
    public mutating func admit(sojourn: UInt64, backlogAboveMTU: Bool, now: UInt64, ecnCapable: Bool,
                               params: CoDelParameters) -> Verdict {
        if sojourn == ReceiveSojourn.unknown { return .forward }
        let packet = CoDelPacket(handle: 0, length: 0, enqueueTime: now &- sojourn, ecnCapable: ecnCapable)
        let backlog: UInt64 = backlogAboveMTU ? UInt64(params.mtu) + 1 : 0
        let above = codel.shouldDrop(packet, backlog: backlog, now: now, params: params)
        if codel.dropping {
            guard above else {
                // Sojourn back below target (or the queue is down to an MTU): leave the dropping state.
                codel.dropping = false
                return .forward
            }
            guard CoDelState.afterOrEqual(now, codel.dropNext) else { return .forward }
            codel.incrementCount()
            codel.recInvSqrt = CoDelState.newtonStep(count: codel.count, recInvSqrt: codel.recInvSqrt)
            if signalTime != now {
                signalTime = now
                signalsAtTime = 0
            }
            signalsAtTime += 1
            if signalsAtTime >= params.maxDropsPerDequeue {
                // Cap reached for this dequeue time: resynchronise the schedule to now.
                codel.dropNext = CoDelState.controlLaw(now, interval: params.interval, recInvSqrt: codel.recInvSqrt)
            } else {
                codel.dropNext = CoDelState.controlLaw(codel.dropNext, interval: params.interval,
                                                       recInvSqrt: codel.recInvSqrt)
            }
            return signal(ecnCapable: ecnCapable, params: params)
        }
        guard above else { return .forward }
        codel.enterDropping(now: now, params: params)
        signalTime = now
        signalsAtTime = 1
        return signal(ecnCapable: ecnCapable, params: params)
    }

    @inline(__always)
    func signal(ecnCapable: Bool, params: CoDelParameters) -> Verdict {
        params.ecn && ecnCapable ? .markCE : .drop
    }
}
