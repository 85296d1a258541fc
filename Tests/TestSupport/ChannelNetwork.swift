// An in-memory UDP network: binds attached to it exchange datagrams by endpoint, in order, with batching.
import Dataplane

public final class ChannelNetwork: @unchecked Sendable {  // the bind table and the log are guarded by `lock`
    /// One datagram as it crossed the network.
    public struct Datagram: Sendable {
        public let bytes: [UInt8]
        public let from: Endpoint
        public let to: Endpoint
        /// The outer TOS / traffic class it was sent with.
        public var tos: UInt8 = 0
    }

    private let lock = ConditionLock()
    private var binds: [(Endpoint, ChannelBind)] = []
    private var recording = false
    private var log: [Datagram] = []

    public init() {}

    /// While on, every datagram sent through the network (delivered or not) is appended to a log, so tests can
    /// replay or forge captured traffic.
    public var isRecording: Bool {
        get { lock.withLock { recording } }
        set { lock.withLock { recording = newValue } }
    }

    /// The datagrams logged so far, oldest first.
    public var recorded: [Datagram] { lock.withLock { log } }

    /// A bind listening at `endpoint`.
    public func bind(at endpoint: Endpoint, batchSize: Int = PacketBatch.capacity) -> ChannelBind {
        let b = ChannelBind(network: self, local: endpoint, batchSize: batchSize)
        lock.withLock { binds.append((endpoint, b)) }
        return b
    }

    /// Delivers a datagram to the bind at `to`, if any (otherwise it is lost, as on a real network).
    public func deliver(_ bytes: [UInt8], from: Endpoint, to: Endpoint, tos: UInt8 = 0) {
        let target = lock.withLock { () -> ChannelBind? in
            if recording { log.append(Datagram(bytes: bytes, from: from, to: to, tos: tos)) }
            return binds.first(where: { $0.0 == to })?.1
        }
        target?.enqueue(bytes, from: from, tos: tos)
    }
}

public final class ChannelBind: UDPBind, @unchecked Sendable {  // the receive queue is guarded by `lock`
    public let batchSize: Int
    public let local: Endpoint
    public var port: UInt16 { local.port }
    private unowned let network: ChannelNetwork
    private let lock = ConditionLock()
    /// Datagrams waiting to be received: `queue[head...]` (a moving head keeps dequeuing O(1) under floods).
    private var queue: [([UInt8], Endpoint)] = []
    /// The outer TOS of each queued datagram, parallel to `queue`.
    private var queueTOS: [UInt8] = []
    private var head = 0
    private var woken = false
    private var closed = false
    /// Datagrams this bind sent, for tests that inspect the wire.
    public private(set) var sentCount = 0

    init(network: ChannelNetwork, local: Endpoint, batchSize: Int) {
        self.network = network
        self.local = local
        self.batchSize = batchSize
    }

    func enqueue(_ bytes: [UInt8], from: Endpoint, tos: UInt8 = 0) {
        lock.withLock {
            queue.append((bytes, from))
            queueTOS.append(tos)
            lock.broadcast()
        }
    }

    /// Injects a datagram as if `from` had sent it to this bind (hostile-input tests).
    public func inject(_ bytes: [UInt8], from: Endpoint, tos: UInt8 = 0) { enqueue(bytes, from: from, tos: tos) }

    /// Injects many datagrams at once, so the device finds the whole burst queued (floods, load tests).
    public func inject(_ datagrams: [([UInt8], Endpoint)]) {
        lock.withLock {
            queue.append(contentsOf: datagrams)
            queueTOS.append(contentsOf: repeatElement(0, count: datagrams.count))
            lock.broadcast()
        }
    }

    public var receiveBufferSize: Int { 2048 }
    public var datagramsPerMessage: Int { 1 }

    public func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                        packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                        endpoints: UnsafeMutablePointer<Endpoint>, tos: UnsafeMutablePointer<UInt8>,
                        timestamps: UnsafeMutablePointer<UInt64>, maxPackets: Int, truncated: inout Int,
                        timeoutMs: Int32) throws -> Int {
        lock.withLock {
            if head == queue.count && !woken && !closed {
                lock.wait(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
            }
            woken = false
            var n = 0
            var used = 0
            while used < min(bufferCount, batchSize) && n < maxPackets && head < queue.count {
                let (bytes, from) = queue[head]
                let datagramTOS = queueTOS[head]
                queue[head] = ([], from)
                head += 1
                let buffer = buffers[used]
                used += 1
                if bytes.count > capacity { truncated += 1; continue }
                if !bytes.isEmpty { bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } }
                packets[n] = buffer
                lengths[n] = UInt32(bytes.count)
                endpoints[n] = from
                tos[n] = datagramTOS
                timestamps[n] = 0
                n += 1
            }
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                queueTOS.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 4096 && head * 2 >= queue.count {
                queue.removeFirst(head)
                queueTOS.removeFirst(head)
                head = 0
            }
            return n
        }
    }

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, tos: UnsafePointer<UInt8>?, count: Int) throws -> Int {
        for i in 0..<count {
            network.deliver(Array(UnsafeRawBufferPointer(start: buffers[i], count: Int(lengths[i]))),
                            from: local, to: endpoints[i], tos: tos?[i] ?? 0)
        }
        lock.withLock { sentCount += count }
        return count
    }

    public func send(_ bytes: [UInt8], to endpoint: Endpoint, tos: UInt8) throws {
        network.deliver(bytes, from: local, to: endpoint, tos: tos)
        lock.withLock { sentCount += 1 }
    }

    public func wake() { lock.withLock { woken = true; lock.broadcast() } }
    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
