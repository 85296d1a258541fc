// The device: peers, routing, buffers, and the threads of the pipeline.
//
// Threads (each a plain pthread):
//   tun-reader  read TUN batches → route → assign nonces (serial) → crypto queue + send queue   (Send.swift)
//               (with fq_codel: enqueue, dequeue; seals and sends sparse flows itself       (SendQueue.swift))
//               (a small batch with nothing in flight: seals and sends it itself, "run to completion")
//   crypto-N    seal or open whole batches in place                                           (Workers.swift)
//   udp-writer  take send batches in order once sealed → sendmmsg → timer events               (Send.swift)
//   udp-reader  recvmmsg batches → handshake messages to control, transport to crypto + recv queue (Receive.swift)
//               (a small batch with nothing in flight: opens and delivers it itself, as the tun-writer would)
//   tun-writer  take receive batches in order once opened → replay check → source check → TUN   (Receive.swift)
//   control     handshakes, cookies, timers, keepalives, staged packets                          (Control.swift)
import Crypto
import Logging
import Synchronization

public struct DeviceConfiguration: Sendable {
    public struct PeerSetup: Sendable {
        public var publicKey: PublicKey
        public var presharedKey: SecretKey?
        public var allowedIPs: [IPPrefix]
        public var endpoint: Endpoint?
        public var persistentKeepalive: UInt16
        public init(publicKey: PublicKey, presharedKey: SecretKey? = nil, allowedIPs: [IPPrefix],
                    endpoint: Endpoint? = nil, persistentKeepalive: UInt16 = 0) {
            self.publicKey = publicKey
            self.presharedKey = presharedKey
            self.allowedIPs = allowedIPs
            self.endpoint = endpoint
            self.persistentKeepalive = persistentKeepalive
        }
    }

    public var privateKey: SecretKey
    public var mtu: Int
    public var threads: Int
    public var peers: [PeerSetup]
    /// Test-only: the initiator rekeys after this long instead of REKEY_AFTER_TIME.
    public var rekeyAfterTime: UInt64 = ProtocolLimits.rekeyAfterTime
    /// Batches in flight per direction.
    public var batchesPerDirection = 16
    /// fq_codel ahead of the crypto pool (false: a plain FIFO, for comparison).
    public var aqm = true
    /// CoDel marks ECN-capable packets CE instead of dropping them.
    public var ecn = true
    public var codelTarget: UInt64 = CoDelParameters.defaultTarget
    public var codelInterval: UInt64 = CoDelParameters.defaultInterval
    /// Whether the outer DSCP is zero (as kernel WireGuard: nothing leaks) or copied from the inner packet.
    public var dscp: DSCPMode = .zero
    /// The AEAD library the crypto workers use for transport data.
    public var aead: AEADImplementation = .libsodium
    /// Where each crypto worker runs (one entry per worker); nil: unpinned.
    public var placements: [WorkerPlacement]?
    /// Egress rate in outer bytes (--rate); nil: unshaped. See Shaper.swift.
    public var rate: Rate?
    /// Outer IPv6 flow label from the inner flow hash (--flowlabel). See FlowLabels.swift.
    public var flowLabel = false

    public init(privateKey: SecretKey, mtu: Int = 1420, threads: Int, peers: [PeerSetup]) {
        self.privateKey = privateKey
        self.mtu = mtu
        self.threads = threads
        self.peers = peers
    }
}

public enum DeviceError: Error, CustomStringConvertible {
    case duplicatePeer(PublicKey)
    case peerIsSelf
    case badPeerKey(PublicKey)
    public var description: String {
        switch self {
        case .duplicatePeer(let k): return "peer \(k) is configured twice"
        case .peerIsSelf: return "a peer has the interface's own public key"
        case .badPeerKey(let k): return "peer public key \(k) is not a usable X25519 key"
        }
    }
}

public final class Device: @unchecked Sendable {  // configuration is fixed after init; mutable state lives in Peer, queues and atomics
    public let identity: StaticIdentity
    public let peers: [Peer]
    public let peersByKey: [PublicKey: Peer]
    public let allowedIPs: AllowedIPs
    public let mtu: Int
    public let counters: Counters
    public let indices = IndexTable()
    public let logger: Logger
    public let clock: any MonotonicClock
    /// The clock when the device was made (the start of `show`'s first sojourn window).
    let startTime: UInt64
    let tun: any TunInterface
    let bind: any UDPBind
    let config: DeviceConfiguration

