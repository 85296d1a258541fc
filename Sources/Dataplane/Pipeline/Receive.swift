// The receive path:
//   udp-reader: recvmmsg a batch → check each datagram's type and size → handshake messages are copied to the
//               control thread; transport messages are matched to a keypair by receiver index → the batch goes
//               to the receive queue (order) and the crypto queue (parallel opening).
//   crypto-N:   open (Workers.swift).
//   tun-writer: wait for the oldest batch to be opened → per packet: replay window (only after the AEAD opened),
//               inner IP header and length check, source address must belong to the sending peer → write to the
//               TUN → per-peer events: session confirmation, roaming, timers, key freshness.
// Express lane (ReceiveExpressLane.swift): before a bulk batch goes to the workers, its ICMP messages and TCP
// segments without data are opened and delivered by the udp-reader at once, ahead of the bulk still in flight.
// Run to completion: a batch of at most Device.inlineMaxPackets / inlineMaxBytes that finds the receive budget
// empty (nothing read is still on its way, so the tun-writer holds no batch and no earlier packet can be
// overtaken) is opened by the udp-reader with its own AEAD context and delivered by it, as the tun-writer would,
// writing to the TUN without the tun-writer's io_uring ring (single issuer). Light traffic thus costs no thread
// wake-ups; bulk keeps the parallel path.
import Crypto

extension Device {
    func udpReaderLoop() {
        var controlMessages: [([UInt8], Endpoint)] = []
        controlMessages.reserveCapacity(PacketBatch.capacity)
        let perMessage = max(1, bind.datagramsPerMessage)
        let inlineContext = AEADContext(config.aead)
        let inlineScratch = DeliveryScratch(capacity: receivePool.maxPacketsPerBatch)
        // The express lane's own copies; bulk batches are numbered as they go to the pool.
        let lane = receiveExpress == nil ? nil
            : ReceiveExpressLane(aead: config.aead, node: Placement.pipelineHome(config.placements)?.node)
        var bulkBatches: UInt64 = 0
        while isRunning {
            // Read only what the in-flight budget allows; beyond it, datagrams wait in the socket buffer.
            let room = receiveBudget.wait(atLeast: perMessage, nanoseconds: 100_000_000)
            if room < perMessage { continue }
            guard let batch = receivePool.take() else { break }
            batch.work = .decrypt
            let messages = min(batch.bufferCount, max(1, min(room, receiveBudget.readLimit) / perMessage))
            let n: Int
            var truncated = 0
            do {
                n = try bind.receive(buffers: batch.buffers, bufferCount: messages,
                                     capacity: batch.bufferSize, packets: batch.packets, lengths: batch.lengths,
                                     endpoints: batch.endpoints, tos: batch.tos, timestamps: batch.timestamps,
                                     maxPackets: min(batch.capacity, messages * perMessage),
                                     truncated: &truncated, timeoutMs: 1000)
                counters.add(.rxDropTruncated, UInt64(truncated))
            } catch {
                receivePool.give(batch)
                if isRunning { logger.error("receiving from the UDP socket failed: \(error)") }
                break
            }
            batch.count = n
            noteReceived(batch)
            let live = n == 0 ? 0 : classify(batch, control: &controlMessages)
            for (bytes, source) in controlMessages where !control.post(.message(bytes, source)) {
                counters.add(.rxDropHandshakeQueueFull)
            }
            controlMessages.removeAll(keepingCapacity: true)
            if live == 0 {
                receivePool.give(batch)
                continue
            }
            // Run to completion: a small batch that finds nothing else on its way to the TUN (so the tun-writer
            // holds no batch) is opened and written by this thread, without waking a worker and the tun-writer.
            if batch.count <= Device.inlineMaxPackets && receiveBudget.isIdle
                && batch.bytes(in: batch.lengths) <= Device.inlineMaxBytes {
                // Counted before delivery, as the send side counts before sending: once rx_packets shows a
                // packet, its inline count is there too.
                counters.add(.rxInlinePackets, UInt64(live))
                inlineContext.open(UnsafeMutableBufferPointer(start: batch.items, count: batch.count))
                deliveryLock.withLock { deliver(batch, inlineScratch) }
                receivePool.give(batch)
                continue
            }
            // The express lane: small datagrams that may overtake what is in flight are delivered now.
            if let lane, let express = receiveExpress,
               expressAhead(batch, lane, express, number: bulkBatches + 1,
                            inFlight: receiveBudget.inFlightCount) == live {
                receivePool.give(batch)
                continue
            }
            bulkBatches += 1
            receiveBudget.took(batch.count)
            receiveQueue.push(batch)
            // A batch of one chunk or less is little work and likely interactive (acknowledgements, a ping's
            // reply): the workers take it before the bulk jobs, as the send path's express lane does.
            cryptoQueue.push(batch, chunk: Device.cryptoChunk, urgent: batch.count <= Device.cryptoChunk)
        }
    }

