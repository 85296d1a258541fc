// A TUN device backed by in-memory queues: tests inject packets "from the OS" and collect what the device wrote.
import Dataplane

public final class ChannelTun: TunInterface, @unchecked Sendable {  // all state is guarded by `lock`
    public let name: String
    public let batchSize: Int
    private let lock = ConditionLock()
    private var inbound: [[UInt8]] = []
    private var outbound: [[UInt8]] = []
    private var woken = false
    private var closed = false

    public init(name: String = "chan0", batchSize: Int = PacketBatch.capacity) {
        self.name = name
        self.batchSize = batchSize
    }

    /// Queues packets for the device to read, as if the OS had routed them into the tunnel.
    public func inject(_ packets: [[UInt8]]) {
        lock.withLock {
            inbound.append(contentsOf: packets)
            lock.broadcast()
        }
    }

    /// Waits until at least `count` packets were written by the device (or `timeoutNanoseconds` passes), and
    /// returns everything written so far, removing it.
    public func collect(atLeast count: Int, timeoutNanoseconds: UInt64 = 5_000_000_000) -> [[UInt8]] {
        lock.withLock {
            let deadline = SystemClock().now() + timeoutNanoseconds
            while outbound.count < count {
                let now = SystemClock().now()
                if now >= deadline { break }
                lock.wait(nanoseconds: deadline - now)
            }
            let out = outbound
            outbound.removeAll()
            return out
        }
    }

    public func read(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, capacity: Int,
                     lengths: UnsafeMutablePointer<UInt32>, count: Int, timeoutMs: Int32) throws -> Int {
        lock.withLock {
            if inbound.isEmpty && !woken && !closed {
                lock.wait(nanoseconds: UInt64(max(timeoutMs, 1)) * 1_000_000)
            }
            woken = false
            var n = 0
            while n < count && !inbound.isEmpty {
                let p = inbound.removeFirst()
                let len = min(p.count, capacity)
                p.withUnsafeBytes { buffers[n].copyMemory(from: $0.baseAddress!, byteCount: len) }
                lengths[n] = UInt32(len)
                n += 1
            }
            return n
        }
    }

    public func write(_ buffers: UnsafePointer<UnsafeMutableRawPointer>, lengths: UnsafePointer<UInt32>,
                      count: Int) -> Int {
        lock.withLock {
            for i in 0..<count {
                outbound.append(Array(UnsafeRawBufferPointer(start: buffers[i], count: Int(lengths[i]))))
            }
            lock.broadcast()
            return count
        }
    }

    public func wake() { lock.withLock { woken = true; lock.broadcast() } }
    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
