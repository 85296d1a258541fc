// Per-peer statistics for `vpnfast show`: drops by reason, ECN marks, queue gauges and a sojourn histogram.
//
// Who writes what (all relaxed; readers such as the status server may look at any time and see a recent value):
//   tun-reader  the send-side fq_codel figures: CoDel and limit drops, CE marks; and after each round the queue gauges (packets, bytes, active flows); and the sojourn histogram, which it
//               alone writes (single-writer bumps, no locked instructions), allocated on the peer's first dequeue.
//   udp-writer  tx_packets, once per batch. Staged-packet overflow: whichever thread stages.
//   tun-writer  rx_packets once per batch; bad-MAC, replay and ECN drops, CE received and ECN anomalies as they
//               happen (those are rare events, counted next to the device-wide counter of the same name).
//   receive-side CoDel (Pipeline/ReceiveAQM.swift): `rxCodelDrops` and `rxCodelCeMarks`.
//   (The tun-writer's bumps are made by the udp-reader instead when it delivers a batch itself, run to completion
//   or through the express lane: still one writer at a time, under Device.deliveryLock.)
// Device-wide counters (Counters.swift) are kept as before; these split some of them by peer.
//
// Size: an idle peer costs the object and one small counter array (about 200 bytes); the histogram (about
// 800 bytes, plus two window snapshots of the same size) exists only for peers that have sent through fq_codel.
//
// Recent sojourn: the histogram counts since start, which hides what the queue does now after a long run. So the
// tun-reader also keeps a snapshot of the counts per window (`SojournWindow.length`, 10 s): once per window, not
// per packet, it copies the live counts into one of two snapshot buffers. "Recent" is the live counts minus the
// snapshot taken one rotation before the latest, so it always spans one to two windows up to now (never an
// almost empty few seconds just after a rotation), and its exact span is reported with it. The generation
// counter says which buffer is which; a reader that sees it change while reading tries again (a seqlock), so
// neither side ever waits.

import CShims
import Synchronization

public enum PeerStat: Int, CaseIterable, Sendable {
    case rxPackets, txPackets
    // Send side (fq_codel ahead of the crypto pool).
    case txDropCodel, txDropAqmLimit, txCeMarks, txDropStagedOverflow
    // Receive side: authenticated-path drops, RFC 6040 decapsulation.
    case rxDropBadMac, rxDropReplay, rxDropEcnNotEctCe, rxOuterCe
    case ecnAnomalyDangerous, ecnAnomalyPossiblyDangerous
    /// Receive-side CoDel driven by kernel timestamps: packets it dropped and packets it marked CE.
    case rxCodelDrops, rxCodelCeMarks
    // Gauges, set by the tun-reader after each round (0 when the peer has nothing queued).
    case queuePackets, queueBytes, activeFlows

    /// The name used by `show`, e.g. rx_drop_bad_mac (the same spelling as the device counters).
    public var name: String {
        var out = ""
        for ch in String(describing: self) {
            if ch.isUppercase { out.append("_"); out.append(Character(ch.lowercased())) } else { out.append(ch) }
        }
        return out
    }

    /// A level rather than a running total.
    public var isGauge: Bool { self == .queuePackets || self == .queueBytes || self == .activeFlows }
}

public final class PeerStats: @unchecked Sendable {  // every field is read and written through relaxed atomics; the histogram pointer is published with release/acquire
    private let storage: UnsafeMutablePointer<UInt64>
    /// Address of the sojourn histogram's bucket counts (0 until the tun-reader first records one).
    private let histogramAddress = Atomic<UInt>(0)

    public init() {
        storage = .allocate(capacity: PeerStat.allCases.count)
        storage.initialize(repeating: 0, count: PeerStat.allCases.count)
    }

