// The free batches of one slab. Any thread gives a batch back; the stage that reads packets takes one. The free
// list is a lock-free ring (MPMCRing.swift, no ABA: each cell has a sequence number); a taker sleeps only while the
// list is empty, and a giver takes the lock only when someone sleeps (Parking.swift).
import Synchronization

/// A fixed set of batches over one slab, handed out and returned without a lock.
public final class BatchPool: @unchecked Sendable {  // the free list is a lock-free ring; sleeping goes through `parking`
    public let slab: PacketSlab
    public let maxPacketsPerBatch: Int
    /// The free batches. The ring holds one reference to each (taken at give, handed on to the taker).
    private let free: MPMCRing<Unmanaged<PacketBatch>?>
    private let parking = Parking()
    private let closed = Atomic<Bool>(false)

    /// `batches` batches of `buffersPerBatch` buffers of `bufferSize` bytes, each batch with room for
    /// `packetsPerBatch` packets; the buffers on NUMA node `node` if given.
    public init(batches: Int, buffersPerBatch: Int, bufferSize: Int, packetsPerBatch: Int, node: Int? = nil) {
        slab = PacketSlab(slotSize: bufferSize, slotCount: batches * buffersPerBatch, node: node)
        maxPacketsPerBatch = packetsPerBatch
        free = MPMCRing(capacity: batches, placeholder: nil)
        for b in 0..<batches {
            let batch = PacketBatch(slab: slab, firstSlot: b * buffersPerBatch, bufferCount: buffersPerBatch,
                                    capacity: packetsPerBatch)
            _ = free.push(Unmanaged.passRetained(batch))
        }
    }

    deinit {
        while let b = free.pop() { b?.release() }
    }

    /// Waits for a free batch; nil once the pool is closed.
    public func take() -> PacketBatch? {
        while true {
            if closed.load(ordering: .acquiring) { return nil }
            if let b = takeFree() { return b }
            parking.park { !free.isEmpty || closed.load(ordering: .sequentiallyConsistent) }
        }
    }

    /// A free batch if there is one, without waiting.
    public func tryTake() -> PacketBatch? {
        if closed.load(ordering: .acquiring) { return nil }
        return takeFree()
    }

    /// Batches free right now (a hint while other threads give or take).
    public var available: Int { free.count }

    public func give(_ b: PacketBatch) {
        let pushed = free.push(Unmanaged.passRetained(b))
        precondition(pushed, "more batches given back than the pool holds (one given twice?)")
        parking.wake()
    }

    public func close() {
        closed.store(true, ordering: .sequentiallyConsistent)
        parking.wakeAll()
    }

    @inline(__always) private func takeFree() -> PacketBatch? {
        guard let cell = free.pop(), let b = cell else { return nil }
        let batch = b.takeRetainedValue()
        batch.reset()
        return batch
    }
}
