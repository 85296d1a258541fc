// Per-peer statistics for `vpnfast show`: drops by reason, ECN marks, queue gauges and a sojourn histogram.
//
// Who writes what (all relaxed; readers such as the status server may look at any time and see a recent value):
//   tun-reader  the send-side fq_codel figures: CoDel and limit drops, CE marks; and after each round the queue gauges (packets, bytes, active flows); and the sojourn histogram, which it
//               alone writes (single-writer bumps, no locked instructions), allocated on the peer's first dequeue.
//   udp-writer  tx_packets, once per batch. Staged-packet overflow: whichever thread stages.
//   tun-writer  rx_packets once per batch; bad-MAC, replay and ECN drops, CE received and ECN anomalies as they
//               happen (those are rare events, counted next to the device-wide counter of the same name).
//   receive-side CoDel (Pipeline/ReceiveAQM.swift, tun-writer only): `rxCodelDrops` and `rxCodelCeMarks`.
// Device-wide counters (Counters.swift) are kept as before; these split some of them by peer.
//
// Size: an idle peer costs the object and one small counter array (about 200 bytes); the histogram (about
// 800 bytes) exists only for peers that have sent through fq_codel.
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
    func sojournBuckets() -> UnsafeMutablePointer<UInt64> {
        if let h = UnsafeMutablePointer<UInt64>(bitPattern: histogramAddress.load(ordering: .relaxed)) { return h }
        let h = UnsafeMutablePointer<UInt64>.allocate(capacity: LogHistogram.bucketCount)
        h.initialize(repeating: 0, count: LogHistogram.bucketCount)
        histogramAddress.store(UInt(bitPattern: h), ordering: .releasing)
        return h
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
