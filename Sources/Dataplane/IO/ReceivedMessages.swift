// What the two UDP backends (MmsgBind, UringBind) share on the receive side: per-message results from the C
// layer, and the split of each message into datagrams by its UDP GRO segment size.
import CShims

/// Per-message arrays a receive call fills: capacity, length, source, truncation flag and GRO segment size of
/// message i. Allocated once per bind, used by its one receiving thread.
struct ReceivedMessages {
    let capacity: Int
    let caps: UnsafeMutablePointer<UInt32>
    let lengths: UnsafeMutablePointer<UInt32>
    let endpoints: UnsafeMutablePointer<Endpoint>
    let truncated: UnsafeMutablePointer<UInt8>
    let segments: UnsafeMutablePointer<UInt16>
    let tos: UnsafeMutablePointer<UInt8>
    let stamps: UnsafeMutablePointer<UInt64>

    init(capacity: Int) {
        self.capacity = capacity
        caps = .allocate(capacity: capacity); caps.initialize(repeating: 0, count: capacity)
        lengths = .allocate(capacity: capacity); lengths.initialize(repeating: 0, count: capacity)
        endpoints = .allocate(capacity: capacity); endpoints.initialize(repeating: Endpoint(), count: capacity)
        truncated = .allocate(capacity: capacity); truncated.initialize(repeating: 0, count: capacity)
        segments = .allocate(capacity: capacity); segments.initialize(repeating: 0, count: capacity)
        tos = .allocate(capacity: capacity); tos.initialize(repeating: 0, count: capacity)
        stamps = .allocate(capacity: capacity); stamps.initialize(repeating: 0, count: capacity)
    }

    func deallocate() {
        caps.deallocate(); lengths.deallocate(); endpoints.deallocate(); truncated.deallocate()
        segments.deallocate(); tos.deallocate(); stamps.deallocate()
    }

    /// How many messages one receive may take: never more than the packet arrays can hold once split.
    static func count(bufferCount: Int, batchSize: Int, maxPackets: Int, perMessage: Int) -> Int {
        max(1, min(bufferCount, batchSize, maxPackets / perMessage))
    }

    /// Sets every message's capacity to `capacity` for the next `count` messages.
    func prepare(count: Int, capacity: Int) {
        for i in 0..<count { caps[i] = UInt32(capacity) }
    }

    /// Splits messages 0..<n (message i in `buffers[i]`) into datagrams: a message with a GRO segment size
    /// carries datagrams of that size (the last may be shorter). Truncated messages are dropped and counted.
    /// Returns the number of datagrams, at most `maxPackets`. Room is sized for `MmsgBind.maxSegments` datagrams a
    /// message, but a local sender may pass the kernel more per UDP_SEGMENT send (newer kernels allow 128) and
    /// they arrive as one message: datagrams past `maxPackets` are dropped and counted in `dropped` too.
    func split(_ n: Int, buffers: UnsafePointer<UnsafeMutableRawPointer>,
               packets: UnsafeMutablePointer<UnsafeMutableRawPointer>, lengths out: UnsafeMutablePointer<UInt32>,
               endpoints outEndpoints: UnsafeMutablePointer<Endpoint>, tos outTOS: UnsafeMutablePointer<UInt8>,
               timestamps outStamps: UnsafeMutablePointer<UInt64>, maxPackets: Int,
               truncated dropped: inout Int) -> Int {
        var k = 0
        for i in 0..<n {
            if truncated[i] != 0 { dropped += 1; continue }
            let total = Int(lengths[i])
            let seg = segments[i] == 0 ? total : Int(segments[i])
            var off = 0
            repeat {
                if k >= maxPackets {
                    dropped += seg > 0 ? (total - off + seg - 1) / seg : 1
                    break
                }
                let len = min(seg, total - off)
                packets[k] = buffers[i] + off
                out[k] = UInt32(len)
                outEndpoints[k] = endpoints[i]
                outTOS[k] = tos[i]
                outStamps[k] = stamps[i]
                k += 1
                off += len
            } while off < total
        }
        return k
    }
}
