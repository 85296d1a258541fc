@testable import Dataplane
import Dispatch
import Glibc
import Synchronization
import XCTest

final class BatchPoolTests: XCTestCase {
    /// Single-threaded behaviour, step by step, on a pool of 3: (operation, expected result). `held` are the
    /// batches taken so far, most recent last.
    func testTable() {
        enum Step { case take, tryTake(Bool), giveLast, available(Int), close, takeNil }
        let pool = BatchPool(batches: 3, buffersPerBatch: 2, bufferSize: 100, packetsPerBatch: 5)
        XCTAssertEqual(pool.slab.slotSize, 128)
        XCTAssertEqual(pool.slab.slotCount, 6)
        XCTAssertEqual(pool.maxPacketsPerBatch, 5)
        var held: [PacketBatch] = []
        let steps: [Step] = [
            .available(3), .take, .tryTake(true), .available(1), .tryTake(true), .tryTake(false), .available(0),
            .giveLast, .available(1), .take, .tryTake(false),
            .giveLast, .giveLast, .giveLast, .available(3),
            .close, .tryTake(false), .takeNil,
        ]
        for (i, step) in steps.enumerated() {
            switch step {
            case .take:
                let b = pool.take()
                XCTAssertNotNil(b, "step \(i): take")
                if let b { held.append(b) }
            case .tryTake(let expected):
                let b = pool.tryTake()
                XCTAssertEqual(b != nil, expected, "step \(i): tryTake")
                if let b { held.append(b) }
            case .giveLast:
                let b = held.removeLast()
                b.count = 4
                b.crypted.store(true, ordering: .relaxed)
                pool.give(b)
            case .available(let n): XCTAssertEqual(pool.available, n, "step \(i): available")
            case .close: pool.close()
            case .takeNil: XCTAssertNil(pool.take(), "step \(i): take after close")
            }
            // Every batch handed out is distinct and reset.
            XCTAssertEqual(Set(held.map(ObjectIdentifier.init)).count, held.count, "step \(i): a batch twice")
            if case .take = step { XCTAssertEqual(held.last?.count, 0); XCTAssertEqual(held.last?.crypted.load(ordering: .relaxed), false) }
        }
    }

    /// The batches own disjoint buffers of the slab.
    func testBatchesOwnDistinctBuffers() {
        let pool = BatchPool(batches: 4, buffersPerBatch: 2, bufferSize: 64, packetsPerBatch: 2)
        var buffers: Set<Int> = []
        for _ in 0..<4 {
            let b = pool.tryTake()!
            for i in 0..<b.bufferCount { buffers.insert(Int(bitPattern: b.buffers[i])) }
        }
        XCTAssertEqual(buffers.count, 8)
    }

    /// take() on an empty pool sleeps until a batch is given back, and returns that batch.
    func testTakeWaitsForGive() {
        let pool = BatchPool(batches: 2, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 1)
        let a = pool.take()!, b = pool.take()!
        let results = ThreadResults(1)
        let threads = DeadlineThreads()
        threads.start("bp-taker") {
            guard let got = pool.take() else { return }
            results.values[0].append(got === b ? 1 : 2)
        }
        usleep(30_000)  // room for a wrong early return
        XCTAssertTrue(results.values[0].isEmpty, "take returned from an empty pool")
        pool.give(b)
        threads.join(within: 10, "take after give", rescue: { pool.close() })
        XCTAssertEqual(results.values[0], [1])
        _ = a
    }

    /// close() wakes a parked take(), which returns nil.
    func testCloseWakesParkedTake() {
        let pool = BatchPool(batches: 1, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 1)
        let held = pool.take()!
        let results = ThreadResults(1)
        let threads = DeadlineThreads()
        threads.start("bp-taker") { results.values[0].append(pool.take() == nil ? 0 : 1) }
        usleep(20_000)
        pool.close()
        threads.join(within: 10, "close", rescue: {})
        XCTAssertEqual(results.values[0], [0])
        _ = held
    }

