// Sleeping beside a lock-free structure: a thread that found nothing to take parks here, and a thread that made
// something available wakes it. The lock is taken only while someone sleeps, never to move an item.
//
// The protocol (the store-buffering pattern, as in Dekker's algorithm):
//   sleeper: lock → sleepers += 1 (seq_cst) → look at the structure again (seq_cst loads) → wait only if still
//            nothing (the wait releases the lock atomically) → sleepers -= 1 → unlock.
//   waker:   publish (release store) → seq_cst fence → load sleepers (seq_cst) → if > 0: lock, broadcast, unlock.
// Sequential consistency forbids both the sleeper missing the item and the waker missing the sleeper. If the waker
// sees the sleeper, the sleeper is either still looking (holding the lock, so the broadcast comes after its wait
// has begun) or already waiting: the broadcast reaches it. Closing stores its flag, then always broadcasts under
// the lock, so a sleeper either sees the flag or is waiting when the broadcast comes.
import Synchronization

final class Parking: @unchecked Sendable {  // the count is atomic and the condition is a pthread one
    private let lock = ConditionLock()
    private let sleepers = Atomic<Int>(0)

    /// Sleeps until woken, unless `ready()` holds once this thread is counted as a sleeper. `ready` must read the
    /// structure with seq_cst loads. Returns after one wake-up, which may be spurious: callers look again and loop.
    func park(unless ready: () -> Bool) {
        lock.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        if !ready() { lock.wait() }
        sleepers.subtract(1, ordering: .relaxed)
        lock.unlock()
    }

    /// After publishing an item or a state change with a release store: wakes every sleeper, if there is one.
    /// Costs a fence and a load when nobody sleeps.
    @inline(__always) func wake() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { wakeAll() }
    }

    /// Wakes every sleeper unconditionally (after closing, which sleepers test in `ready`).
    func wakeAll() { lock.withLock { lock.broadcast() } }
}
