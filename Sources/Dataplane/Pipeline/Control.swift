// The control thread: handshake messages, cookie replies, timers, keepalives and staged packets.
// Everything expensive that is not bulk crypto (DH, BLAKE2s) happens here, off the data path.
import Crypto

extension Device {
    func controlLoop() {
        var checker = CookieChecker(identity: identity)
        let limiter = RateLimiter()
        var underLoadUntil: UInt64 = 0
        var nextGC: UInt64 = 0
        var events: [ControlEvent] = []
        events.reserveCapacity(control.capacity)
        while isRunning {
            var now = clock.now()
            var deadline = now + ProtocolLimits.second
            for p in peers {
                if let d = p.lock.withLock({ p.timers.nextDeadline }), d < deadline { deadline = d }
            }
            let wait = deadline > now ? deadline - now : 0
            guard let queued = control.drain(into: &events, waitNanoseconds: wait) else { break }
            now = clock.now()
            if queued >= ProtocolLimits.underLoadQueueLength { underLoadUntil = now + ProtocolLimits.underLoadAfterTime }
            let underLoad = now < underLoadUntil
            for e in events {
                switch e {
                case .message(let bytes, let source):
                    handleHandshakeMessage(bytes, from: source, underLoad: underLoad, checker: &checker,
                                           limiter: limiter, now: now)
                case .wantHandshake(let id):
                    sendInitiation(peers[Int(id)], retry: false, now: now)
                case .flushStaged(let id):
                    flushStaged(peers[Int(id)], now: now)
                case .runTimers:
                    break
                }
            }
            now = clock.now()
            for p in peers {
                let actions = p.lock.withLock { p.timers.expire(now: now) }
                for a in actions { perform(a, peer: p, now: now) }
            }
            if now >= nextGC {
                limiter.gc(now: now)
                nextGC = now + ProtocolLimits.second
            }
        }
    }

    func perform(_ action: TimerAction, peer: Peer, now: UInt64) {
        switch action {
        case .sendInitiation(let retry):
            if retry {
                logger.info("handshake with \(peer.shortName) did not complete after 5 seconds, retrying (try \(peer.lock.withLock { peer.timers.handshakeAttempts + 1 }))")
            } else {
                logger.info("retrying handshake with \(peer.shortName) because we stopped hearing back")
            }
            sendInitiation(peer, retry: retry, now: now)
        case .giveUp:
            let dropped = peer.lock.withLock { () -> Int in
                let n = peer.staged.count
                peer.staged.removeAll()
                return n
            }
            counters.add(.txDropNoKey, UInt64(dropped))
            logger.info("handshake with \(peer.shortName) did not complete after \(ProtocolLimits.maxTimerHandshakes + 2) attempts, giving up")
        case .sendKeepalive:
            sendKeepalive(peer, now: now)
        case .zeroKeys:
            let old = peer.lock.withLock { peer.keypairs.clear() }
            for k in old { indices.remove(k.localIndex) }
            if peer.handshake.stage != .zeroed { indices.remove(peer.handshake.localIndex) }
            peer.handshake.clear()
            logger.info("zeroed the keys of \(peer.shortName) after \(ProtocolLimits.zeroKeysAfter / ProtocolLimits.second) s without a new session")
        }
    }

    // MARK: Handshake messages

    func handleHandshakeMessage(_ msg: [UInt8], from source: Endpoint, underLoad: Bool,
                                checker: inout CookieChecker, limiter: RateLimiter, now: UInt64) {
        guard let type = MessageType(rawValue: msg.le32(at: 0)) else { return }
        if type == .cookieReply {
            counters.add(.rxCookieReplies)
            handleCookieReply(msg, now: now)
            return
        }
        guard checker.checkMac1(msg) else { counters.add(.rxDropBadMac1); return }
        if underLoad {
            if !checker.checkMac2(msg, source: source, now: now) {
                counters.add(.rxDropBadMac2)
                let reply = checker.createReply(to: msg, source: source, now: now)
                if (try? bind.send(reply, to: source, tos: DSCP.handshakeTOS)) != nil { counters.add(.txCookieReplies) }
                return
            }
            if !limiter.allow(source.address, now: now) { counters.add(.rxDropRateLimited); return }
        }
        switch type {
        case .initiation:
            counters.add(.rxHandshakeInitiations)
            handleInitiation(msg, from: source, now: now)
        case .response:
            counters.add(.rxHandshakeResponses)
            handleResponse(msg, from: source, now: now)
        default:
            break
        }
    }

