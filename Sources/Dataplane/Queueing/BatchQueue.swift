// The ordered hand-over between two pipeline stages: tun-reader → udp-writer and udp-reader → tun-writer.
// A bounded ring with one producer and one consumer: the producer writes a cell, then publishes it by moving
// `tail` (release); the consumer reads the cell after seeing `tail` (acquire) and frees it by moving `head`
// (release). The serial stage takes the head only once its `crypted` flag is set (set by whichever crypto worker
// finishes the batch, which then calls `notify`). The consumer sleeps only when it can take nothing; pushing and
// notifying take the lock only while it sleeps (Parking.swift).
import Synchronization

/// A bounded FIFO of batches between pipeline stages, with blocking pop. One thread pushes, one thread pops;
/// any thread may notify, count or close.
public final class BatchQueue: @unchecked Sendable {  // one producer owns the cells past `tail`, one consumer those before it (acquire/release)
    /// Each filled cell holds one reference to its batch (taken at push, handed to the popper).
    private let cells: UnsafeMutablePointer<Unmanaged<PacketBatch>?>
    private let mask: Int
    private let capacity: Int
    // tail (producer), head (consumer) and closed, each on its own cache line.
    private let lines: UnsafeMutableRawPointer
    private var tail: UnsafeMutablePointer<Atomic<Int>> { lines.assumingMemoryBound(to: Atomic<Int>.self) }
    private var head: UnsafeMutablePointer<Atomic<Int>> { (lines + 64).assumingMemoryBound(to: Atomic<Int>.self) }
    private var closed: UnsafeMutablePointer<Atomic<Bool>> { (lines + 128).assumingMemoryBound(to: Atomic<Bool>.self) }
    private let parking = Parking()

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        var size = 1
        while size < self.capacity { size <<= 1 }
        mask = size - 1
        cells = .allocate(capacity: size)
        cells.initialize(repeating: nil, count: size)
        lines = .allocate(byteCount: 192, alignment: 64)
        lines.assumingMemoryBound(to: Atomic<Int>.self).initialize(to: Atomic(0))
        (lines + 64).assumingMemoryBound(to: Atomic<Int>.self).initialize(to: Atomic(0))
        (lines + 128).assumingMemoryBound(to: Atomic<Bool>.self).initialize(to: Atomic(false))
    }

    deinit {
        var h = head.pointee.load(ordering: .acquiring)
        let t = tail.pointee.load(ordering: .acquiring)
        while h != t { cells[h & mask]?.release(); h &+= 1 }
        cells.deallocate()
        tail.deinitialize(count: 1)
        head.deinitialize(count: 1)
        closed.deinitialize(count: 1)
        lines.deallocate()
    }

    /// Producer: appends `b` and wakes the consumer if it sleeps.
    public func push(_ b: PacketBatch) {
        let t = tail.pointee.load(ordering: .relaxed)
        precondition(t &- head.pointee.load(ordering: .acquiring) < capacity, "batch queue sized below the batch pool")
        cells[t & mask] = Unmanaged.passRetained(b)
        tail.pointee.store(t &+ 1, ordering: .releasing)
        parking.wake()
    }

    /// Consumer: pops the head, waiting while empty; nil once closed and empty.
    public func pop() -> PacketBatch? {
        while true {
            let wasClosed = closed.pointee.load(ordering: .acquiring)
            if let b = takeHead(crypted: false) { return b }
            if wasClosed { return nil }
            parking.park { headReady(crypted: false) || closed.pointee.load(ordering: .sequentiallyConsistent) }
        }
    }

    /// Consumer: pops the head once its crypto is done (the ordered stage); nil once closed.
    public func popCrypted() -> PacketBatch? {
        while true {
            if closed.pointee.load(ordering: .acquiring) { return nil }
            if let b = takeHead(crypted: true) { return b }
            parking.park { headReady(crypted: true) || closed.pointee.load(ordering: .sequentiallyConsistent) }
        }
    }

    /// Consumer: the head, without taking it, if its crypto is done (nil otherwise, and once closed, as
    /// popCrypted; never waits).
    public func peekCrypted() -> PacketBatch? {
        guard !closed.pointee.load(ordering: .acquiring), headReady(crypted: true) else { return nil }
        return cells[head.pointee.load(ordering: .relaxed) & mask]!.takeUnretainedValue()
    }

    /// Consumer: pops the head if its crypto is done; nil without waiting otherwise, and once closed.
    public func popCryptedNow() -> PacketBatch? {
        if closed.pointee.load(ordering: .acquiring) { return nil }
        return takeHead(crypted: true)
    }

    /// Batches queued right now (no lock; for receive CoDel's backlog test, once per batch).
    public var count: Int {
        let h = head.pointee.load(ordering: .acquiring)
        let t = tail.pointee.load(ordering: .acquiring)
        return min(max(t &- h, 0), capacity)
    }

    /// Crypto workers, after a batch's crypto finished (its `crypted` stored): wakes the consumer if it sleeps
    /// in `popCrypted`. A fence and a load when it does not.
    @inline(__always) public func notify() { parking.wake() }

    public func close() {
        closed.pointee.store(true, ordering: .sequentiallyConsistent)
        parking.wakeAll()
    }

    /// Consumer: whether there is a head (and, if `crypted`, whether its crypto is done). seq_cst loads, as the
    /// re-check before sleeping needs (on x86 as cheap as acquire loads).
    @inline(__always) private func headReady(crypted: Bool) -> Bool {
        let h = head.pointee.load(ordering: .relaxed)
        guard tail.pointee.load(ordering: .sequentiallyConsistent) != h, let b = cells[h & mask] else { return false }
        return !crypted || b._withUnsafeGuaranteedRef { $0.crypted.load(ordering: .sequentiallyConsistent) }
    }

    /// Consumer: takes the head if `headReady`.
    @inline(__always) private func takeHead(crypted: Bool) -> PacketBatch? {
        guard headReady(crypted: crypted) else { return nil }
        let h = head.pointee.load(ordering: .relaxed)
        let b = cells[h & mask]!
        cells[h & mask] = nil
        head.pointee.store(h &+ 1, ordering: .releasing)
        return b.takeRetainedValue()
    }
}
