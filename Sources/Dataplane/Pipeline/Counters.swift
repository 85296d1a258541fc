// Device-wide counters: every dropped packet is counted under a reason.
import CShims

public enum Counter: Int, CaseIterable, Sendable {
    case rxPackets, rxBytes, txPackets, txBytes
    case rxHandshakeInitiations, rxHandshakeResponses, rxCookieReplies, rxKeepalives
    case txHandshakeInitiations, txHandshakeResponses, txCookieReplies, txKeepalives
    case handshakesCompleted
    // Receive-side drops, one per reason.
    case rxDropTruncated, rxDropShort, rxDropBadType, rxDropBadSize, rxDropUnknownIndex, rxDropExpiredKey
    case rxDropBadMac, rxDropReplay, rxDropBadInner, rxDropDisallowedSource, rxDropHandshakeQueueFull
    case rxDropBadMac1, rxDropBadMac2, rxDropRateLimited, rxDropBadInitiation, rxDropBadResponse
    case rxDropBadCookie, rxDropStaleTimestamp, rxDropInitiationFlood, rxDropTunWrite
    /// RFC 6040: inner Not-ECT under an outer CE must be dropped.
    case rxDropEcnNotEctCe
    // ECN through the tunnel: CE arriving on the outer header, and decapsulation anomalies ((!!!) and (!)).
    case rxOuterCe, ecnAnomalyDangerous, ecnAnomalyPossiblyDangerous
    // Send-side drops.
    case txDropNoRoute, txDropNoEndpoint, txDropBadInner, txDropStagedOverflow, txDropNoKey, txDropSendError
    case txDropBadOffload
    // fq_codel on the send path: drops at the queue limit (from the fattest flow), CoDel drops, CE marks.
    case txDropAqmLimit, txDropCodel, txCeMarks
    // CoDel on the receive side (sojourn in the socket buffer, from kernel timestamps): drops and CE marks.
    case rxDropCodel, rxCeMarks
    /// Packets of sparse flows sent through the send path's express lane, sealed and sent by the tun-reader
    /// (SendQueue.swift).
    case txExpressPackets
    /// Small received packets the udp-reader took ahead of the bulk batches in flight (the receive express lane,
    /// ReceiveExpressLane.swift), each then delivered or dropped and counted as usual.
    case rxExpressPackets
    /// Packets sealed and handed to the socket by the tun-reader, and transport messages opened by the udp-reader
    /// (each then delivered or dropped and counted as usual), because the batch was small and found its
    /// direction's pipeline idle (run to completion, no worker or writer woken).
    case txInlinePackets, rxInlinePackets

    /// The name used in logs and `show` output, e.g. rx_drop_bad_mac.
    public var name: String {
        var out = ""
        for ch in String(describing: self) {
            if ch.isUppercase { out.append("_"); out.append(Character(ch.lowercased())) } else { out.append(ch) }
        }
        return out
    }
}

/// A fixed array of 64-bit counters updated with relaxed atomic adds (per batch, not per packet where possible).
public final class Counters: @unchecked Sendable {  // all access goes through atomic C helpers
    private let storage: UnsafeMutablePointer<UInt64>

    public init() {
        storage = .allocate(capacity: Counter.allCases.count)
        storage.initialize(repeating: 0, count: Counter.allCases.count)
    }

    deinit { storage.deallocate() }

    @inline(__always) public func add(_ c: Counter, _ v: UInt64 = 1) {
        if v != 0 { vf_counter_add(storage + c.rawValue, v) }
    }

    @inline(__always) public subscript(_ c: Counter) -> UInt64 { vf_counter_load(storage + c.rawValue) }

    /// Total of all drop counters.
    public var totalDrops: UInt64 {
        Counter.allCases.filter { $0.name.contains("_drop_") }.reduce(0) { $0 + self[$1] }
    }

    public func snapshot() -> [(Counter, UInt64)] { Counter.allCases.map { ($0, self[$0]) } }
}
