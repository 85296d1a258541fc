// An in-memory UDP network: binds attached to it exchange datagrams by endpoint, in order, with batching.
import Dataplane

public final class ChannelNetwork: @unchecked Sendable {  // the bind table is guarded by `lock`
    private let lock = ConditionLock()
    private var binds: [(Endpoint, ChannelBind)] = []

    public init() {}

    /// A bind listening at `endpoint`.
    public func bind(at endpoint: Endpoint, batchSize: Int = PacketBatch.capacity) -> ChannelBind {
        let b = ChannelBind(network: self, local: endpoint, batchSize: batchSize)
        lock.withLock { binds.append((endpoint, b)) }
        return b
    }

    /// Delivers a datagram to the bind at `to`, if any (otherwise it is lost, as on a real network).
    public func deliver(_ bytes: [UInt8], from: Endpoint, to: Endpoint) {
        let target = lock.withLock { binds.first(where: { $0.0 == to })?.1 }
        target?.enqueue(bytes, from: from)
    }
}

public final class ChannelBind: UDPBind, @unchecked Sendable {  // the receive queue is guarded by `lock`
    public let batchSize: Int
    public let local: Endpoint
    public var port: UInt16 { local.port }
    private unowned let network: ChannelNetwork
    private let lock = ConditionLock()
    private var queue: [([UInt8], Endpoint)] = []
    private var woken = false
    private var closed = false
    /// Datagrams this bind sent, for tests that inspect the wire.
    public private(set) var sentCount = 0

    init(network: ChannelNetwork, local: Endpoint, batchSize: Int) {
        self.network = network
        self.local = local
        self.batchSize = batchSize
    }

    func enqueue(_ bytes: [UInt8], from: Endpoint) {
        lock.withLock {
            queue.append((bytes, from))
            lock.broadcast()
        }
    }

    /// Injects a datagram as if `from` had sent it to this bind (hostile-input tests).
    public func inject(_ bytes: [UInt8], from: Endpoint) { enqueue(bytes, from: from) }

    public var receiveBufferSize: Int { 2048 }
    public var datagramsPerMessage: Int { 1 }

    public func receive(buffers: UnsafePointer<UnsafeMutableRawPointer>, bufferCount: Int, capacity: Int,
                        packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths: UnsafeMutablePointer<UInt32>,
                        endpoints: UnsafeMutablePointer<Endpoint>, maxPackets: Int, truncated: inout Int,
                        timeoutMs: Int32) throws -> Int {
        lock.withLock {
            if queue.isEmpty && !woken && !closed {
                lock.wait(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
            }
            woken = false
            var n = 0
            var used = 0
            while used < min(bufferCount, batchSize) && n < maxPackets && !queue.isEmpty {
                let (bytes, from) = queue.removeFirst()
                let buffer = buffers[used]
                used += 1
                if bytes.count > capacity { truncated += 1; continue }
                if !bytes.isEmpty { bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } }
                packets[n] = buffer
                lengths[n] = UInt32(bytes.count)
                endpoints[n] = from
                n += 1
            }
            return n
        }
    }

    public func send(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                     endpoints: UnsafePointer<Endpoint>, count: Int) throws -> Int {
        for i in 0..<count {
            network.deliver(Array(UnsafeRawBufferPointer(start: buffers[i], count: Int(lengths[i]))),
                            from: local, to: endpoints[i])
        }
        lock.withLock { sentCount += count }
        return count
    }

    public func send(_ bytes: [UInt8], to endpoint: Endpoint) throws {
        network.deliver(bytes, from: local, to: endpoint)
        lock.withLock { sentCount += 1 }
    }

    public func wake() { lock.withLock { woken = true; lock.broadcast() } }
    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
