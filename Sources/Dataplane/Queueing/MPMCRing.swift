// A bounded multi-producer multi-consumer ring without locks (one sequence number per cell, as in
// Dmitry Vyukov's well-known bounded queue). Producers and consumers each claim a position with one
// compare-and-swap; a cell's sequence number says whether it is free for the producer of that
// position or filled for its consumer. A thread waits on another in one rare case only: a push onto a cell
// whose last value a consumer has claimed but, preempted, not yet released.
// Elements are plain values (no ARC): callers pass unmanaged references where they need objects.
import Glibc
import Synchronization

public final class MPMCRing<Element: BitwiseCopyable>: @unchecked Sendable {  // cells are handed over by the acquire/release sequence numbers
    private let mask: Int
    private let sequences: UnsafeMutablePointer<Atomic<Int>>
    private let values: UnsafeMutablePointer<Element>
    // Claim counters, each on its own cache line so producers and consumers do not share one.
    private let positions: UnsafeMutableRawPointer
    private var enqueuePosition: UnsafeMutablePointer<Atomic<Int>> { positions.assumingMemoryBound(to: Atomic<Int>.self) }
    private var dequeuePosition: UnsafeMutablePointer<Atomic<Int>> {
        (positions + 64).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// A ring of at least `capacity` cells (rounded up to a power of two).
    public init(capacity: Int, placeholder: Element) {
        var size = 2
        while size < capacity { size <<= 1 }
        mask = size - 1
        sequences = .allocate(capacity: size)
        for i in 0..<size { (sequences + i).initialize(to: Atomic(i)) }
        values = .allocate(capacity: size)
        values.initialize(repeating: placeholder, count: size)
        positions = .allocate(byteCount: 128, alignment: 64)
        positions.assumingMemoryBound(to: Atomic<Int>.self).initialize(to: Atomic(0))
        (positions + 64).assumingMemoryBound(to: Atomic<Int>.self).initialize(to: Atomic(0))
    }

    deinit {
        sequences.deinitialize(count: mask + 1)
        sequences.deallocate()
        values.deallocate()
        enqueuePosition.deinitialize(count: 1)
        dequeuePosition.deinitialize(count: 1)
        positions.deallocate()
    }

    public var capacity: Int { mask + 1 }

    /// Appends `value`; false if the ring is full (holds `capacity` values no consumer has claimed).
    public func push(_ value: Element) -> Bool {
        var position = enqueuePosition.pointee.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequences[cell].load(ordering: .acquiring)
            let difference = sequence &- position
            if difference == 0 {
                let (claimed, current) = enqueuePosition.pointee.compareExchange(
                    expected: position, desired: position &+ 1, ordering: .relaxed)
                if claimed {
                    values[cell] = value
                    sequences[cell].store(position &+ 1, ordering: .releasing)
                    return true
                }
                position = current
            } else if difference < 0 {
                // The cell still holds the value from one lap ago. Full, unless a consumer has claimed that value
                // and not yet freed the cell (it was preempted in between): then wait for it, or a ring holding
                // fewer values than cells would refuse a push while other consumers run on past the claimed cell.
                let claimed = dequeuePosition.pointee.load(ordering: .relaxed)
                if position &- claimed >= mask &+ 1 { return false }
                sched_yield()
                position = enqueuePosition.pointee.load(ordering: .relaxed)
            } else {
                position = enqueuePosition.pointee.load(ordering: .relaxed)
            }
        }
    }

    /// Removes the oldest value; nil if the ring is empty.
    public func pop() -> Element? {
        var position = dequeuePosition.pointee.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequences[cell].load(ordering: .acquiring)
            let difference = sequence &- (position &+ 1)
            if difference == 0 {
                let (claimed, current) = dequeuePosition.pointee.compareExchange(
                    expected: position, desired: position &+ 1, ordering: .relaxed)
                if claimed {
                    let value = values[cell]
                    sequences[cell].store(position &+ mask &+ 1, ordering: .releasing)
                    return value
                }
                position = current
            } else if difference < 0 {
                return nil  // not filled yet: empty
            } else {
                position = dequeuePosition.pointee.load(ordering: .relaxed)
            }
        }
    }

    /// Values in the ring, counting pushes and pops in progress as done (a hint while others push or pop).
    public var count: Int {
        let popped = dequeuePosition.pointee.load(ordering: .acquiring)
        let pushed = enqueuePosition.pointee.load(ordering: .acquiring)
        return min(max(pushed &- popped, 0), mask + 1)
    }

    /// Whether the ring looked empty at some instant during the call (a hint; it may change at once).
    public var isEmpty: Bool {
        let position = dequeuePosition.pointee.load(ordering: .sequentiallyConsistent)
        return sequences[position & mask].load(ordering: .sequentiallyConsistent) &- (position &+ 1) < 0
    }
}
