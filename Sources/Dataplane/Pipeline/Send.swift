// The send path:
//   tun-reader: read a batch from the TUN → route each packet by destination (AllowedIPs) → if its peer has a
//               session, reserve a nonce (serial, in read order) and write the transport header in the headroom;
//               otherwise stage a copy and ask for a handshake → hand the batch to the send queue (order) and the
//               crypto queue (parallel sealing).
//   crypto-N:   seal (Workers.swift).
//   udp-writer: wait for the oldest batch to be sealed → one sendmmsg → per-peer timer events and key freshness.
// Run to completion (both paths): a small batch that finds no batch in flight is sealed and sent by the
// tun-reader itself (see SendQueue.swift's scheduleInline); earlier packets are all out, so none is overtaken.
import Crypto

extension Device {
    /// The dummy AEAD item a dropped packet keeps, so workers can run the batch without branches.
    @inline(__always) func markDropped(_ batch: PacketBatch, _ i: Int) {
        batch.keypairSlot[i] = PacketBatch.dropped
        batch.items[i] = AEADItem(data: batch.packets[i], key: dummyKey.unsafePointer, counter: 0, length: 0)
    }

    func tunReaderLoop() {
        let headroom = Device.headroom
        let capacity = sendPool.slab.slotSize - headroom - MessageLayout.tagSize - MessageLayout.paddingMultiple
        let inlineContext = AEADContext(config.aead)
        var tally = SendTally(capacity: sendPool.maxPacketsPerBatch)
        while isRunning {
            // --rate: read only once the bucket is out of debt (the queue waits in the TUN meanwhile).
            if let shaper { waitOutDebt(shaper) }
            guard let batch = sendPool.take() else { break }
            batch.work = .encrypt
            for i in 0..<batch.capacity { batch.ioPointers[i] = batch.buffers[i] + headroom }
            let n: Int
            do {
                n = try tun.read(batch.ioPointers, capacity: capacity, lengths: batch.innerLengths,
                                 count: batch.capacity, timeoutMs: 1000)
            } catch {
                sendPool.give(batch)
                if isRunning { logger.error("reading from \(tun.name) failed: \(error)") }
                break
            }
            batch.count = n
            let live = n == 0 ? 0 : route(batch)
            if live == 0 {
                sendPool.give(batch)
                continue
            }
            if let shaper { charge(shaper, batch) }
            // Run to completion (as SendQueue.swift's scheduleInline): a small batch that finds no batch in
            // flight is sealed and sent here.
            if live <= Device.inlineMaxPackets && fifoInFlight.load(ordering: .acquiring) == 0
                && batch.bytes(in: batch.innerLengths) <= Device.inlineMaxBytes {
                counters.add(.txInlinePackets, UInt64(live))
                inlineContext.seal(UnsafeMutableBufferPointer(start: batch.items, count: n))
                transmit(batch, tally: &tally)
                sendPool.give(batch)
                continue
            }
            fifoInFlight.add(1, ordering: .relaxed)
            sendQueue.push(batch)
            cryptoQueue.push(batch, chunk: Device.cryptoChunk)
        }
    }