    /// Headroom in front of each send packet for the transport header, so sealing is in place.
    static let headroom = MessageLayout.transportHeaderSize
    let sendPool: BatchPool
    /// fq_codel state of the send path (nil with --no-aqm).
    let sendQueueing: SendQueueing?
    /// The --rate shaper (nil: unshaped); the tun-reader's alone.
    let shaper: EgressShaper?
    /// The leased outer IPv6 flow labels (nil: none; the kernel's automatic label).
    let flowLabels: FlowLabelPool?
    let receivePool: BatchPool
    /// Received datagrams allowed between socket and TUN (the rest wait in the socket buffer).
    let receiveBudget: ReceiveBudget
    /// CoDel on the socket buffer's sojourn, per peer (nil with --no-aqm).
    let receiveAQM: ReceiveAQM?
    /// The receive express lane's flow table (nil with --no-aqm; ReceiveExpressLane.swift).
    let receiveExpress: ReceiveExpress?
    /// Held by the thread that judges and writes received packets (the tun-writer per list, the udp-reader for
    /// an express or run-to-completion batch): replay windows, receive CoDel, per-peer receive events, the TUN's
    /// write-side state and the express flow table have one user at a time.
    let deliveryLock = ConditionLock()
    let cryptoQueue: CryptoQueue
    /// Packets per crypto job: small enough that every worker gets a share of a large batch.
    static let cryptoChunk = 32
    /// Run to completion: an I/O thread that finds its direction's pipeline idle seals or opens a batch itself
    /// when it is at most this many packets and bytes (a few tens of microseconds of crypto: paced and
    /// interactive traffic). Anything larger, such as the segments of a TCP super-packet, goes to the workers.
    static let inlineMaxPackets = 64
    static let inlineMaxBytes = 48 << 10
    let sendQueue: BatchQueue
    /// --no-aqm: batches the tun-reader has handed on that the udp-writer has not yet sent.
    let fifoInFlight = Atomic<Int>(0)
    let receiveQueue: BatchQueue
    let control: ControlQueue
    var threads: [PipelineThread] = []
    let running = Atomic<Bool>(false)
    let timerJitter = TimerJitter(seed: SecureRandom.uint64())
    /// The key of the placeholder AEAD item that dropped packets keep.
    let dummyKey = SecretKey()
    var dscpMode: DSCPMode { config.dscp }
    /// When the last ECN anomaly line was logged (monotonic ns; 0: never).
    let lastECNAnomalyLog = Atomic<UInt64>(0)

