// An in-memory UDP network that allocates nothing once set up: every bind owns a ring of fixed-size slots for the
// datagrams sent to it, senders copy into free slots, the receiver copies out. For allocation-counting benchmarks
// and load tests (ChannelNetwork makes an array per datagram).
//
// Unlike a real network it does not drop when a ring is full: the sender waits for room (up to `sendTimeoutMs`,
// then the rest of its batch is dropped and counted), so a benchmark can push an exact number of packets through.
import Dataplane

public final class RingNetwork: @unchecked Sendable {  // `binds` only changes under `lock`, before traffic starts
    public let slotCount: Int
    public let slotSize: Int
    public let sendTimeoutMs: Int
    private let lock = ConditionLock()
    private var binds: [RingBind] = []

    /// Every bind gets `slotCount` slots of `slotSize` bytes; a larger datagram is dropped as truncated.
    public init(slotCount: Int = 4096, slotSize: Int = 2048, sendTimeoutMs: Int = 1000) {
        precondition(slotCount > 0 && slotSize > 0)
        self.slotCount = slotCount
        self.slotSize = slotSize
        self.sendTimeoutMs = sendTimeoutMs
    }

    /// A bind listening at `endpoint`.
    public func bind(at endpoint: Endpoint, batchSize: Int = PacketBatch.capacity) -> RingBind {
        let b = RingBind(network: self, local: endpoint, batchSize: batchSize)
        lock.withLock { binds.append(b) }
        return b
    }

    /// The bind at `endpoint`, if any (one lock and a short scan per run of same-destination datagrams).
    func target(_ endpoint: Endpoint) -> RingBind? {
        lock.withLock {
            for b in binds where b.local == endpoint { return b }
            return nil
        }
    }
}

public final class RingBind: UDPBind, @unchecked Sendable {  // ring indices and counters are guarded by `lock`
    public let batchSize: Int
    public let local: Endpoint
    public var port: UInt16 { local.port }
    private unowned let network: RingNetwork
    private let lock = ConditionLock()

    private let slotSize: Int
    private let slotCount: Int
    private let storage: UnsafeMutableRawPointer
    private let slotLengths: UnsafeMutablePointer<UInt32>
    private let slotSources: UnsafeMutablePointer<Endpoint>
    /// Occupied slots are head, head + 1, … (mod slotCount), `queued` of them. Only the receiver moves `head`.
    private var head = 0
    private var queued = 0
    private var woken = false
    private var closed = false
    private var discardTransport = false

    private var delivered = 0
    private var discarded = 0
    private var dropped = 0
    private var sent = 0

    init(network: RingNetwork, local: Endpoint, batchSize: Int) {
        self.network = network
        self.local = local
        self.batchSize = batchSize
        slotSize = network.slotSize
        slotCount = network.slotCount
        storage = .allocate(byteCount: slotSize * slotCount, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: slotSize * slotCount)
        slotLengths = .allocate(capacity: slotCount)
        slotLengths.initialize(repeating: 0, count: slotCount)
        slotSources = .allocate(capacity: slotCount)
        slotSources.initialize(repeating: Endpoint(), count: slotCount)
    }

    deinit {
        storage.deallocate()
        slotLengths.deallocate()
        slotSources.deallocate()
    }

    // MARK: Test controls

    /// While on, transport data messages (type 4) sent to this bind are counted and thrown away instead of queued;
    /// handshake messages still arrive. Lets a benchmark measure the sending device alone.
    public var discardsTransport: Bool {
        get { lock.withLock { discardTransport } }
        set { lock.withLock { discardTransport = newValue; lock.broadcast() } }
    }

    /// Datagrams queued for this bind, thrown away by `discardsTransport`, and dropped because the ring stayed full;
    /// and datagrams this bind sent.
    public var counts: (delivered: Int, discarded: Int, dropped: Int, sent: Int) {
        lock.withLock { (delivered, discarded, dropped, sent) }
    }

    /// Waits until at least `count` datagrams were discarded in all; false if `timeoutNanoseconds` passed first.
    @discardableResult
    public func waitForDiscarded(atLeast count: Int, timeoutNanoseconds: UInt64) -> Bool {
        let deadline = SystemClock().now() + timeoutNanoseconds
        return lock.withLock {
            while discarded < count {
                let now = SystemClock().now()
                if now >= deadline { return false }
                lock.wait(nanoseconds: deadline - now)
            }
            return true
        }
    }

