// The send path with fq_codel (the default; --no-aqm keeps the plain FIFO path of Send.swift):
//   tun-reader: drain the TUN promptly into packet slots → route to a peer (no session: stage and ask for a
//               handshake) → hash the inner flow → enqueue in the peer's FQ-CoDel (over the limit: drop from the
//               fattest flow) → while the crypto pool has room (a fixed budget of packets in flight, like BQL),
//               dequeue round-robin across active peers (CoDel drops or CE-marks here, on the time spent queued)
//               → nonces, headers, outer TOS → send queue + crypto queue.
//   udp-writer: after sending a batch, gives its slots back and wakes the reader if it waits for room.
// So the standing queue forms in fq_codel, where it is managed, not in the crypto pool or the TUN.
//
// The express lane: a packet of a sparse flow (a new flow holding one packet: a ping, a DNS query; see
// PeerQueue.dequeueSparse) does not wait for the crypto pool at all. Through the pool it would wait behind the
// whole budget in flight (384 packets with two workers: about 2 ms of sealing on a busy 2-vCPU machine) and for
// two more threads to be scheduled. Instead, each round and before the bulk batches, the tun-reader takes such
// packets out of fq_codel (at most a crypto chunk), seals them itself (a few microseconds for small packets) and
// sends them in one call. The lane opens only while a batch or more is in flight, when there is a queue to skip;
// a light direction (acknowledgements) keeps its packets in batches, which the crypto pool takes ahead of bulk
// jobs (CryptoQueue's urgent ring) but which are sent in order.
// Packets of different flows are reordered, as fq_codel reorders them anyway, and their counters stay far inside
// the receiver's replay window. A flow's own packets are never reordered: bulk batches are numbered as they are
// dispatched (`dispatched`, stamped on each flow they serve), the udp-writer counts those it has sent
// (`sentBatches`, in order), and a flow whose last bulk batch is not yet sent is not sparse.
import CShims
import Crypto
import Synchronization

/// Send-side queueing state. Everything but `returned`/`inFlight`/`waiting`/`sentBatches` belongs to the tun-reader
/// thread.
final class SendQueueing: @unchecked Sendable {  // the reader owns the queues; `returned` is locked, the rest atomic
    let slab: PacketSlab
    let fq: FQCoDelShared
    // Touched per packet: no dynamic exclusivity checks, which cost a runtime begin/end-access call per access
    // (about 5 % of the tun-reader's CPU in a perf profile of the CPU-bound benchmark). The tun-reader alone
    // uses these; `returned` only under returnLock.
    @exclusivity(unchecked) var queues: [PeerQueue?]
    @exclusivity(unchecked) var freeSlots: [UInt32]
    @exclusivity(unchecked) var active: [Int32] = []
    @exclusivity(unchecked) var isActive: [Bool]
    @exclusivity(unchecked) var cursor = 0
    @exclusivity(unchecked) var expressCursor = 0
    /// Bulk batches handed to the crypto pool so far (the dispatch stamp of the last one); tun-reader only.
    @exclusivity(unchecked) var dispatched: UInt32 = 0
    /// Bulk batches the udp-writer has sent so far (it sends them in dispatch order).
    let sentBatches = Atomic<UInt32>(0)
    let hasher: FlowHasher
    /// When the peers' recent-sojourn windows turn over (PeerStats).
    @exclusivity(unchecked) var sojournWindow: SojournWindow
    @exclusivity(unchecked) var dropped: [UInt32] = []
    /// Slots the writer has finished with, waiting to be taken back by the reader (one lock per batch).
    let returnLock = ConditionLock()
    @exclusivity(unchecked) var returned: [UInt32] = []
    let inFlight = Atomic<Int>(0)
    let waiting = Atomic<Bool>(false)
    let budget: Int
    let readPointers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    let readLengths: UnsafeMutablePointer<UInt32>
    let readHandles: UnsafeMutablePointer<UInt32>
    /// The inner flow hash of each queued slot (for --flowlabel).
    let hashes: UnsafeMutablePointer<UInt32>
    /// The inner DS field (TOS / traffic class) of each queued slot, read at enqueue while the packet is in cache,
    /// so that dispatch need not read the packet again (it has often left the cache by then).
    let innerTOS: UnsafeMutablePointer<UInt8>