    public init(config: DeviceConfiguration, tun: any TunInterface, bind: any UDPBind,
                clock: any MonotonicClock = SystemClock(), logger: Logger, counters: Counters = Counters()) throws {
        self.counters = counters
        let identity = StaticIdentity(privateKey: config.privateKey)
        var peers: [Peer] = []
        var byKey: [PublicKey: Peer] = [:]
        var routes = AllowedIPs()
        for (i, setup) in config.peers.enumerated() {
            if byKey[setup.publicKey] != nil { throw DeviceError.duplicatePeer(setup.publicKey) }
            if setup.publicKey == identity.publicKey { throw DeviceError.peerIsSelf }
            let keys = PeerKeys(identity: identity, remoteStatic: setup.publicKey, presharedKey: setup.presharedKey)
            if keys.staticStatic == nil { throw DeviceError.badPeerKey(setup.publicKey) }
            let peer = Peer(id: Int32(i), keys: keys, endpoint: setup.endpoint,
                            persistentKeepalive: setup.persistentKeepalive)
            peers.append(peer)
            byKey[setup.publicKey] = peer
            for prefix in setup.allowedIPs { routes.insert(prefix, peer: Int32(i)) }
        }
        self.identity = identity
        self.peers = peers
        self.peersByKey = byKey
        self.allowedIPs = routes
        self.mtu = config.mtu
        self.tun = tun
        self.bind = bind
        self.clock = clock
        startTime = clock.now()
        self.logger = logger
        self.config = config
        // A send buffer holds the transport header, the padded packet and the tag.
        let slotSize = max(2048, Device.headroom + (max(config.mtu, 1500) + 15) / 16 * 16 + 64)
        let n = config.batchesPerDirection
        // Crypto workers that run at once (see CryptoQueue); the in-flight budgets below follow them.
        let cpus = Device.workerCPUCount(config.placements)
        let activeWorkers = max(1, min(config.threads, cpus))
        // With workers on several NUMA nodes, the packet slabs live on the node the pipeline threads run on.
        let home = Placement.pipelineHome(config.placements)?.node
        if config.aqm {
            // Packets live in the queueing slots; batches only carry pointers to them.
            // Per peer at most 10240 packets / 32 MiB queued, Linux fq_codel's defaults (CoDel keeps the standing
            // queue far below that; the limit only catches slow-start overshoot and unresponsive floods — a lower
            // one dropped bursts of cubic's slow start at 3 Gbit/s), out of 16384 slots (32 MiB) for the device.
            let params = FQCoDelParameters(mtu: UInt32(max(256, config.mtu)), limitPackets: 10240,
                                           memoryLimitBytes: 32 << 20, target: config.codelTarget,
                                           interval: config.codelInterval, ecn: config.ecn)
            sendQueueing = SendQueueing(peers: peers.count, slots: 16384, slotSize: slotSize, parameters: params,
                                        budget: Device.sendBudget(activeWorkers: activeWorkers),
                                        now: clock.now(), node: home)
            sendPool = BatchPool(batches: n, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: PacketBatch.capacity)
        } else {
            sendQueueing = nil
            sendPool = BatchPool(batches: n, buffersPerBatch: PacketBatch.capacity, bufferSize: slotSize,
                                 packetsPerBatch: PacketBatch.capacity, node: home)
        }
        shaper = config.rate.map { EgressShaper(rate: $0, mtu: config.mtu, now: clock.now()) }
        flowLabels = config.flowLabel
            ? Device.leaseFlowLabels(config, bind, sendQueueing?.hasher ?? FlowHasher(key: SecureRandom.bytes(16)), logger)
            : nil
        receiveAQM = config.aqm
            ? ReceiveAQM(peers: peers.count, params: CoDelParameters(
                target: config.codelTarget, interval: config.codelInterval, mtu: UInt32(max(256, config.mtu)),
                ecn: config.ecn))
            : nil
        receiveExpress = config.aqm ? ReceiveExpress() : nil
        // A receive buffer holds one message from the socket, which with UDP GRO may carry many datagrams.
        let perMessage = max(1, bind.datagramsPerMessage)
        let messages = perMessage > 1 ? min(16, bind.batchSize) : min(PacketBatch.capacity, bind.batchSize)
        receivePool = BatchPool(batches: perMessage > 1 ? max(4, n / 2) : n, buffersPerBatch: messages,
                                bufferSize: max(bind.receiveBufferSize, slotSize),
                                packetsPerBatch: messages * perMessage, node: home)
        // Four batches' worth per worker that runs at once, read in at least four receive calls (ReceiveBudget.swift).
        receiveBudget = ReceiveBudget(limit: max(messages * perMessage / 2,
                                                 max(2, activeWorkers) * 4 * PacketBatch.capacity))
        let maxChunks = (messages * perMessage + Device.cryptoChunk - 1) / Device.cryptoChunk
        cryptoQueue = CryptoQueue(capacity: n * (PacketBatch.capacity / Device.cryptoChunk + maxChunks + 2),
                                  workers: max(1, config.threads), maxActive: cpus)
        sendQueue = BatchQueue(capacity: n)
        receiveQueue = BatchQueue(capacity: n)
        control = ControlQueue(capacity: ProtocolLimits.maxQueuedHandshakes)
    }

    public var listenPort: UInt16 { bind.port }

    /// Packets the send side lets into the crypto pool at once (with fq_codel): a batch for each worker that runs
    /// at once, and one more, ready when a worker finishes. Everything beyond waits in fq_codel, where CoDel
    /// manages it and sparse flows overtake it. Measured in the CPU-bound benchmark on 2 vCPUs (4 TCP streams,
    /// 3 alternating rounds): 512 packets in flight gave ping p99 10.4–12.4 ms loaded, 384 gave 9.2–9.6 ms at the
    /// same throughput (both within the rounds' spread of --no-aqm), 256 gave 6.1–7.0 ms but 6 % less throughput.
    /// What sits in flight here also arrives at the receiver in one burst, to wait in its socket buffer.
    static func sendBudget(activeWorkers: Int) -> Int { (max(1, activeWorkers) + 1) * PacketBatch.capacity }

    /// CPUs the crypto workers can run on: the union of their placements, or the process's CPUs when unpinned.
    static func workerCPUCount(_ placements: [WorkerPlacement]?) -> Int {
        if let placements, placements.allSatisfy({ !$0.cpus.isEmpty }) {
            return max(1, Set(placements.flatMap(\.cpus)).count)
        }
        return max(1, CPUTopology.discover().cpuCount)
    }