    /// Sorts a received batch: transport messages get an AEAD item, handshake messages are copied out,
    /// everything else is counted and dropped. Returns the number of transport messages to open.
    func classify(_ batch: PacketBatch, control out: inout [([UInt8], Endpoint)]) -> Int {
        let now = clock.now()
        var live = 0
        // A batch's transport messages nearly all name the same session: the last index found (and usable now,
        // which is the same for the whole batch) answers them without a dictionary lookup each.
        var lastIndex: UInt32 = 0
        var lastKeypair: Keypair?
        var lastSlot: UInt16 = 0
        indices.lock.lock()
        defer { indices.lock.unlock() }
        for i in 0..<batch.count {
            markDropped(batch, i)
            let length = Int(batch.lengths[i])
            let p = batch.packets[i]
            guard length >= 4 else { counters.add(.rxDropShort); continue }
            guard let type = MessageType(rawValue: loadLE32(p, 0)) else { counters.add(.rxDropBadType); continue }
            switch type {
            case .initiation, .response, .cookieReply:
                let expected = type == .initiation ? MessageLayout.initiationSize
                    : type == .response ? MessageLayout.responseSize : MessageLayout.cookieReplySize
                guard length == expected else { counters.add(.rxDropBadSize); continue }
                out.append((Array(UnsafeRawBufferPointer(start: p, count: length)), batch.endpoints[i]))
            case .transport:
                guard length >= MessageLayout.transportMinimumSize else { counters.add(.rxDropBadSize); continue }
                let index = loadLE32(p, 4)
                let keypair: Keypair
                let slot: UInt16
                if let last = lastKeypair, index == lastIndex {
                    keypair = last
                    slot = lastSlot
                } else {
                    guard case .keypair(let found)? = indices.lookupLocked(index) else {
                        counters.add(.rxDropUnknownIndex)
                        continue
                    }
                    guard found.canReceive(now: now) else { counters.add(.rxDropExpiredKey); continue }
                    keypair = found
                    slot = batch.slot(for: found)
                    (lastIndex, lastKeypair, lastSlot) = (index, found, slot)
                }
                let counter = loadLE64(p, 8)
                guard counter < ProtocolLimits.rejectAfterMessages else {
                    counters.add(.rxDropReplay); peers[Int(keypair.peerID)].stats.add(.rxDropReplay)
                    continue
                }
                batch.items[i] = AEADItem(data: p + MessageLayout.transportHeaderSize,
                                          key: keypair.receiveKey.unsafePointer, counter: counter,
                                          length: Int32(length - MessageLayout.transportHeaderSize))
                batch.keypairSlot[i] = slot
                live += 1
            }
        }
        return live
    }

    /// Opened batches the tun-writer judges together and writes in one call, at most.
    static let mergedBatches = 8