    init(peers: Int, slots: Int, slotSize: Int, parameters: FQCoDelParameters, budget: Int, now: UInt64,
         node: Int? = nil) {
        sojournWindow = SojournWindow(now: now)
        slab = PacketSlab(slotSize: slotSize, slotCount: slots, node: node)
        fq = FQCoDelShared(handleCapacity: slots, parameters: parameters)
        queues = Array(repeating: nil, count: peers)
        isActive = Array(repeating: false, count: peers)
        freeSlots = (0..<UInt32(slots)).reversed().map { $0 }
        returned.reserveCapacity(slots)
        dropped.reserveCapacity(4 * parameters.dropBatchSize + parameters.codel.maxDropsPerDequeue)
        active.reserveCapacity(peers)
        hasher = FlowHasher(key: SecureRandom.bytes(16))
        self.budget = budget
        readPointers = .allocate(capacity: PacketBatch.capacity)
        readPointers.initialize(repeating: slab.base, count: PacketBatch.capacity)
        readLengths = .allocate(capacity: PacketBatch.capacity)
        readLengths.initialize(repeating: 0, count: PacketBatch.capacity)
        readHandles = .allocate(capacity: PacketBatch.capacity)
        readHandles.initialize(repeating: 0, count: PacketBatch.capacity)
        hashes = .allocate(capacity: slots)
        hashes.initialize(repeating: 0, count: slots)
        innerTOS = .allocate(capacity: slots)
        innerTOS.initialize(repeating: 0, count: slots)
    }

    deinit {
        readPointers.deallocate(); readLengths.deallocate(); readHandles.deallocate(); hashes.deallocate()
        innerTOS.deallocate()
    }

    /// Takes back the slots the writer returned.
    func reclaim() {
        returnLock.withLock {
            if !returned.isEmpty {
                freeSlots.append(contentsOf: returned)
                returned.removeAll(keepingCapacity: true)
            }
        }
    }

    var queuedPackets: Int { queues.reduce(0) { $0 + ($1?.queuedPackets ?? 0) } }
}

extension Device {
    func tunReaderLoopAQM(_ q: SendQueueing) {
        let expressContext = AEADContext(config.aead)
        var tally = SendTally(capacity: sendPool.maxPacketsPerBatch)
        let headroom = Device.headroom
        let capacity = q.slab.slotSize - headroom - MessageLayout.tagSize - MessageLayout.paddingMultiple
        while isRunning {
            q.reclaim()
            let haveQueued = !q.active.isEmpty
            var room = q.inFlight.load(ordering: .sequentiallyConsistent) < q.budget && sendPool.available > 0
            if haveQueued && !room {
                // About to wait for the writer: say so first, then look again, so a batch finishing in between
                // still wakes us (the TUN's wake-up stays pending until the next read).
                q.waiting.store(true, ordering: .sequentiallyConsistent)
                room = q.inFlight.load(ordering: .sequentiallyConsistent) < q.budget && sendPool.available > 0
            }
            // Block on the TUN only when there is nothing we could do without new packets (or, with --rate,
            // until the next full-size packet's tokens have arrived).
            let shaperWait = shaper?.waitMilliseconds(now: clock.now()) ?? 0
            let timeout: Int32 = (haveQueued && room) ? shaperWait : 1000
            // A read may return a whole super-packet split into up to a batch of segments: read only with a
            // batch's worth of free slots, so the split never has to drop for lack of room.
            let want = q.freeSlots.count >= PacketBatch.capacity ? PacketBatch.capacity : 0
            var n = 0
            if want > 0 {
                for i in 0..<want {
                    let h = q.freeSlots[q.freeSlots.count - 1 - i]
                    q.readHandles[i] = h
                    q.readPointers[i] = q.slab.slot(Int(h)) + headroom
                }
                do {
                    n = try tun.read(q.readPointers, capacity: capacity, lengths: q.readLengths, count: want,
                                     timeoutMs: timeout)
                } catch {
                    if isRunning { logger.error("reading from \(tun.name) failed: \(error)") }
                    break
                }
                q.waiting.store(false, ordering: .relaxed)
                q.freeSlots.removeLast(n)
            } else {
                // (Nearly) every slot is queued or in flight: wait for the writer to return some.
                let wait = haveQueued && shaperWait > 0 ? UInt64(shaperWait) * 1_000_000 : 100_000_000
                q.returnLock.withLock { if q.returned.isEmpty { q.returnLock.wait(nanoseconds: wait) } }
                q.waiting.store(false, ordering: .relaxed)
            }
            if n > 0 { enqueueRead(q, n) }
            scheduleInline(q, context: expressContext, tally: &tally)
            scheduleExpress(q, context: expressContext, tally: &tally)
            schedule(q)
            for peerID in q.active { publishGauges(peers[Int(peerID)], q.queues[Int(peerID)]!) }
            // Once per window, every peer's sojourn snapshot (idle peers too, so their recent figures empty).
            let now = clock.now()
            if q.sojournWindow.due(now: now) {
                for peer in peers { peer.stats.rotateSojournWindow(now: now) }
            }
        }
    }