    /// Four threads take (blocking or not) and give back a pool of 3 batches, 100 000 times each: no batch is ever
    /// held by two threads at once, none is lost, and parked takers are always woken.
    func testStressManyTakersAndGivers() {
        let threadsCount = 4, rounds = 100_000, batches = 3
        let pool = BatchPool(batches: batches, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 1)
        let doubleOwners = Atomic<Int>(0)
        let completed = Atomic<Int>(0)
        let threads = DeadlineThreads()
        for t in 0..<threadsCount {
            threads.start("bp-stress-\(t)") {
                var rng = SeededRandom(seed: UInt64(t) + 100)
                var done = 0
                while done < rounds {
                    let blocking = t % 2 == 0 || rng.next() % 4 != 0
                    guard let b = blocking ? pool.take() : pool.tryTake() else {
                        if blocking { return }  // closed by the rescue
                        sched_yield()
                        continue
                    }
                    // pendingChunks doubles as "held": 0 free, 1 held.
                    if b.pendingChunks.exchange(1, ordering: .acquiringAndReleasing) != 0 { doubleOwners.add(1, ordering: .relaxed) }
                    if rng.next() % 16 == 0 { sched_yield() }
                    b.pendingChunks.store(0, ordering: .releasing)
                    pool.give(b)
                    done += 1
                }
                completed.add(done, ordering: .relaxed)
            }
        }
        threads.join(within: 120, "take/give stress", rescue: { pool.close() })
        XCTAssertEqual(doubleOwners.load(ordering: .relaxed), 0)
        XCTAssertEqual(completed.load(ordering: .relaxed), threadsCount * rounds)
        XCTAssertEqual(pool.available, batches)
    }

    /// One taker and three givers: the taker blocks in take() while the givers hold every batch; 60 000 batches
    /// pass, each given back once.
    func testStressOneTakerManyGivers() {
        let items = 60_000, givers = 3, batches = 4
        let pool = BatchPool(batches: batches, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 1)
        let handOff = MPMCRing<Unmanaged<PacketBatch>?>(capacity: 8, placeholder: nil)
        let given = Atomic<Int>(0)
        let doubleGives = Atomic<Int>(0)
        let threads = DeadlineThreads()
        threads.start("bp-taker") {
            for _ in 0..<items {
                guard let b = pool.take() else { return }
                if b.pendingChunks.exchange(1, ordering: .acquiringAndReleasing) != 0 { doubleGives.add(1, ordering: .relaxed) }
                while !handOff.push(Unmanaged.passRetained(b)) {
                    if given.load(ordering: .relaxed) >= items { return }  // rescued
                    sched_yield()
                }
            }
        }
        for g in 0..<givers {
            threads.start("bp-giver-\(g)") {
                var rng = SeededRandom(seed: UInt64(g) + 200)
                while given.load(ordering: .relaxed) < items {
                    guard let cell = handOff.pop() else { sched_yield(); continue }
                    let b = cell!.takeRetainedValue()
                    if rng.next() % 8 == 0 { usleep(UInt32(rng.next() % 20)) }
                    b.pendingChunks.store(0, ordering: .releasing)
                    pool.give(b)
                    given.add(1, ordering: .relaxed)
                }
            }
        }
        threads.join(within: 120, "one taker, many givers", rescue: { pool.close(); given.store(items, ordering: .relaxed) })
        XCTAssertEqual(given.load(ordering: .relaxed), items)
        XCTAssertEqual(doubleGives.load(ordering: .relaxed), 0)
        XCTAssertEqual(pool.available, batches)
    }

    /// The tightest race between parking and waking (as BatchQueueTests.testPingPongWakeRace): one batch bounces
    /// between a thread that takes it (parking at once when the pool is empty) and hands it back through a polled
    /// ring, and a thread that gives it back to the pool after a random few hundred nanoseconds.
    func testPingPongWakeRace() {
        let rounds = 100_000
        let pool = BatchPool(batches: 1, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 1)
        let back = MPMCRing<Unmanaged<PacketBatch>?>(capacity: 2, placeholder: nil)
        let stop = Atomic<Bool>(false)
        let taken = Atomic<Int>(0)
        let threads = DeadlineThreads()
        threads.start("bp-taker") {
            for _ in 0..<rounds {
                guard let b = pool.take() else { return }
                taken.add(1, ordering: .relaxed)
                _ = back.push(Unmanaged.passRetained(b))
            }
        }
        threads.start("bp-giver") {
            var rng = SeededRandom(seed: 5)
            for _ in 0..<rounds {
                var polls = 0
                var cell = back.pop()
                while cell == nil {
                    if stop.load(ordering: .relaxed) { return }
                    polls += 1
                    if polls % 4096 == 0 { sched_yield() }
                    cell = back.pop()
                }
                let b = cell!!.takeRetainedValue()
                var spin = rng.next() % 1024
                while spin > 0 { spin &-= 1; atomicMemoryFence(ordering: .relaxed) }
                pool.give(b)
            }
        }
        threads.join(within: 90, "pool ping-pong", rescue: { stop.store(true, ordering: .relaxed); pool.close() })
        XCTAssertEqual(taken.load(ordering: .relaxed), rounds)
        XCTAssertEqual(pool.available, 1)
    }
}
