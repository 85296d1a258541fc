// Receive-side CoDel in the pipeline (the algorithm is Queueing/ReceiveCoDel.swift):
//   udp-reader  once per batch: read CLOCK_REALTIME and the monotonic clock, turn kernel stamps into sojourns
//               and note how far into the batch more than an MTU was queued behind a datagram.
//   tun-writer  per authenticated data packet, after RFC 6040 decapsulation: feed the sending peer's CoDel;
//               mark CE (ECN-capable inner packet, ECN on) or drop (Not-ECT, or --no-ecn). Counted as
//               rx_ce_marks and rx_drop_codel.
// Off with --no-aqm. Each peer's state is allocated on its first judged packet, so idle peers cost one pointer.

/// Per-peer receive CoDel states, owned by the tun-writer thread.
final class ReceiveAQM: @unchecked Sendable {  // the states are only read and written by the one tun-writer thread
    let params: CoDelParameters
    let peerCount: Int
    private let states: UnsafeMutablePointer<UnsafeMutablePointer<ReceiveCoDel>?>

    init(peers: Int, params: CoDelParameters) {
        self.params = params
        peerCount = peers
        states = .allocate(capacity: max(1, peers))
        states.initialize(repeating: nil, count: max(1, peers))
    }

    deinit {
        for i in 0..<peerCount {
            if let s = states[i] { s.deinitialize(count: 1); s.deallocate() }
        }
        states.deallocate()
    }

    /// The peer's state, created on first use (once per peer, not per packet).
    @inline(__always) func state(_ peer: Int) -> UnsafeMutablePointer<ReceiveCoDel> {
        if let s = states[peer] { return s }
        let s = UnsafeMutablePointer<ReceiveCoDel>.allocate(capacity: 1)
        s.initialize(to: ReceiveCoDel())
        states[peer] = s
        return s
    }

    /// Whether the peer has a state yet (for tests).
    func hasState(_ peer: Int) -> Bool { states[peer] != nil }
}

extension Device {
    /// udp-reader: sojourns of the batch just received (one realtime clock read per batch).
    @inline(__always) func noteSojourns(_ batch: PacketBatch) {
        guard let aqm = receiveAQM else { return }
        batch.receivedAt = clock.now()
        batch.backlogAboveMTU = ReceiveSojourn.fill(
            timestamps: batch.timestamps, lengths: batch.lengths, count: batch.count,
            realtimeNow: realtimeNanoseconds(), socketNotEmpty: bind.lastReceiveFilled, mtu: aqm.params.mtu,
            sojourns: batch.sojourns)
    }

    /// tun-writer: receive CoDel for datagram `i` of `batch`, whose decapsulated inner packet is at `packet`.
    /// Returns false when the packet must be dropped (it is counted); a CE mark is written into the packet.
    @inline(__always) func receiveCoDel(_ batch: PacketBatch, _ i: Int, peer: Int32,
                                        packet: UnsafeMutableRawPointer, length: Int) -> Bool {
        guard let aqm = receiveAQM else { return true }
        let sojourn = batch.sojourns[i]
        if sojourn == ReceiveSojourn.unknown { return true }
        let ecn = ECN.readECN(packet: packet, length: length)
        let capable = ecn != nil && ecn != .notECT
        switch aqm.state(Int(peer)).pointee.admit(sojourn: sojourn, backlogAboveMTU: i < batch.backlogAboveMTU,
                                                  now: batch.receivedAt, ecnCapable: capable, params: aqm.params) {
        case .forward:
            return true
        case .markCE:
            if ECN.markCE(packet: packet, length: length) {
                counters.add(.rxCeMarks)
                return true
            }
            counters.add(.rxDropCodel)
            return false
        case .drop:
            counters.add(.rxDropCodel)
            return false
        }
    }
}