    func tunWriterLoop() {
        let limit = receivePool.maxPacketsPerBatch
        let scratch = DeliveryScratch(capacity: limit)
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: limit)
        let lengths = UnsafeMutablePointer<UInt32>.allocate(capacity: limit)
        defer { pointers.deallocate(); lengths.deallocate() }
        var held: [PacketBatch] = []
        held.reserveCapacity(Device.mergedBatches)
        while let first = receiveQueue.popCrypted() {
            // Batches already opened behind the first join its write (up to one batch's worth of packets): when
            // the CPU is the bottleneck, work piles up here, and one plan over all of it coalesces longer runs of
            // each flow into fewer super-packets — fewer TUN writes and fewer skbs for the kernel's TCP. An
            // interleaved arrival order (fq_codel's round robin on the sender) otherwise cuts runs at every batch
            // boundary. Nothing waits for a later batch: only those already done are taken.
            var list = WriteList(pointers: pointers, lengths: lengths)
            var batch = first
            deliveryLock.lock()
            while true {
                judge(batch, scratch, into: &list)
                held.append(batch)
                guard held.count < Device.mergedBatches, let next = receiveQueue.peekCrypted(),
                      list.count + next.count <= limit, let taken = receiveQueue.popCryptedNow() else { break }
                batch = taken
            }
            write(list, direct: false)
            receiveExpress?.table.noteDelivered(held.count)
            deliveryLock.unlock()
            var done = 0
            for b in held {
                done += b.count
                receivePool.give(b)
            }
            held.removeAll(keepingCapacity: true)
            receiveBudget.release(done)
        }
    }

    /// The udp-reader's work for a batch it opened itself (run to completion, or its express copies), under
    /// deliveryLock: judge it, then write what is left to the TUN without the tun-writer's own ring.
    func deliver(_ batch: PacketBatch, _ scratch: DeliveryScratch, express: Bool = false) {
        var list = WriteList(pointers: batch.ioPointers, lengths: batch.ioLengths)
        judge(batch, scratch, into: &list, express: express)
        write(list, direct: true)
    }

    /// Writes the judged packets to the TUN and counts what was written and what the TUN refused.
    func write(_ list: WriteList, direct: Bool) {
        var written = 0
        if list.count > 0 {
            written = direct ? tun.writeDirect(list.pointers, lengths: list.lengths, count: list.count)
                : tun.write(list.pointers, lengths: list.lengths, count: list.count)
        }
        counters.add(.rxPackets, UInt64(written))
        counters.add(.rxDropTunWrite, UInt64(list.count - written))
    }

    /// The judgement of an opened batch (tun-writer, or the udp-reader for one it opened itself): per packet the
    /// replay window, inner header, source address, RFC 6040 decapsulation and receive CoDel; the packets that
    /// pass are appended to `list`; then the per-peer events.
    /// `express`: the udp-reader's express copies, which bypass receive CoDel (ReceiveExpressLane.swift).
    func judge(_ batch: PacketBatch, _ scratch: DeliveryScratch, into list: inout WriteList,
               express: Bool = false) {
        let authenticated = scratch.authenticated, dataPackets = scratch.dataPackets
        let bytes = scratch.bytes, lastSource = scratch.lastSource
        for s in 0..<batch.keypairs.count { authenticated[s] = 0; dataPackets[s] = 0; bytes[s] = 0 }
        let now = clock.now()
        if !express { prepareReceiveCoDel(batch) }
        var m = list.count
        for i in 0..<batch.count where batch.keypairSlot[i] != PacketBatch.dropped {
            let slot = Int(batch.keypairSlot[i])
            let keypair = batch.keypairs[slot]
            let item = batch.items[i]
            let stats = peers[Int(keypair.peerID)].stats
            guard item.ok else { counters.add(.rxDropBadMac); stats.add(.rxDropBadMac); continue }
            guard keypair.replay.check(item.counter) else { counters.add(.rxDropReplay); stats.add(.rxDropReplay); continue }
            authenticated[slot] += 1
            lastSource[slot] = i
            bytes[slot] += UInt64(batch.lengths[i])
            let length = Int(item.length)
            if length == 0 {
                counters.add(.rxKeepalives)
                continue
            }
            dataPackets[slot] += 1
            let p = batch.packets[i] + MessageLayout.transportHeaderSize
            guard let (inner, source) = innerPacket(p, length) else { counters.add(.rxDropBadInner); continue }
            guard allowedIPs.lookup(source) == keypair.peerID else {
                counters.add(.rxDropDisallowedSource)
                continue
            }
            // RFC 6040 decapsulation: combine the outer ECN into the inner header (or drop).
            let outer = batch.tos[i] & 0x03
            if outer != 0 {
                if outer == ECNCodepoint.ce.rawValue { counters.add(.rxOuterCe); stats.add(.rxOuterCe) }
                switch ECN.decapsulate(packet: p, length: inner, outerTOS: batch.tos[i]) {
                case .drop:
                    counters.add(.rxDropEcnNotEctCe); stats.add(.rxDropEcnNotEctCe)
                    noteECNAnomaly(.dangerous, stats: stats, now: now)
                    continue
                case .forward(_, let anomaly?):
                    noteECNAnomaly(anomaly, stats: stats, now: now)
                case .forward(_, nil):
                    break
                }
            }
            if !express {
                guard receiveCoDel(batch, i, peer: keypair.peerID, packet: p, length: inner, now: now) else {
                    continue
                }
            }
            list.pointers[m] = p
            list.lengths[m] = UInt32(inner)
            m += 1
        }
        list.count = m
        var total: UInt64 = 0
        for (s, keypair) in batch.keypairs.enumerated() where authenticated[s] > 0 {
            total += bytes[s]
            peers[Int(keypair.peerID)].stats.add(.rxPackets, UInt64(dataPackets[s]))
            received(on: keypair, from: batch.endpoints[lastSource[s]], data: dataPackets[s] > 0,
                     bytes: bytes[s], now: now, roam: !express)
        }
        counters.add(.rxBytes, total)
    }

    /// Validates the inner IP header of a decrypted packet: returns its true length (padding trimmed) and
    /// source address, or nil for anything malformed.
    @inline(__always) func innerPacket(_ p: UnsafeRawPointer, _ length: Int) -> (Int, IPAddress)? {
        let version = p.load(as: UInt8.self) >> 4
        if version == 4 {
            guard length >= 20 else { return nil }
            let ihl = Int(p.load(as: UInt8.self) & 0x0f) * 4
            let total = Int(loadBE16(p, 2))
            guard ihl >= 20, total >= ihl, total <= length else { return nil }
            return (total, .v4(loadBE32(p, 12)))
        }
        if version == 6 {
            guard length >= 40 else { return nil }
            let total = Int(loadBE16(p, 4)) + 40
            guard total <= length else { return nil }
            return (total, .v6(loadBE64(p, 8), loadBE64(p, 16)))
        }
        return nil
    }

    /// Per-peer consequences of authenticated packets on `keypair` in one batch. `roam`: whether `source` may
    /// become the peer's endpoint (not for express packets, which overtake datagrams read before them: a bulk
    /// batch from the old address still in flight would move it back).
    func received(on keypair: Keypair, from source: Endpoint, data: Bool, bytes: UInt64, now: UInt64,
                  roam: Bool = true) {
        let peer = peers[Int(keypair.peerID)]
        peer.rxBytes.add(bytes, ordering: .relaxed)
        var confirmed = false
        var droppedKeypair: Keypair?
        var roamed = false
        var rekey = false
        peer.lock.withLock {
            if peer.keypairs.next === keypair {
                droppedKeypair = peer.keypairs.confirm(keypair)
                peer.sentLastMinuteHandshake = false
                peer.timers.handshakeComplete()
                confirmed = true
            }
            if roam && peer.endpoint != source {
                peer.endpoint = source
                roamed = true
            }
            peer.timers.anyAuthenticatedPacketReceived()
            peer.timers.anyAuthenticatedPacketTraversal(now: now)
            if data { peer.timers.dataReceived(now: now) }
            if peer.keypairs.current === keypair, keypair.isInitiator, !peer.sentLastMinuteHandshake,
               now &- keypair.createdAt >= ProtocolLimits.rejectAfterTime - ProtocolLimits.keepaliveTimeout
                    - ProtocolLimits.rekeyTimeout {
                peer.sentLastMinuteHandshake = true
                rekey = true
            }
        }
        if let d = droppedKeypair { indices.remove(d.localIndex) }
        if roamed { logger.info("endpoint of \(peer.shortName) is now \(source)") }
        if confirmed {
            handshakeCompleted(peer, role: "responder")
            control.post(.flushStaged(peer.id))
        }
        if rekey { wantHandshake(peer) }
    }
}