    // MARK: Inbound

    /// Copies up to `count` datagrams from `from` into free slots, waiting for room while the ring is full.
    /// Returns how many were accepted (queued or discarded).
    func enqueue(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>, count: Int,
                 from: Endpoint) -> Int {
        lock.withLock {
            var done = 0
            var waitedOut = false
            while done < count && !closed {
                if discardTransport {
                    while done < count && Self.isTransport(buffers[done], lengths[done]) {
                        done += 1
                        discarded += 1
                    }
                    if done > 0 { lock.broadcast() }
                    if done == count { break }
                }
                if queued == slotCount {
                    if waitedOut { break }
                    if !lock.wait(nanoseconds: UInt64(network.sendTimeoutMs) * 1_000_000) && queued == slotCount {
                        waitedOut = true
                    }
                    continue
                }
                let length = Int(lengths[done])
                if length > slotSize {
                    dropped += 1
                } else {
                    let slot = (head + queued) % slotCount
                    (storage + slot * slotSize).copyMemory(from: buffers[done], byteCount: length)
                    slotLengths[slot] = UInt32(length)
                    slotSources[slot] = from
                    queued += 1
                    delivered += 1
                }
                done += 1
                waitedOut = false
            }
            dropped += count - done
            lock.broadcast()
            return done
        }
    }

    /// A transport data message (type 4), as far as its first word tells.
    @inline(__always) static func isTransport(_ p: UnsafeRawPointer, _ length: UInt32) -> Bool {
        length >= 4 && UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) == MessageType.transport.rawValue
    }

    public var receiveBufferSize: Int { slotSize }
    public var datagramsPerMessage: Int { 1 }

    public func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                        packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                        endpoints: UnsafeMutablePointer<Endpoint>, tos: UnsafeMutablePointer<UInt8>,
                        timestamps: UnsafeMutablePointer<UInt64>, maxPackets: Int, truncated: inout Int,
                        timeoutMs: Int32) throws -> Int {
        let (first, available) = lock.withLock { () -> (Int, Int) in
            if queued == 0 && !woken && !closed {
                lock.wait(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
            }
            woken = false
            return (head, min(queued, bufferCount, batchSize, maxPackets))
        }
        // The slots stay occupied until `head` moves below, so senders leave them alone while they are copied.
        var n = 0
        for k in 0..<available {
            let slot = (first + k) % slotCount
            let length = Int(slotLengths[slot])
            if length > capacity { truncated += 1; continue }
            buffers[k].copyMemory(from: storage + slot * slotSize, byteCount: length)
            packets[n] = buffers[k]
            lengths[n] = UInt32(length)
            endpoints[n] = slotSources[slot]
            tos[n] = 0
            timestamps[n] = 0
            n += 1
        }
        if available > 0 {
            lock.withLock {
                head = (head + available) % slotCount
                queued -= available
                lock.broadcast()
            }
        }
        return n
    }

    // MARK: Outbound

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, tos: UnsafePointer<UInt8>?, count: Int) throws -> Int {
        var accepted = 0
        var i = 0
        while i < count {
            // A run of datagrams to one destination goes in under one lock.
            var end = i + 1
            while end < count && endpoints[end] == endpoints[i] { end += 1 }
            if let target = network.target(endpoints[i]) {
                accepted += target.enqueue(buffers + i, lengths: lengths + i, count: end - i, from: local)
            }
            i = end
        }
        lock.withLock { sent += accepted }
        return accepted
    }

    public func send(_ bytes: [UInt8], to endpoint: Endpoint, tos: UInt8) throws {
        guard !bytes.isEmpty, let target = network.target(endpoint) else { return }
        let n = bytes.withUnsafeBytes { raw -> Int in
            var buffer = UnsafeMutableRawPointer(mutating: raw.baseAddress!)
            var length = UInt32(raw.count)
            return target.enqueue(&buffer, lengths: &length, count: 1, from: local)
        }
        lock.withLock { sent += n }
    }

    public func wake() { lock.withLock { woken = true; lock.broadcast() } }
    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