    func handleInitiation(_ msg: [UInt8], from source: Endpoint, now: UInt64) {
        guard let (consumed, _) = Noise.consumeInitiation(msg, identity: identity, lookup: { peersByKey[$0]?.keys }),
              let peer = peersByKey[consumed.remoteStatic] else {
            counters.add(.rxDropBadInitiation)
            return
        }
        if let latest = peer.handshake.latestTimestamp, !(latest < consumed.timestamp) {
            counters.add(.rxDropStaleTimestamp)
            return
        }
        if let last = peer.handshake.lastInitiationConsumed, now &- last < ProtocolLimits.handshakeInitiationRate {
            counters.add(.rxDropInitiationFlood)
            return
        }
        if peer.handshake.stage != .zeroed { indices.remove(peer.handshake.localIndex) }
        Noise.accept(consumed, into: &peer.handshake, now: now)
        updateEndpoint(peer, source)
        let index = indices.newHandshakeIndex(peerID: peer.id)
        guard var response = Noise.createResponse(peer: peer.keys, handshake: &peer.handshake, localIndex: index),
              let keypair = Noise.beginSession(handshake: &peer.handshake, now: now, peerID: peer.id) else {
            indices.remove(index)
            peer.handshake.clear()
            counters.add(.rxDropBadInitiation)
            return
        }
        peer.cookies.addMacs(&response, peer: peer.keys, now: now)
        indices.promote(keypair)
        let dropped = peer.lock.withLock { () -> [Keypair] in
            let d = peer.keypairs.install(keypair)
            peer.timers.sessionDerived(now: now)
            peer.timers.anyAuthenticatedPacketTraversal(now: now)
            peer.timers.anyAuthenticatedPacketSent()
            return d
        }
        for k in dropped { indices.remove(k.localIndex) }
        do {
            try bind.send(response, to: source, tos: DSCP.handshakeTOS)
            counters.add(.txHandshakeResponses)
        } catch {
            logger.warning("sending handshake response to \(peer.shortName) at \(source) failed: \(error)")
        }
    }

    func handleResponse(_ msg: [UInt8], from source: Endpoint, now: UInt64) {
        let receiver = msg.le32(at: 8)
        guard case .handshake(let id)? = indices.lookup(receiver) else { counters.add(.rxDropUnknownIndex); return }
        let peer = peers[Int(id)]
        guard peer.handshake.stage == .createdInitiation, peer.handshake.localIndex == receiver,
              Noise.consumeResponse(msg, identity: identity, peer: peer.keys, handshake: &peer.handshake),
              let keypair = Noise.beginSession(handshake: &peer.handshake, now: now, peerID: peer.id) else {
            counters.add(.rxDropBadResponse)
            return
        }
        updateEndpoint(peer, source)
        indices.promote(keypair)
        let dropped = peer.lock.withLock { () -> [Keypair] in
            let d = peer.keypairs.install(keypair)
            peer.sentLastMinuteHandshake = false
            peer.timers.handshakeComplete()
            peer.timers.sessionDerived(now: now)
            peer.timers.anyAuthenticatedPacketReceived()
            peer.timers.anyAuthenticatedPacketTraversal(now: now)
            return d
        }
        for k in dropped { indices.remove(k.localIndex) }
        handshakeCompleted(peer, role: "initiator")
        flushStaged(peer, now: now, keepaliveIfEmpty: true)
    }

    func handleCookieReply(_ msg: [UInt8], now: UInt64) {
        let receiver = msg.le32(at: 4)
        let peer: Peer
        switch indices.lookup(receiver) {
        case .handshake(let id)?: peer = peers[Int(id)]
        case .keypair(let k)?: peer = peers[Int(k.peerID)]
        case nil: counters.add(.rxDropUnknownIndex); return
        }
        if !peer.cookies.consumeReply(msg, peer: peer.keys, now: now) { counters.add(.rxDropBadCookie) }
    }

    func handshakeCompleted(_ peer: Peer, role: String) {
        counters.add(.handshakesCompleted)
        peer.lastHandshakeRealtime.store(realtimeNanoseconds(), ordering: .relaxed)
        logger.info("handshake completed with \(peer.shortName) as \(role); keys rotated")
    }

    func updateEndpoint(_ peer: Peer, _ source: Endpoint) {
        let changed = peer.lock.withLock { () -> Bool in
            if peer.endpoint == source { return false }
            peer.endpoint = source
            return true
        }
        if changed { logger.info("endpoint of \(peer.shortName) is now \(source)") }
    }

    // MARK: Sending from the control thread

    func sendInitiation(_ peer: Peer, retry: Bool, now: UInt64) {
        peer.handshakeWanted.store(false, ordering: .releasing)
        if let last = peer.lastSentHandshake, now &- last < ProtocolLimits.rekeyTimeout { return }
        guard let endpoint = peer.lock.withLock({ peer.endpoint }) else {
            logger.debug("no endpoint for \(peer.shortName) yet; cannot start a handshake")
            return
        }
        peer.lastSentHandshake = now
        if !retry { peer.lock.withLock { peer.timers.resetAttempts() } }
        if peer.handshake.stage != .zeroed { indices.remove(peer.handshake.localIndex) }
        let index = indices.newHandshakeIndex(peerID: peer.id)
        guard var msg = Noise.createInitiation(identity: identity, peer: peer.keys, handshake: &peer.handshake,
                                               localIndex: index, timestamp: TAI64N.now()) else {
            indices.remove(index)
            return
        }
        peer.cookies.addMacs(&msg, peer: peer.keys, now: now)
        do {
            try bind.send(msg, to: endpoint, tos: DSCP.handshakeTOS)
            counters.add(.txHandshakeInitiations)
        } catch {
            logger.warning("sending handshake initiation to \(peer.shortName) at \(endpoint) failed: \(error)")
        }
        peer.lock.withLock {
            peer.timers.anyAuthenticatedPacketTraversal(now: now)
            peer.timers.anyAuthenticatedPacketSent()
            peer.timers.handshakeInitiated(now: now, jitter: jitter())
        }
    }

