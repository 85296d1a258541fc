// The device-wide queue of crypto jobs: a lock-free ring the readers push chunks of batches into and any worker
// pops from. Locks are taken only to park an idle worker and to wake one, never to move a job.
//
// At most `maxActive` workers hold jobs at once (the number of CPUs the workers may run on). With more workers
// than CPUs, a worker sealing part of the oldest batch could otherwise be preempted by another worker sealing a
// later one, and the ordered stage behind it would stall for a scheduler time slice. Parked workers are woken
// last-in first-out, so the same few threads stay warm and the extra ones cost nothing.
//
// Two rings: urgent jobs (a batch of sparse-flow packets, a small received batch: little work, and someone waits
// for each packet) are popped before the bulk ring's, so they wait for at most the chunks workers already hold,
// not for every batch in flight.
import Glibc
import Synchronization

/// A slice of a batch for one crypto worker: packets [start, start + count).
public struct CryptoJob: Sendable {
    public let batch: PacketBatch
    public let start: Int
    public let count: Int
}

public final class CryptoQueue: @unchecked Sendable {  // the ring is lock-free; parking state is only touched under `parkLock`
    /// A job as the ring stores it: each job holds one reference to its batch (taken at push, given to the popper).
    private struct Slot: BitwiseCopyable {
        var batch: Unmanaged<PacketBatch>?
        var start: Int32
        var count: Int32
    }

    private let ring: MPMCRing<Slot>
    private let urgentRing: MPMCRing<Slot>
    public let maxActive: Int
    /// Workers holding the right to pop (at most maxActive).
    private let active = Atomic<Int>(0)
    /// Workers parked or about to park.
    private let parkedCount = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    private let parkLock = ConditionLock()
    private let workers: Int
    /// Per worker: its condition variable and whether it was told to wake (both under parkLock).
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private var woken: [Bool]
    /// Parked workers, most recently parked last.
    private var idle: [Int]
    /// Workers told to wake that have not run yet (under parkLock). They count against `maxActive` when waking
    /// more: otherwise pushes in quick succession, each seeing a free slot, would wake ever older parked
    /// workers and the whole pool would take turns instead of the same few staying warm.
    private var waking = 0

    public init(capacity: Int, workers: Int, maxActive: Int = Int.max) {
        ring = MPMCRing(capacity: capacity, placeholder: Slot(batch: nil, start: 0, count: 0))
        urgentRing = MPMCRing(capacity: capacity, placeholder: Slot(batch: nil, start: 0, count: 0))
        self.workers = max(1, workers)
        self.maxActive = max(1, min(maxActive, self.workers))
        conditions = .allocate(capacity: self.workers)
        for i in 0..<self.workers { pthread_cond_init(conditions + i, nil) }
        woken = Array(repeating: false, count: self.workers)
        idle = []
        idle.reserveCapacity(self.workers)
    }

    deinit {
        for i in 0..<workers { pthread_cond_destroy(conditions + i) }
        conditions.deallocate()
    }

    /// Queues a batch as jobs of at most `chunk` packets and wakes parked workers for them if needed. Urgent jobs
    /// are taken before every job already in the bulk ring.
    public func push(_ batch: PacketBatch, chunk: Int, urgent: Bool = false) {
        let jobs = max(1, (batch.count + chunk - 1) / chunk)
        batch.pendingChunks.store(jobs, ordering: .relaxed)
        let target = urgent ? urgentRing : ring
        for j in 0..<jobs {
            let start = j * chunk
            let pushed = target.push(Slot(batch: Unmanaged.passRetained(batch), start: Int32(start), count: Int32(min(chunk, batch.count - start))))
            precondition(pushed, "crypto queue sized below the batches in flight")
        }
        // Pairs with the worker's announce-then-recheck in park(): either it sees these jobs or we see it.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        // With every active slot taken there is no one to wake: a worker about to leave its slot re-checks the
        // ring after giving the slot back (pop/park), and the fence above orders that against this load.
        // (With more workers than CPUs, most are always parked: this keeps the lock out of every push.)
        if parkedCount.load(ordering: .sequentiallyConsistent) > 0
            && active.load(ordering: .sequentiallyConsistent) < maxActive {
            wake(upTo: jobs)
        }
    }

    /// The next job for `worker`, parking while there is none (or `maxActive` others are working); nil once closed.
    /// `finished`: the caller is done with the job it took last.
    public func pop(worker: Int, finished: Bool) -> CryptoJob? {
        var holding = finished
        while true {
            if !holding {
                holding = tryAcquire()
            }
            if holding, let slot = urgentRing.pop() ?? ring.pop() {
                return CryptoJob(batch: slot.batch!.takeRetainedValue(), start: Int(slot.start), count: Int(slot.count))
            }
            if closed.load(ordering: .acquiring) { return nil }
            if holding {
                active.subtract(1, ordering: .sequentiallyConsistent)
                holding = false
            }
            park(worker)
        }
    }

    private func tryAcquire() -> Bool {
        var current = active.load(ordering: .relaxed)
        while current < maxActive {
            let (done, now) = active.compareExchange(expected: current, desired: current + 1,
                                                     ordering: .sequentiallyConsistent)
            if done { return true }
            current = now
        }
        return false
    }

    private func park(_ worker: Int) {
        parkLock.lock()
        defer { parkLock.unlock() }
        parkedCount.add(1, ordering: .sequentiallyConsistent)
        defer { parkedCount.subtract(1, ordering: .relaxed) }
        // Announced; now look again, so a job pushed just before the announcement is not slept through.
        if ((!urgentRing.isEmpty || !ring.isEmpty) && active.load(ordering: .sequentiallyConsistent) < maxActive)
            || closed.load(ordering: .acquiring) {
            return
        }
        woken[worker] = false
        idle.append(worker)
        while !woken[worker] { pthread_cond_wait(conditions + worker, parkLock.mutexPointer) }
        if waking > 0 { waking -= 1 }
    }

    private func wake(upTo jobs: Int) {
        parkLock.withLock {
            let busy = active.load(ordering: .relaxed)
            var n = min(jobs, maxActive - busy - waking, idle.count)
            // Even at the active limit, make sure someone is awake to look (a worker may be leaving).
            if n <= 0 && !idle.isEmpty && busy == 0 && waking == 0 { n = 1 }
            while n > 0, let w = idle.popLast() {
                woken[w] = true
                waking += 1
                pthread_cond_signal(conditions + w)
                n -= 1
            }
        }
    }

    public func close() {
        closed.store(true, ordering: .releasing)
        parkLock.withLock {
            while let w = idle.popLast() {
                woken[w] = true
                pthread_cond_signal(conditions + w)
            }
        }
    }
}