    /// Leases the --flowlabel pool on the socket; logs once and returns nil if none could be had.
    static func leaseFlowLabels(_ config: DeviceConfiguration, _ bind: any UDPBind, _ hasher: FlowHasher,
                                _ logger: Logger) -> FlowLabelPool? {
        // A lease names a destination (any IPv6 address will do; sends to others may use it): the first IPv6 peer.
        let destination = config.peers.lazy.compactMap { $0.endpoint }.first { !$0.isV4 }?.address
            ?? IPAddress("::1")!
        let (labels, error) = bind.leaseFlowLabels(count: FlowLabelPool.wanted, destination: destination)
        if labels.isEmpty {
            logger.warning("--flowlabel: no outer IPv6 flow label could be leased (\(error ?? "unknown reason")); sending without (the kernel's automatic label)")
            return nil
        }
        let note = error.map { "; fewer than \(FlowLabelPool.wanted): \($0)" } ?? ""
        logger.info("--flowlabel: \(labels.count) outer IPv6 flow labels leased\(note)")
        return FlowLabelPool(labels: labels, hasher: hasher)
    }

    /// Starts every pipeline thread.
    public func start() {
        precondition(!running.load(ordering: .relaxed))
        running.store(true, ordering: .releasing)
        for i in 0..<max(1, config.threads) {
            let placement = config.placements.flatMap { i < $0.count ? $0[i] : nil }
            threads.append(PipelineThread(name: "vf-crypto-\(i)") { [self] in
                if let placement, !Placement.pinCurrentThread(to: placement.cpus) {
                    logger.warning("could not pin crypto worker \(i) to CPUs \(placement.cpus)")
                }
                cryptoWorkerLoop(worker: i, context: AEADContext(config.aead))
            })
        }
        // With workers on several nodes, the threads that read and write packets run on the slabs' node.
        let home = Placement.pipelineHome(config.placements)
        func onHome(_ name: String, _ body: @escaping @Sendable () -> Void) -> PipelineThread {
            PipelineThread(name: name) { [self] in
                if let home, !Placement.pinCurrentThread(to: home.cpus) {
                    logger.warning("could not pin \(name) to NUMA node \(home.node) (CPUs \(home.cpus))")
                }
                body()
            }
        }
        threads.append(onHome("vf-tun-reader") { [self] in
            if let q = sendQueueing { tunReaderLoopAQM(q) } else { tunReaderLoop() }
        })
        threads.append(onHome("vf-udp-writer") { [self] in udpWriterLoop() })
        threads.append(onHome("vf-udp-reader") { [self] in udpReaderLoop() })
        threads.append(onHome("vf-tun-writer") { [self] in tunWriterLoop() })
        threads.append(PipelineThread(name: "vf-control") { [self] in controlLoop() })
        // As WireGuard does, a peer with a persistent keepalive is contacted at once (which starts a handshake).
        for p in peers where p.timers.persistentKeepaliveInterval > 0 && p.endpoint != nil { wantHandshake(p) }
        let numa = home.map { "; packet buffers and pipeline threads on NUMA node \($0.node)" } ?? ""
        logger.info("device up: \(peers.count) peer(s), listening on UDP port \(bind.port), \(config.threads) crypto thread(s) using \(config.aead.rawValue)\(numa)")
    }

    /// Stops every thread and waits for them. The TUN and socket are closed by their owner afterwards.
    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        sendPool.close(); receivePool.close()
        cryptoQueue.close(); sendQueue.close(); receiveQueue.close()
        control.close()
        tun.wake(); bind.wake(); receiveBudget.wakeAll()
        for t in threads { t.join() }
        threads.removeAll()
        for p in peers {
            p.lock.withLock {
                p.timers.stop()
                _ = p.keypairs.clear()
                p.staged.removeAll()
            }
        }
    }

    @inline(__always) var isRunning: Bool { running.load(ordering: .relaxed) }

    /// Random jitter for handshake timers.
    @inline(__always) func jitter() -> UInt64 { timerJitter.next() }

    /// Asks the control thread to start a handshake with `peer` (cheap, callable from any thread).
    func wantHandshake(_ peer: Peer) {
        if !peer.handshakeWanted.exchange(true, ordering: .acquiringAndReleasing) {
            control.post(.wantHandshake(peer.id))
        }
    }

    /// Makes the control thread run the peer timers now rather than at its next wake-up (up to a second away).
    /// For tests that move a fake clock and want the timers due at the new time to fire at once.
    public func kickControl() { control.post(.runTimers) }

    /// Logs every non-zero counter, one line each (`counter NAME=VALUE`).
    public func logCounters() {
        for (c, v) in counters.snapshot() where v != 0 {
            logger.info("counter \(c.name)=\(v)")
        }
        for p in peers {
            logger.info("peer \(p.publicKey) rx_bytes=\(p.rxBytes.load(ordering: .relaxed)) tx_bytes=\(p.txBytes.load(ordering: .relaxed))")
        }
    }
}