extension Device {
    /// Counts an RFC 6040 decapsulation anomaly and logs at most one line per 10 s about them.
    func noteECNAnomaly(_ anomaly: ECN.Anomaly, stats: PeerStats, now: UInt64) {
        switch anomaly {
        case .dangerous: counters.add(.ecnAnomalyDangerous); stats.add(.ecnAnomalyDangerous)
        case .possiblyDangerous: counters.add(.ecnAnomalyPossiblyDangerous); stats.add(.ecnAnomalyPossiblyDangerous)
        }
        let last = lastECNAnomalyLog.load(ordering: .relaxed)
        if last == 0 || now &- last >= 10 * ProtocolLimits.second {
            lastECNAnomalyLog.store(now, ordering: .relaxed)
            logger.warning("ECN decapsulation anomalies (RFC 6040): \(counters[.ecnAnomalyDangerous]) currently-unused (!!!), \(counters[.ecnAnomalyPossiblyDangerous]) possibly dangerous (!) combinations so far; the outer ECN field is being altered on the path")
        }
    }
}

/// Inner packets on their way to one TUN write: pointers into the packet buffers of the batches being
/// delivered, which must stay held until the write.
struct WriteList {
    let pointers: UnsafeMutablePointer<UnsafeMutableRawPointer>
    let lengths: UnsafeMutablePointer<UInt32>
    var count = 0
}

/// Per-keypair sums of one delivered batch (a batch's keypairs are numbered from 0), preallocated by the thread
/// that delivers.
final class DeliveryScratch {
    let authenticated: UnsafeMutablePointer<Int>
    let dataPackets: UnsafeMutablePointer<Int>
    let bytes: UnsafeMutablePointer<UInt64>
    let lastSource: UnsafeMutablePointer<Int>

    init(capacity: Int) {
        let n = max(1, capacity)
        authenticated = .allocate(capacity: n); authenticated.initialize(repeating: 0, count: n)
        dataPackets = .allocate(capacity: n); dataPackets.initialize(repeating: 0, count: n)
        bytes = .allocate(capacity: n); bytes.initialize(repeating: 0, count: n)
        lastSource = .allocate(capacity: n); lastSource.initialize(repeating: 0, count: n)
    }

    deinit { authenticated.deallocate(); dataPackets.deallocate(); bytes.deallocate(); lastSource.deallocate() }
}
