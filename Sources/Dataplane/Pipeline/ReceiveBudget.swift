// How many received datagrams may be between the socket and the TUN at once (read, waiting for or in crypto,
// waiting for the tun-writer). Like the send side's in-flight budget (BQL): enough to keep the workers busy, no
// more, so that when the CPU is the bottleneck the standing queue stays in the kernel's socket buffer, where
// receive CoDel sees it through the kernel timestamps, instead of in a FIFO of our own batches.
import Synchronization

final class ReceiveBudget: @unchecked Sendable {  // counts are atomic; the condition only parks the udp-reader
    /// Datagrams allowed in flight.
    let limit: Int
    /// The most datagrams one receive call takes: a quarter of the limit, so that while the workers open one
    /// batch the udp-reader can already read the next. (Measured with UDP GRO, where one batch can hold 1024
    /// datagrams: when a single read could take the whole budget, the receive side ran one batch at a time,
    /// reader, workers and tun-writer each waiting for the others, and left a third of the two vCPUs idle in
    /// the CPU-bound benchmark while pings waited 8 ms in the socket; with four reads in flight the loaded
    /// ping p50 went to under 5 ms, at the same or higher throughput.)
    let readLimit: Int
    private let inFlight = Atomic<Int>(0)
    private let waiting = Atomic<Bool>(false)
    private let room = ConditionLock()

    init(limit: Int) {
        self.limit = max(1, limit)
        readLimit = max(1, self.limit / 4)
    }

    /// Datagrams that may be read now.
    @inline(__always) var available: Int { limit - inFlight.load(ordering: .sequentiallyConsistent) }

    /// Datagrams read and not yet done with.
    @inline(__always) var inFlightCount: Int { inFlight.load(ordering: .sequentiallyConsistent) }

    /// Nothing is in flight: every datagram read has been delivered (or dropped) by the tun-writer, which
    /// therefore holds no batch.
    @inline(__always) var isIdle: Bool { inFlight.load(ordering: .sequentiallyConsistent) == 0 }

    /// udp-reader: waits (at most `nanoseconds`) until at least `atLeast` datagrams may be read.
    /// Returns the room there is then.
    func wait(atLeast: Int, nanoseconds: UInt64) -> Int {
        var now = available
        if now >= atLeast { return now }
        room.withLock {
            waiting.store(true, ordering: .sequentiallyConsistent)
            now = available  // look again after saying so, so a release in between is not slept through
            if now < atLeast {
                room.wait(nanoseconds: nanoseconds)
                now = available
            }
            waiting.store(false, ordering: .relaxed)
        }
        return now
    }

    /// udp-reader: `count` datagrams went to crypto.
    @inline(__always) func took(_ count: Int) { inFlight.add(count, ordering: .relaxed) }

    /// tun-writer: `count` datagrams are done with; wakes the reader if it waits for room.
    @inline(__always) func release(_ count: Int) {
        inFlight.subtract(count, ordering: .sequentiallyConsistent)
        if waiting.load(ordering: .sequentiallyConsistent) { room.withLock { room.signal() } }
    }

    /// Wakes a waiting reader (on stop).
    func wakeAll() { room.withLock { room.broadcast() } }
}