    /// Publishes a peer's queue length and active flows for `show` (tun-reader, after each round).
    @inline(__always) func publishGauges(_ peer: Peer, _ queue: PeerQueue) {
        peer.stats.set(.queuePackets, UInt64(queue.queuedPackets))
        peer.stats.set(.queueBytes, queue.queuedBytes)
        peer.stats.set(.activeFlows, UInt64(queue.activeFlows))
    }

    /// Routes and enqueues the `n` packets just read into q.readHandles / q.readLengths.
    func enqueueRead(_ q: SendQueueing, _ n: Int) {
        let now = clock.now()
        let headroom = Device.headroom
        // A read is mostly runs of one peer (a super-packet's segments, a bulk flow): look the peer's session
        // up once per run, as route() does, not once per packet (a lock and reference counting each).
        // The run's peer and queue are held unretained (`peers` and q.queues keep them for the device's life):
        // a retain/release pair per packet on reference counts the other pipeline threads also touch cost
        // about 8 % of the tun-reader in a perf profile of the CPU-bound benchmark.
        var runPeer: Int32 = -1
        var peer: Unmanaged<Peer>?
        var hasKey = false
        var hasEndpoint = false
        var runQueue: Unmanaged<PeerQueue>?
        // Consecutive packets of one flow (a super-packet's segments; a read can also hold several super-packets
        // or plain packets of one flow in a row) share their flow hash, and fq_codel serves them as one train of
        // at most 64 KiB (counting headers), as Linux serves the super-packet itself: the receiver coalesces them
        // again. In the CPU-bound benchmark the two ends then made 8 % fewer system calls per byte and the loaded
        // ping p99 fell by about 1 ms (8 paired rounds, 7 lower); throughput did not move beyond the noise (+2.8 %
        // and −1.5 % in two runs of 6 and 8 paired rounds). Not with --rate: at a shaped WAN rate a 64 KiB train
        // holds the other flows back for milliseconds (as cake splits GSO packets below 1 Gbit/s).
        let trains = shaper == nil
        var memo = FlowHashMemo()
        var trainPeer: Int32 = -1
        var trainHash: UInt32 = 0
        var trainBytes = 0
        for i in 0..<n {
            let h = q.readHandles[i]
            let p = q.slab.slot(Int(h)) + headroom
            let length = Int(q.readLengths[i])
            guard let peerID = destinationPeer(p, length) else { q.freeSlots.append(h); continue }
            if peerID != runPeer {
                runPeer = peerID
                let current = peers[Int(peerID)]
                peer = Unmanaged.passUnretained(current)
                (hasKey, hasEndpoint) = current.lock.withLock {
                    (current.sendingKeypair(now: now) != nil, current.endpoint != nil)
                }
                runQueue = q.queues[Int(peerID)].map { Unmanaged.passUnretained($0) }
            }
            guard hasEndpoint else {
                counters.add(.txDropNoEndpoint)
                q.freeSlots.append(h)
                continue
            }
            if !hasKey && (runQueue?._withUnsafeGuaranteedRef { $0.queuedPackets } ?? 0) == 0 {
                peer.unsafelyUnwrapped._withUnsafeGuaranteedRef { stageAndAsk($0, p, length) }
                q.freeSlots.append(h)
                continue
            }
            let queue: Unmanaged<PeerQueue>
            if let existing = runQueue { queue = existing } else {
                let created = q.fq.makePeerQueue()
                q.queues[Int(peerID)] = created
                queue = Unmanaged.passUnretained(created)
                runQueue = queue
            }
            // (destinationPeer has checked for a whole IPv4 or IPv6 header, so there is a DS field.)
            let tos = ECN.readTOS(packet: p, length: length) ?? 0
            q.innerTOS[Int(h)] = tos
            let ecn = tos & 3 != ECNCodepoint.notECT.rawValue
            let hash = q.hasher.hash(packet: p, length: length, memo: &memo)
            q.hashes[Int(h)] = hash
            let continues = trains && trainPeer == peerID && trainHash == hash
                && trainBytes + length <= Device.maxTrainBytes
            if continues { trainBytes += length } else { (trainPeer, trainHash, trainBytes) = (peerID, hash, length) }
            let r = queue._withUnsafeGuaranteedRef {
                $0.enqueue(handle: h, length: UInt32(max(length, 1)), hash: hash, ecnCapable: ecn,
                           continuesTrain: continues, now: now, dropped: &q.dropped)
            }
            if r.dropped > 0 {
                counters.add(.txDropAqmLimit, UInt64(r.dropped))
                peer.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.stats.bump(.txDropAqmLimit, UInt64(r.dropped)) }
                q.freeSlots.append(contentsOf: q.dropped)
                q.dropped.removeAll(keepingCapacity: true)
            }
            if !q.isActive[Int(peerID)] {
                q.isActive[Int(peerID)] = true
                q.active.append(peerID)
            }
        }
    }

    /// The most inner bytes fq_codel serves as one train: a TSO super-packet's (gso_max_size).
    static let maxTrainBytes = 65536

    func stageAndAsk(_ peer: Peer, _ p: UnsafeRawPointer, _ length: Int) {
        let overflow = peer.lock.withLock { peer.stage(p, length) }
        if overflow { counters.add(.txDropStagedOverflow); peer.stats.add(.txDropStagedOverflow) }
        wantHandshake(peer)
    }

    /// Active peers the express lane looks at per round (from a rotating cursor), so that a round stays cheap
    /// with thousands of active peers.
    static let expressScan = 128
    /// The lane opens only while at least this many packets are in flight: below that a sparse packet waits for
    /// little in the bulk lane, and sending it there keeps it in a batch (a lone ACK stream costs no extra
    /// sendmmsg per round of the reader).
    static let expressAbove = PacketBatch.capacity

    /// The express lane (see the file comment): up to a crypto chunk of sparse flows' packets, sealed and sent
    /// by the tun-reader itself.
    func scheduleExpress(_ q: SendQueueing, context: AEADContext, tally: inout SendTally) {
        guard !q.active.isEmpty, q.inFlight.load(ordering: .relaxed) >= Device.expressAbove,
              shaper?.ready(now: clock.now()) ?? true, let batch = sendPool.tryTake() else {
            return
        }
        batch.work = .encrypt
        let now = clock.now()
        let sent = q.sentBatches.load(ordering: .acquiring)
        var scanned = 0
        while scanned < min(q.active.count, Device.expressScan) && batch.count < Device.cryptoChunk
                && shaper?.ready(now: now) ?? true {
            if q.expressCursor >= q.active.count { q.expressCursor = 0 }
            let peerID = q.active[q.expressCursor]
            let peer = peers[Int(peerID)]
            let queue = q.queues[Int(peerID)]!
            scanned += 1
            var marks: UInt64 = 0
            if var d = queue.dequeueSparse(now: now, sentThrough: sent, dropped: &q.dropped) {
                let (keypair, endpoint) = peer.lock.withLock { (peer.sendingKeypair(now: now), peer.endpoint) }
                var sending = keypair.map { SendingKeypair($0) }
                let sojourns = peer.stats.sojournBuckets()
                while true {
                    take(d, into: batch, q, peer: peer, keypair: &sending, endpoint: endpoint, sojourns: sojourns,
                         marks: &marks, now: now)
                    guard batch.count < Device.cryptoChunk && shaper?.ready(now: now) ?? true,
                          let next = queue.dequeueSparse(now: now, sentThrough: sent, dropped: &q.dropped) else { break }
                    d = next
                }
            }
            settle(q, peer, queue, marks: marks)  // (CoDel may drop on the way even when nothing is sparse)
            if queue.queuedPackets == 0 {
                // Emptied: off the active list here (the bulk round would find it empty and do the same).
                retire(q, at: q.expressCursor, peer, queue, now: now)
            } else {
                q.expressCursor += 1
            }
        }
        if batch.count > 0 {
            counters.add(.txExpressPackets, UInt64(batch.count))
            context.seal(UnsafeMutableBufferPointer(start: batch.items, count: batch.count))
            transmit(batch, tally: &tally)
            for i in 0..<batch.count { q.freeSlots.append(batch.handles[i]) }
        }
        sendPool.give(batch)
    }

    /// Puts packet `d`, just dequeued from `peer`'s fq_codel, into `batch`: sojourn recorded, CE mark applied,
    /// nonce and header written. Without a session (it ended while the packet queued) the packet is staged for
    /// the next one instead.
    @inline(__always)
    func take(_ d: FQCoDelDequeued, into batch: PacketBatch, _ q: SendQueueing, peer: Peer,
              keypair: inout SendingKeypair?,
              endpoint: Endpoint?, sojourns: UnsafeMutablePointer<UInt64>, marks: inout UInt64, now: UInt64) {
        let h = d.handle
        let p = q.slab.slot(Int(h)) + Device.headroom
        let length = Int(q.fq.length(of: h))
        PeerStats.recordSojourn(d.sojourn, into: sojourns)
        if d.markCE {
            // CoDel marks only ECN-capable packets; the outer header copies the mark (RFC 6040).
            if ECN.markCE(packet: p, length: length) { q.innerTOS[Int(h)] |= ECNCodepoint.ce.rawValue }
            marks += 1
        }
        guard let endpoint, let counter = keypair?.reserve(now: now) else {
            stageAndAsk(peer, p, length)
            q.freeSlots.append(h)
            return
        }
        prepare(batch, batch.count, slot: q.slab.slot(Int(h)), length: length, innerTOS: q.innerTOS[Int(h)],
                keypair: &keypair!, counter: counter, endpoint: endpoint)
        flowLabels?.apply(to: &batch.endpoints[batch.count], hash: q.hashes[Int(h)])
        shaper?.consume(EgressShaper.outerBytes(messageLength: batch.lengths[batch.count], endpoint: endpoint),
                        now: now)
        batch.handles[batch.count] = h
        batch.count += 1
    }

    /// Takes an emptied peer off the active list (entry `index`), keeping both round-robin cursors on the peer
    /// they pointed at, and lets its queue give its flow table back if it has idled long enough.
    @inline(__always)
    func retire(_ q: SendQueueing, at index: Int, _ peer: Peer, _ queue: PeerQueue, now: UInt64) {
        q.isActive[Int(q.active[index])] = false
        q.active.remove(at: index)
        if q.cursor > index { q.cursor -= 1 }
        if q.expressCursor > index { q.expressCursor -= 1 }
        _ = queue.releaseIfIdle(now: now)
        publishGauges(peer, queue)
    }

    /// After taking from a peer's queue: counts its CE marks and CoDel drops and frees the dropped slots.
    @inline(__always)
    func settle(_ q: SendQueueing, _ peer: Peer, _ queue: PeerQueue, marks: UInt64) {
        counters.add(.txCeMarks, marks)
        peer.stats.bump(.txCeMarks, marks)
        if !q.dropped.isEmpty {
            counters.add(.txDropCodel, UInt64(q.dropped.count))
            peer.stats.bump(.txDropCodel, UInt64(q.dropped.count))
            q.freeSlots.append(contentsOf: q.dropped)
            q.dropped.removeAll(keepingCapacity: true)
        }
    }

    /// Moves packets from the peers' fq_codel queues into crypto batches while the in-flight budget (and, with
    /// --rate, the shaper) allows.
    func schedule(_ q: SendQueueing) {
        while !q.active.isEmpty && q.inFlight.load(ordering: .acquiring) < q.budget
                && shaper?.ready(now: clock.now()) ?? true {
            guard let batch = sendPool.tryTake() else { return }
            batch.work = .encrypt
            let now = clock.now()
            let stamp = q.dispatched &+ 1
            fill(batch, q, upTo: batch.capacity, stamp: stamp, now: now)
            if batch.count == 0 {
                sendPool.give(batch)
                continue
            }
            q.dispatched = stamp
            q.inFlight.add(batch.count, ordering: .acquiringAndReleasing)
            sendQueue.push(batch)
            // A batch of one chunk or less (a light send direction: acknowledgements, replies) is little work:
            // the workers take it ahead of bulk jobs, as on the receive side. It is still sent in order.
            cryptoQueue.push(batch, chunk: Device.cryptoChunk, urgent: batch.count <= Device.cryptoChunk)
        }
    }

    /// Dequeues into `batch` (up to `limit` packets) round-robin over the active peers, a bounded share each,
    /// until it is full or all are empty. `stamp`: the bulk dispatch number for the flows served (nil: the batch
    /// is sent before the tun-reader goes on, so no flow needs a newer one).
    @inline(__always)
    func fill(_ batch: PacketBatch, _ q: SendQueueing, upTo limit: Int, stamp: UInt32?, now: UInt64) {
        var scanned = 0
        while batch.count < limit && !q.active.isEmpty && scanned < q.active.count * 2
                && shaper?.ready(now: now) ?? true {
            if q.cursor >= q.active.count { q.cursor = 0 }
            let peerID = q.active[q.cursor]
            let peer = peers[Int(peerID)]
            let queue = q.queues[Int(peerID)]!
            let (keypair, endpoint) = peer.lock.withLock { (peer.sendingKeypair(now: now), peer.endpoint) }
            var sending = keypair.map { SendingKeypair($0) }
            var taken = 0
            var marks: UInt64 = 0
            if let stamp { queue.dispatchStamp = stamp }
            let sojourns = peer.stats.sojournBuckets()
            let share = min(64, limit - batch.count)
            if shaper == nil {
                // One packet ahead: its header and tail lines (written in take) are fetched while the packet
                // before it is prepared. A packet often leaves the cache while it queues.
                var next = queue.dequeue(now: now, dropped: &q.dropped)
                if let d = next { prefetch(q, d) }
                while let d = next {
                    taken += 1
                    next = taken < share ? queue.dequeue(now: now, dropped: &q.dropped) : nil
                    if let n = next { prefetch(q, n) }
                    take(d, into: batch, q, peer: peer, keypair: &sending, endpoint: endpoint, sojourns: sojourns,
                         marks: &marks, now: now)
                }
            } else {
                // --rate: the shaper may stop the round at any packet, so none is taken ahead.
                while taken < share && shaper?.ready(now: now) ?? true,
                      let d = queue.dequeue(now: now, dropped: &q.dropped) {
                    taken += 1
                    take(d, into: batch, q, peer: peer, keypair: &sending, endpoint: endpoint, sojourns: sojourns,
                         marks: &marks, now: now)
                }
            }
            settle(q, peer, queue, marks: marks)
            if queue.queuedPackets == 0 {
                retire(q, at: q.cursor, peer, queue, now: now)
            } else {
                q.cursor += 1
            }
            scanned += 1
        }
    }

    /// Run to completion: with nothing in flight and at most `inlineMax` packets queued (a ping, a request, a
    /// paced flow between bursts), the tun-reader seals and sends them itself, in fq_codel's order, instead of
    /// waking a crypto worker and then the udp-writer for a few packets. Nothing in flight means the udp-writer
    /// has sent every earlier batch, so no packet overtakes another.
    func scheduleInline(_ q: SendQueueing, context: AEADContext, tally: inout SendTally) {
        guard !q.active.isEmpty, q.inFlight.load(ordering: .acquiring) == 0 else { return }
        var packets = 0
        var bytes: UInt64 = 0
        for peerID in q.active {
            let queue = q.queues[Int(peerID)]!
            packets += queue.queuedPackets
            bytes += queue.queuedBytes
            if packets > Device.inlineMaxPackets || bytes > UInt64(Device.inlineMaxBytes) { return }
        }
        let now = clock.now()
        guard shaper?.ready(now: now) ?? true, let batch = sendPool.tryTake() else { return }
        batch.work = .encrypt
        fill(batch, q, upTo: batch.capacity, stamp: nil, now: now)
        if batch.count > 0 {
            counters.add(.txInlinePackets, UInt64(batch.count))
            context.seal(UnsafeMutableBufferPointer(start: batch.items, count: batch.count))
            transmit(batch, tally: &tally)
            for i in 0..<batch.count { q.freeSlots.append(batch.handles[i]) }
        }
        sendPool.give(batch)
    }

    /// Hints the cache lines of a dequeued packet that take() writes: the header (with the inner packet's first
    /// bytes) and the tail that padding zeroes.
    @inline(__always)
    func prefetch(_ q: SendQueueing, _ d: FQCoDelDequeued) {
        let h = q.slab.slot(Int(d.handle))
        vf_prefetch_write(h)
        vf_prefetch_write(h + Device.headroom + Int(q.fq.length(of: d.handle)))
    }

    /// Fills packet i of a send batch whose inner packet sits at slot + headroom.
    @inline(__always)
    func prepare(_ batch: PacketBatch, _ i: Int, slot h: UnsafeMutableRawPointer, length: Int, innerTOS: UInt8,
                 keypair: inout SendingKeypair, counter: UInt64, endpoint: Endpoint) {
        let p = h + Device.headroom
        let padded = paddedLength(length, mtu: mtu)
        if padded > length { (p + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        storeLE32(h, 0, MessageType.transport.rawValue)
        storeLE32(h, 4, keypair.remoteIndex)
        storeLE64(h, 8, counter)
        batch.packets[i] = h
        batch.items[i] = AEADItem(data: p, key: keypair.key, counter: counter, length: Int32(padded))
        batch.lengths[i] = UInt32(MessageLayout.transportHeaderSize + padded + MessageLayout.tagSize)
        batch.innerLengths[i] = UInt32(length)
        batch.endpoints[i] = endpoint
        batch.tos[i] = DSCP.outerTOS(innerTOS: innerTOS, mode: dscpMode)
        batch.keypairSlot[i] = keypair.slot(in: batch)
    }

    /// The writer's side: give a sent batch's slots back and wake the reader if it waits for room.
    func returnSlots(_ q: SendQueueing, _ batch: PacketBatch) {
        q.returnLock.withLock {
            for i in 0..<batch.count { q.returned.append(batch.handles[i]) }
            q.returnLock.signal()
        }
        q.sentBatches.wrappingAdd(1, ordering: .releasing)
        q.inFlight.subtract(batch.count, ordering: .sequentiallyConsistent)
        if q.waiting.load(ordering: .sequentiallyConsistent) { tun.wake() }
    }
}

/// The keypair a peer's packets are being sealed with while the tun-reader takes them from fq_codel, used without
/// reference counting per packet: a retain/release pair on the keypair per packet (whose count the other pipeline
/// threads touch too) cost about 5 % of the tun-reader in a perf profile of the CPU-bound benchmark. It is
/// retained once when this is made (per peer visit); a batch retains it once more, when its first packet is
/// added (`slot(in:)`), so that a batch never lists a keypair none of its packets uses.
struct SendingKeypair {
    /// Keeps the keypair alive for as long as this lives (one retain per peer visit, not per packet), whatever
    /// happens to the peer's slots meanwhile; calls go through the unretained reference below.
    private let owner: Keypair
    private let keypair: Unmanaged<Keypair>
    let remoteIndex: UInt32
    let key: UnsafeRawPointer
    /// The keypair's slot in the batch being filled, once a packet has used it. (One is made per peer visit of
    /// one batch's fill, so it never sees a second batch.)
    private var batchSlot: UInt16?

    init(_ keypair: Keypair) {
        owner = keypair
        self.keypair = Unmanaged.passUnretained(keypair)
        remoteIndex = keypair.remoteIndex
        key = keypair.sendKey.unsafePointer
    }

    /// One send counter, or nil when the keypair may no longer send.
    @inline(__always) func reserve(now: UInt64) -> UInt64? {
        keypair._withUnsafeGuaranteedRef { $0.reserveCounters(1, now: now) }
    }

    /// The keypair's slot in `batch` (the batch being filled), added on first use.
    @inline(__always) mutating func slot(in batch: PacketBatch) -> UInt16 {
        if let batchSlot { return batchSlot }
        let slot = batch.slot(for: owner)
        batchSlot = slot
        return slot
    }
}
