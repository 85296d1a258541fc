// The receive express lane (with fq_codel; off with --no-aqm). When the receiver is busy, a ping or an
// acknowledgement read from the socket used to wait behind every bulk datagram read before it — up to the
// receive budget, thousands of datagrams — for the crypto workers and then the ordered tun-writer: measured on
// the CPU-bound benchmark, 1.8 ms median and 8 ms at the 99th percentile between the sender's wire and the
// receiver's TUN. The send side's express lane cannot help there: the wait is on the receiving end.
//
// So the udp-reader, before handing a batch to the pool, opens a copy of each small datagram in it (at most
// `perBatch`, each up to ExpressRule.maxDatagram bytes), decides with Queueing/ReceiveExpress.swift which of
// them may overtake the bulk still in flight, and delivers those itself at once (judged as the tun-writer
// would, then written to the TUN without the tun-writer's ring). Their originals are then marked dropped in the
// batch, so nothing is delivered twice; the others stay in the batch and are opened by the workers as usual.
//
// One thread delivers at a time: the tun-writer holds `deliveryLock` while it judges and writes a list (once per
// list, not per packet), the udp-reader while it delivers an express or run-to-completion batch. The lock also
// guards the express flow table. Express packets bypass receive CoDel, as a sparse flow in fq_codel has a queue
// of its own: their short wait says nothing about the bulk queue and must not reset its CoDel state.
import Crypto

/// Device-wide state of the lane: the flow table (under Device.deliveryLock) and the key that hashes inner flows.
final class ReceiveExpress: @unchecked Sendable {  // the table is used only under Device.deliveryLock
    @exclusivity(unchecked) var table = ExpressFlowTable()
    let hasher = FlowHasher(key: SecureRandom.bytes(16))
}

/// The udp-reader's own buffers for the lane: a small batch over a slab of its own, one slot per copy.
final class ReceiveExpressLane {
    /// Small datagrams checked per batch; more than this (a flood of small packets, which is not sparse) go to
    /// the pool unchecked, and until they are delivered nothing overtakes.
    static let perBatch = 32
    /// The most datagrams that may be between the socket and the TUN, the batch being read included, for the lane
    /// to run: half the replay window (ReplayWindow.windowSize).
    static let maxGap = Int(ReplayWindow.windowSize / 2)

    /// Holds the copies' slots (the batch points into it).
    let slab: PacketSlab
    /// Carries the copies through judge(); slot k holds copy k.
    let batch: PacketBatch
    /// For each copy, its datagram's index in the batch read.
    let origin: UnsafeMutablePointer<Int>
    let scratch: DeliveryScratch
    let context: AEADContext

    init(aead: AEADImplementation, node: Int?) {
        slab = PacketSlab(slotSize: ExpressRule.maxDatagram, slotCount: Self.perBatch, node: node)
        batch = PacketBatch(slab: slab, firstSlot: 0, bufferCount: Self.perBatch, capacity: Self.perBatch)
        origin = .allocate(capacity: Self.perBatch)
        origin.initialize(repeating: 0, count: Self.perBatch)
        scratch = DeliveryScratch(capacity: Self.perBatch)
        context = AEADContext(aead)
    }

    deinit { origin.deallocate() }
}

extension Device {
    /// udp-reader: delivers the small datagrams of `batch` that may overtake the bulk in flight (see the top of the
    /// file); `number` is the bulk batch number `batch` gets if it goes to the pool, `inFlight` how many datagrams
    /// are read and not yet delivered. Returns how many were taken out of `batch` (delivered, or dropped and
    /// counted as the tun-writer would).
    func expressAhead(_ batch: PacketBatch, _ lane: ReceiveExpressLane, _ express: ReceiveExpress,
                      number: UInt64, inFlight: Int) -> Int {
        // A packet that goes ahead moves its keypair's replay window past everything in flight: the oldest of
        // those must stay well inside the window (counters also skip what was lost on the way), or it would be
        // rejected as too old when it arrives. With many workers the receive budget alone can exceed it.
        guard inFlight + batch.count <= ReceiveExpressLane.maxGap else {
            express.table.noteUnchecked(batch: number)
            return 0
        }
        let copy = lane.batch
        copy.reset()
        var k = 0
        var unchecked = false
        for i in 0..<batch.count where batch.keypairSlot[i] != PacketBatch.dropped
            && Int(batch.lengths[i]) <= ExpressRule.maxDatagram {
            guard k < ReceiveExpressLane.perBatch else {
                unchecked = true
                break
            }
            let p = copy.buffers[k]
            p.copyMemory(from: batch.packets[i], byteCount: Int(batch.lengths[i]))
            let item = batch.items[i]
            copy.packets[k] = p
            copy.lengths[k] = batch.lengths[i]
            copy.endpoints[k] = batch.endpoints[i]
            copy.tos[k] = batch.tos[i]
            copy.timestamps[k] = batch.timestamps[i]
            copy.items[k] = AEADItem(data: p + MessageLayout.transportHeaderSize, key: item.key,
                                     counter: item.counter, length: item.length)
            copy.keypairSlot[k] = copy.slot(for: batch.keypairs[Int(batch.keypairSlot[i])])
            lane.origin[k] = i
            k += 1
        }
        if k == 0 { return 0 }   // (unchecked implies k == perBatch)
        copy.count = k
        lane.context.open(UnsafeMutableBufferPointer(start: copy.items, count: k))
        var moved = 0
        deliveryLock.lock()
        for j in 0..<k {
            let item = copy.items[j]
            var ahead = false
            if item.ok {
                let length = Int(item.length)
                if length == 0 {
                    ahead = true   // a keepalive: no inner packet, no flow
                } else {
                    let inner = copy.packets[j] + MessageLayout.transportHeaderSize
                    let hash = express.hasher.hash(packet: inner, length: length)
                    switch ExpressRule.verdict(inner, length) {
                    case .candidate: ahead = express.table.admit(hash: hash, batch: number)
                    case .inOrder: express.table.keepInOrder(hash: hash, batch: number)
                    }
                }
            }
            // (A copy that did not authenticate stays behind: the original is judged and counted in order.)
            if ahead { moved += 1 } else { copy.keypairSlot[j] = PacketBatch.dropped }
        }
        if unchecked { express.table.noteUnchecked(batch: number) }
        if moved > 0 {
            // Counted before delivery, as the run-to-completion path counts.
            counters.add(.rxExpressPackets, UInt64(moved))
            deliver(copy, lane.scratch, express: true)
        }
        deliveryLock.unlock()
        if moved > 0 {
            for j in 0..<k where copy.keypairSlot[j] != PacketBatch.dropped { markDropped(batch, lane.origin[j]) }
        }
        copy.reset()
        return moved
    }
}