    deinit {
        storage.deallocate()
        if let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .acquiring)) {
            h.deallocate()
        }
    }

    /// Adds to a counter (any thread).
    @inline(__always) public func add(_ s: PeerStat, _ v: UInt64 = 1) {
        if v != 0 { vf_counter_add(storage + s.rawValue, v) }
    }

    /// Adds to a counter that only the calling thread writes (the tun-reader's figures).
    @inline(__always) func bump(_ s: PeerStat, _ v: UInt64) {
        if v != 0 { vf_counter_bump(storage + s.rawValue, v) }
    }

    /// Sets a gauge (its one writer is the tun-reader).
    @inline(__always) func set(_ s: PeerStat, _ v: UInt64) {
        if vf_counter_load(storage + s.rawValue) != v { vf_counter_store(storage + s.rawValue, v) }
    }

    @inline(__always) public subscript(_ s: PeerStat) -> UInt64 { vf_counter_load(storage + s.rawValue) }

    /// The histogram's bucket counts for the tun-reader to record into, allocated on first use (once per peer).
    /// Behind them lie the two window snapshots and their times (see the file comment).
    func sojournBuckets() -> UnsafeMutablePointer<UInt64> {
        if let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .relaxed)) { return h }
        let h = UnsafeMutablePointer<UInt64>.allocate(capacity: PeerStats.histogramWords)
        h.initialize(repeating: 0, count: PeerStats.histogramWords)
        histogramAddress.store(UInt(bitPattern: h), ordering: .releasing)
        return h
    }

    /// Live counts, snapshot 0, snapshot 1, then the monotonic time of each snapshot (0: before any rotation,
    /// i.e. the snapshot is the empty histogram at start).
    static let histogramWords = 3 * LogHistogram.bucketCount + 2
    /// Rotations so far; snapshot `generation & 1` is the base of the recent window.
    private let windowGeneration = Atomic<UInt64>(0)

    /// tun-reader, once per window: the snapshot that was the latest becomes the base of the recent window, and
    /// the live counts are copied into the other one, stamped `now`.
    func rotateSojournWindow(now: UInt64) {
        guard let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .relaxed)) else {
            return
        }
        let n = LogHistogram.bucketCount
        let g = windowGeneration.load(ordering: .relaxed) &+ 1
        // Publish first, then overwrite the old base: a reader still on it sees the generation change and retries.
        windowGeneration.store(g, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        let latest = Int((g &+ 1) & 1)
        for i in 0..<n { vf_counter_store(h + n * (1 + latest) + i, vf_counter_load(h + i)) }
        vf_counter_store(h + 3 * n + latest, now)
    }

    /// The sojourn counts of the recent window (live minus its base) and when that window began (monotonic ns;
    /// 0: at start, no rotation yet). Nil if this peer never dequeued through fq_codel.
    public func recentSojournSnapshot() -> (counts: [UInt64], since: UInt64)? {
        guard let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .acquiring)) else {
            return nil
        }
        let n = LogHistogram.bucketCount
        while true {
            let g = windowGeneration.load(ordering: .acquiring)
            let base = Int(g & 1)
            var counts = [UInt64](repeating: 0, count: n)
            // The live counts only grow, so reading them after the base never goes below it.
            let baseCounts = (0..<n).map { vf_counter_load(h + n * (1 + base) + $0) }
            let since = vf_counter_load(h + 3 * n + base)
            for i in 0..<n {
                let live = vf_counter_load(h + i)
                counts[i] = live >= baseCounts[i] ? live - baseCounts[i] : 0
            }
            atomicMemoryFence(ordering: .acquiring)
            if windowGeneration.load(ordering: .relaxed) == g { return (counts, since) }
        }
    }

    /// Counts one sojourn (nanoseconds) into buckets from `sojournBuckets()` (tun-reader only).
    @inline(__always) static func recordSojourn(_ ns: UInt64, into buckets: UnsafeMutablePointer<UInt64>) {
        vf_counter_bump(buckets + LogHistogram.bucket(of: ns), 1)
    }

    /// A copy of the sojourn histogram since start (nil if this peer never dequeued through fq_codel).
    public func sojournSnapshot() -> [UInt64]? {
        guard let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .acquiring)) else {
            return nil
        }
        return (0..<LogHistogram.bucketCount).map { vf_counter_load(h + $0) }
    }
}

/// When the tun-reader rotates the sojourn windows of all peers (a fake clock drives it in tests).
public struct SojournWindow: Sendable, Equatable {
    /// The window length: recent sojourn figures span one to two of these.
    public static let length: UInt64 = 10_000_000_000
    /// The next rotation (monotonic ns).
    public private(set) var next: UInt64

    public init(now: UInt64) { next = now &+ SojournWindow.length }

    /// Whether a rotation is due at `now`; if so the next one is one window later (from now: after a stall the
    /// windows do not try to catch up).
    public mutating func due(now: UInt64) -> Bool {
        guard now >= next else { return false }
        next = now &+ SojournWindow.length
        return true
    }
}
