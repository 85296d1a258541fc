// Receive-side CoDel in the pipeline (the algorithm is Queueing/ReceiveCoDel.swift):
//   udp-reader  notes in the batch whether its receive call filled every slot (the socket may hold more).
//   tun-writer  once per batch, one CLOCK_REALTIME read: each datagram's sojourn is the time since the kernel
//               stamped it, i.e. the wait in the socket buffer plus the wait in vpnfast's own receive pipeline
//               (batches queued for crypto and for the ordered tun-writer). That is CoDel's dequeue time: the
//               tun-writer is where a packet leaves the receive side's queue. Measured on a CPU-starved
//               receiver, the standing queue sits in the pipeline's batches (up to 8 × 1024 datagrams with
//               UDP GRO), not in the socket: the udp-reader drains the socket quickly, so the socket-only
//               sojourn stayed below 5 ms while pings through the tunnel waited 20 ms.
//               Then per authenticated data packet, after RFC 6040 decapsulation: feed the sending peer's
//               CoDel; mark CE (ECN-capable inner packet, ECN on) or drop (Not-ECT, or --no-ecn). Counted as
//               rx_ce_marks and rx_drop_codel.
//   Backlog ("more than one MTU queued behind"): the datagrams behind it in its batch, or anything behind the
//   batch (another batch waiting for the tun-writer, or a receive that filled its slots).
// Off with --no-aqm. Each peer's state is allocated on its first judged packet, so idle peers cost one pointer.

/// Per-peer receive CoDel states, used by whichever thread delivers (the tun-writer, or the udp-reader for a batch
/// it runs to completion) under Device.deliveryLock. The express lane's packets do not pass through them.
final class ReceiveAQM: @unchecked Sendable {  // the states are used under Device.deliveryLock (see above)
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
    /// udp-reader: remember whether the receive that filled `batch` took all it asked for.
    @inline(__always) func noteReceived(_ batch: PacketBatch) {
        if receiveAQM != nil { batch.receiveFilled = bind.lastReceiveFilled }
    }

    /// tun-writer, once per batch: the sojourn of every datagram (one realtime clock read) and the backlog test.
    @inline(__always) func prepareReceiveCoDel(_ batch: PacketBatch) {
        guard let aqm = receiveAQM else { return }
        batch.backlogAboveMTU = ReceiveSojourn.fill(
            timestamps: batch.timestamps, lengths: batch.lengths, count: batch.count,
            realtimeNow: realtimeNanoseconds(), moreBehind: batch.receiveFilled || receiveQueue.count > 0,
            mtu: aqm.params.mtu, sojourns: batch.sojourns)
    }

    /// tun-writer: receive CoDel for datagram `i` of `batch`, whose decapsulated inner packet is at `packet`;
    /// `now` is the monotonic time the tun-writer took the batch. Returns false when the packet must be dropped
    /// (it is counted); a CE mark is written into the packet.
    @inline(__always) func receiveCoDel(_ batch: PacketBatch, _ i: Int, peer: Int32,
                                        packet: UnsafeMutableRawPointer, length: Int, now: UInt64) -> Bool {
        guard let aqm = receiveAQM else { return true }
        let sojourn = batch.sojourns[i]
        if sojourn == ReceiveSojourn.unknown { return true }
        let ecn = ECN.readECN(packet: packet, length: length)
        let capable = ecn != nil && ecn != .notECT
        switch aqm.state(Int(peer)).pointee.admit(sojourn: sojourn, backlogAboveMTU: i < batch.backlogAboveMTU,
                                                  now: now, ecnCapable: capable, params: aqm.params) {
        case .forward:
            return true
        case .markCE:
            // (One delivering thread at a time writes these per-peer figures: Device.deliveryLock.)
            if ECN.markCE(packet: packet, length: length) {
                counters.add(.rxCeMarks)
                peers[Int(peer)].stats.bump(.rxCodelCeMarks, 1)
                return true
            }
            counters.add(.rxDropCodel)
            peers[Int(peer)].stats.bump(.rxCodelDrops, 1)
            return false
        case .drop:
            counters.add(.rxDropCodel)
            peers[Int(peer)].stats.bump(.rxCodelDrops, 1)
            return false
        }
    }
}