    /// Routes, stages or prepares every packet of a freshly read batch. Returns how many will be sent.
    func route(_ batch: PacketBatch) -> Int {
        let now = clock.now()
        var live = 0
        var runPeer: Int32 = -1
        var runKeypair: Keypair?
        var runEndpoint: Endpoint?
        for i in 0..<batch.count {
            let p = batch.buffers[i] + Device.headroom
            let length = Int(batch.innerLengths[i])
            guard let peerID = destinationPeer(p, length) else { markDropped(batch, i); continue }
            let peer = peers[Int(peerID)]
            if peerID != runPeer {
                runPeer = peerID
                (runKeypair, runEndpoint) = peer.lock.withLock { (peer.sendingKeypair(now: now), peer.endpoint) }
            }
            guard let endpoint = runEndpoint else {
                counters.add(.txDropNoEndpoint)
                markDropped(batch, i)
                continue
            }
            guard let keypair = runKeypair, let counter = keypair.reserveCounters(1, now: now) else {
                let overflow = peer.lock.withLock { peer.stage(p, length) }
                if overflow { counters.add(.txDropStagedOverflow); peer.stats.add(.txDropStagedOverflow) }
                runKeypair = nil
                wantHandshake(peer)
                markDropped(batch, i)
                continue
            }
            let padded = paddedLength(length, mtu: mtu)
            if padded > length { (p + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
            let h = batch.buffers[i]
            storeLE32(h, 0, MessageType.transport.rawValue)
            storeLE32(h, 4, keypair.remoteIndex)
            storeLE64(h, 8, counter)
            batch.items[i] = AEADItem(data: p, key: keypair.sendKey.unsafePointer, counter: counter,
                                      length: Int32(padded))
            batch.lengths[i] = UInt32(MessageLayout.transportHeaderSize + padded + MessageLayout.tagSize)
            batch.endpoints[i] = endpoint
            if let flowLabels { flowLabels.apply(to: &batch.endpoints[i], hash: flowLabels.hasher.hash(packet: p, length: length)) }
            // RFC 6040 normal mode: the inner ECN field is copied out; DSCP only with --dscp copy.
            batch.tos[i] = DSCP.outerTOS(innerTOS: ECN.readTOS(packet: p, length: length) ?? 0, mode: dscpMode)
            batch.keypairSlot[i] = batch.slot(for: keypair)
            live += 1
        }
        return live
    }

    /// The peer that owns the destination address of an inner packet, counting a drop if there is none.
    @inline(__always) func destinationPeer(_ p: UnsafeRawPointer, _ length: Int) -> Int32? {
        guard length >= 1 else { counters.add(.txDropBadInner); return nil }
        let version = p.load(as: UInt8.self) >> 4
        let peer: Int32?
        if version == 4 && length >= 20 {
            peer = allowedIPs.lookupV4(loadBE32(p, 16))
        } else if version == 6 && length >= 40 {
            peer = allowedIPs.lookupV6(loadBE64(p, 24), loadBE64(p, 32))
        } else {
            counters.add(.txDropBadInner)
            return nil
        }
        if peer == nil { counters.add(.txDropNoRoute) }
        return peer
    }

    func udpWriterLoop() {
        var tally = SendTally(capacity: sendPool.maxPacketsPerBatch)
        while let batch = sendQueue.popCrypted() {
            transmit(batch, tally: &tally)
            if let q = sendQueueing { returnSlots(q, batch) } else { fifoInFlight.subtract(1, ordering: .releasing) }
            sendPool.give(batch)
        }
    }

    /// Sends a sealed batch (its packets not marked dropped) in one call, then the per-peer accounting and timer
    /// events. The udp-writer's work for every batch, and the tun-reader's for the express lane (SendQueue.swift).
    func transmit(_ batch: PacketBatch, tally: inout SendTally) {
        var m = 0
        for i in 0..<batch.count where batch.keypairSlot[i] != PacketBatch.dropped {
            batch.ioPointers[m] = batch.packets[i]
            batch.ioLengths[m] = batch.lengths[i]
            batch.endpoints[m] = batch.endpoints[i]
            batch.tos[m] = batch.tos[i]
            batch.keypairSlot[m] = batch.keypairSlot[i]
            m += 1
        }
        var sent = 0
        do {
            sent = try bind.send(batch.ioPointers, lengths: batch.ioLengths, endpoints: batch.endpoints,
                                 tos: batch.tos, count: m)
        } catch {
            logger.warning("sending \(m) packets failed: \(error)")
        }
        counters.add(.txPackets, UInt64(sent))
        counters.add(.txDropSendError, UInt64(m - sent))
        let now = clock.now()
        for s in 0..<batch.keypairs.count { tally.bytes[s] = 0; tally.packets[s] = 0 }
        for i in 0..<m {
            tally.bytes[Int(batch.keypairSlot[i])] += UInt64(batch.ioLengths[i])
            tally.packets[Int(batch.keypairSlot[i])] += 1
        }
        var total: UInt64 = 0
        for (s, keypair) in batch.keypairs.enumerated() {
            let peer = peers[Int(keypair.peerID)]
            peer.txBytes.add(tally.bytes[s], ordering: .relaxed)
            peer.stats.add(.txPackets, tally.packets[s])
            total += tally.bytes[s]
            afterSend(peer, keypair: keypair, data: true, now: now)
        }
        counters.add(.txBytes, total)
    }
}

/// Per-keypair sums of one sent batch (a batch's keypairs are numbered from 0), preallocated by the sending thread.
struct SendTally {
    var bytes: [UInt64]
    var packets: [UInt64]

    init(capacity: Int) {
        bytes = [UInt64](repeating: 0, count: capacity)
        packets = [UInt64](repeating: 0, count: capacity)
    }
}