    /// Seals one packet (or a keepalive when `payload` is empty) with the peer's current key and sends it.
    func sendOne(_ payload: [UInt8], peer: Peer, keypair: Keypair, endpoint: Endpoint, now: UInt64) -> Bool {
        guard let counter = keypair.reserveCounters(1, now: now) else { return false }
        let padded = paddedLength(payload.count, mtu: mtu)
        var out = [UInt8](repeating: 0, count: MessageLayout.transportHeaderSize + padded + MessageLayout.tagSize)
        out.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            storeLE32(p, 0, MessageType.transport.rawValue)
            storeLE32(p, 4, keypair.remoteIndex)
            storeLE64(p, 8, counter)
            payload.withUnsafeBytes { src in
                if src.count > 0 { (p + 16).copyMemory(from: src.baseAddress!, byteCount: src.count) }
            }
            keypair.sendKey.withUnsafeBytes { key in
                ChaChaPoly.seal(key: key.baseAddress!, counter: counter, buffer: p + 16, length: padded, ad: nil)
            }
        }
        do { try bind.send(out, to: endpoint) } catch {
            counters.add(.txDropSendError)
            return false
        }
        peer.txBytes.add(UInt64(out.count), ordering: .relaxed)
        counters.add(.txBytes, UInt64(out.count))
        return true
    }

    func sendKeepalive(_ peer: Peer, now: UInt64) {
        if peer.lock.withLock({ !peer.staged.isEmpty }) {
            flushStaged(peer, now: now)
            return
        }
        let (keypair, endpoint) = peer.lock.withLock { (peer.sendingKeypair(now: now), peer.endpoint) }
        guard let keypair, let endpoint else {
            wantHandshake(peer)
            return
        }
        if sendOne([], peer: peer, keypair: keypair, endpoint: endpoint, now: now) {
            counters.add(.txKeepalives)
            afterSend(peer, keypair: keypair, data: false, now: now)
        }
    }

    /// Sends the packets that waited for a session; with `keepaliveIfEmpty`, a keepalive if there were none.
    func flushStaged(_ peer: Peer, now: UInt64, keepaliveIfEmpty: Bool = false) {
        let (packets, keypair, endpoint) = peer.lock.withLock { () -> ([[UInt8]], Keypair?, Endpoint?) in
            let k = peer.sendingKeypair(now: now)
            if k == nil || peer.endpoint == nil { return ([], k, peer.endpoint) }
            let s = peer.staged
            peer.staged.removeAll()
            return (s, k, peer.endpoint)
        }
        guard let keypair, let endpoint else {
            if peer.lock.withLock({ !peer.staged.isEmpty }) { wantHandshake(peer) }
            return
        }
        if packets.isEmpty {
            if keepaliveIfEmpty, sendOne([], peer: peer, keypair: keypair, endpoint: endpoint, now: now) {
                counters.add(.txKeepalives)
                afterSend(peer, keypair: keypair, data: false, now: now)
            }
            return
        }
        var sent = 0
        for p in packets where sendOne(p, peer: peer, keypair: keypair, endpoint: endpoint, now: now) { sent += 1 }
        counters.add(.txPackets, UInt64(sent))
        if sent > 0 { afterSend(peer, keypair: keypair, data: true, now: now) }
    }

    /// Timer events and key freshness after authenticated packets went out. Any thread.
    func afterSend(_ peer: Peer, keypair: Keypair, data: Bool, now: UInt64) {
        let j = data ? jitter() : 0
        peer.lock.withLock {
            if data { peer.timers.dataSent(now: now, jitter: j) }
            peer.timers.anyAuthenticatedPacketSent()
            peer.timers.anyAuthenticatedPacketTraversal(now: now)
        }
        if keypair.sentCount > ProtocolLimits.rekeyAfterMessages
            || (keypair.isInitiator && now &- keypair.createdAt >= config.rekeyAfterTime) {
            if peer.lock.withLock({ peer.keypairs.current === keypair }) { wantHandshake(peer) }
        }
    }
}

/// Transport padding as the kernel computes it: pad the last MTU-sized unit to a multiple of 16, never past the MTU.
@inline(__always) public func paddedLength(_ length: Int, mtu: Int) -> Int {
    guard mtu > 0 else { return (length + 15) & ~15 }
    let last = length > mtu ? length % mtu : length
    return length + min(mtu, (last + 15) & ~15) - last
}
