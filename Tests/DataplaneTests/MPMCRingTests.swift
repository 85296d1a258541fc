@testable import Dataplane
import Synchronization
import XCTest

final class MPMCRingTests: XCTestCase {
    /// Single-threaded behaviour, step by step: (operation, expected result).
    func testTable() {
        enum Step { case push(Int, Bool), pop(Int?) }
        let ring = MPMCRing<Int>(capacity: 3, placeholder: -1)  // rounds up to 4
        XCTAssertEqual(ring.capacity, 4)
        let steps: [Step] = [
            .pop(nil),
            .push(1, true), .push(2, true), .push(3, true), .push(4, true), .push(5, false),  // full at 4
            .pop(1), .push(5, true), .push(6, false),
            .pop(2), .pop(3), .pop(4), .pop(5), .pop(nil),
            // Wrap around many times.
            .push(7, true), .pop(7), .push(8, true), .push(9, true), .pop(8), .pop(9), .pop(nil),
        ]
        for (i, step) in steps.enumerated() {
            switch step {
            case .push(let v, let ok): XCTAssertEqual(ring.push(v), ok, "step \(i): push \(v)")
            case .pop(let v): XCTAssertEqual(ring.pop(), v, "step \(i): pop")
            }
        }
        XCTAssertTrue(ring.isEmpty)
        for lap in 0..<1000 {
            XCTAssertTrue(ring.push(lap))
            XCTAssertEqual(ring.pop(), lap)
        }
    }

    /// Two producers and three consumers: every value arrives exactly once, and each consumer sees each
    /// producer's values in the order they were pushed.
    func testConcurrentProducersAndConsumers() {
        let perProducer = 100_000
        let ring = MPMCRing<Int>(capacity: 64, placeholder: -1)
        let done = Atomic<Int>(0)
        final class Seen: @unchecked Sendable {  // each consumer writes only its own slot; read after join
            var values: [[Int]] = Array(repeating: [], count: 3)
        }
        let seen = Seen()
        var threads: [PipelineThread] = []
        for c in 0..<3 {
            threads.append(PipelineThread(name: "ring-consumer-\(c)") {
                var mine: [Int] = []
                while true {
                    if let v = ring.pop() { mine.append(v); continue }
                    if done.load(ordering: .acquiring) == 2 && ring.isEmpty { break }
                }
                seen.values[c] = mine
            })
        }
        for p in 0..<2 {
            threads.append(PipelineThread(name: "ring-producer-\(p)") {
                for i in 0..<perProducer {
                    while !ring.push(p * perProducer + i) {}
                }
                done.add(1, ordering: .releasing)
            })
        }
        for t in threads { t.join() }
        var all = seen.values.flatMap { $0 }
        XCTAssertEqual(all.count, 2 * perProducer)
        all.sort()
        XCTAssertEqual(all, Array(0..<(2 * perProducer)))
        for (c, values) in seen.values.enumerated() {
            for p in 0..<2 {
                let mine = values.filter { $0 / perProducer == p }
                XCTAssertEqual(mine, mine.sorted(), "consumer \(c) saw producer \(p) out of order")
            }
        }
    }
}

final class CryptoQueueTests: XCTestCase {
    /// Eight workers, at most two at work at any moment; every job is done once and `close` ends every worker.
    func testActiveLimitAndCompletion() {
        let pool = BatchPool(batches: 64, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 128)
        let queue = CryptoQueue(capacity: 64 * 4, workers: 8, maxActive: 2)
        XCTAssertEqual(queue.maxActive, 2)
        let working = Atomic<Int>(0)
        let mostWorking = Atomic<Int>(0)
        let packetsDone = Atomic<Int>(0)
        let batchesDone = Atomic<Int>(0)
        let workers = startCryptoWorkers(8, queue: queue, pool: pool, name: "cq-worker", work: { _, job in
            let now = working.add(1, ordering: .sequentiallyConsistent).newValue
            var seen = mostWorking.load(ordering: .relaxed)
            while now > seen {
                let (ok, current) = mostWorking.compareExchange(expected: seen, desired: now, ordering: .relaxed)
                if ok { break }
                seen = current
            }
            var spin = 0
            for i in 0..<2000 { spin &+= i }  // a little work
            _ = spin
            packetsDone.add(job.count, ordering: .relaxed)
            working.subtract(1, ordering: .sequentiallyConsistent)
        }, batchDone: { batchesDone.add(1, ordering: .relaxed) })
        let rounds = 2000
        var packets = 0
        for r in 0..<rounds {
            let batch = pool.take()!
            batch.count = 1 + (r * 37) % 128
            packets += batch.count
            queue.push(batch, chunk: 32)
            if r % 100 == 0 { usleep(200) }  // let workers park now and then, so wake-ups are exercised
        }
        var waited = 0
        while batchesDone.load(ordering: .relaxed) < rounds && waited < 10_000 { usleep(1000); waited += 1 }
        queue.close()
        for t in workers { t.join() }
        XCTAssertEqual(batchesDone.load(ordering: .relaxed), rounds)
        XCTAssertEqual(packetsDone.load(ordering: .relaxed), packets)
        XCTAssertLessThanOrEqual(mostWorking.load(ordering: .relaxed), 2)
        XCTAssertGreaterThanOrEqual(mostWorking.load(ordering: .relaxed), 1)
    }

    /// With more workers than active slots, bursts of pushes keep waking the same few workers: a worker told to
    /// wake counts against the limit until it runs, so a burst does not reach ever older parked workers.
    func testSameFewWorkersStayWarm() {
        let pool = BatchPool(batches: 16, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 128)
        let queue = CryptoQueue(capacity: 64, workers: 8, maxActive: 2)
        final class PerWorker: @unchecked Sendable {  // slot w is written only by worker w, read after join
            var jobs = [Int](repeating: 0, count: 8)
        }
        let jobsBy = PerWorker()
        let batchesDone = Atomic<Int>(0)
        let workers = startCryptoWorkers(8, queue: queue, pool: pool, name: "cq-warm", work: { w, _ in
            jobsBy.jobs[w] += 1
        }, batchDone: { batchesDone.add(1, ordering: .relaxed) })
        usleep(50_000)  // all eight park
        let rounds = 300
        for r in 0..<rounds {
            for _ in 0..<4 {  // a burst: four one-job batches back to back
                let batch = pool.take()!
                batch.count = 8
                queue.push(batch, chunk: 32)
            }
            var waited = 0
            while batchesDone.load(ordering: .relaxed) < (r + 1) * 4 && waited < 5_000 { usleep(100); waited += 1 }
            usleep(300)  // the workers park again
        }
        queue.close()
        for t in workers { t.join() }
        XCTAssertEqual(batchesDone.load(ordering: .relaxed), rounds * 4)
        let counts = jobsBy.jobs.sorted(by: >)
        // Without the count of woken workers, each burst woke four distinct workers (the top two near 50 %). With
        // it the top two take about 95 %; now and then a worker is still on its way to park when the next burst
        // comes and a third one shares the work (72-81 % for the top two in 5 of 71 runs on a 2-vCPU machine), so
        // the bar sits between the two rules.
        XCTAssertGreaterThanOrEqual(counts[0] + counts[1], rounds * 4 * 2 / 3, "jobs per worker: \(counts)")
    }

    /// Urgent jobs are popped before bulk jobs already queued; each ring stays first in, first out.
    func testUrgentJobsGoFirst() {
        let pool = BatchPool(batches: 8, buffersPerBatch: 1, bufferSize: 64, packetsPerBatch: 128)
        let queue = CryptoQueue(capacity: 32, workers: 1, maxActive: 1)
        // (batch, packets, urgent), pushed in this order; with a 32-packet chunk, 70 packets make 3 jobs.
        let pushes: [(Int, Int, Bool)] = [(0, 70, false), (1, 8, true), (2, 32, false), (3, 1, true), (4, 33, true)]
        var batches: [PacketBatch] = []
        for (tag, count, urgent) in pushes {
            let b = pool.take()!
            b.count = count
            b.timestamps[0] = UInt64(tag)
            batches.append(b)
            queue.push(b, chunk: 32, urgent: urgent)
        }
        var order: [String] = []
        var finished = false
        for _ in 0..<8 {
            guard let job = queue.pop(worker: 0, finished: finished) else { break }
            finished = true
            order.append("\(job.batch.timestamps[0]):\(job.start)+\(job.count)")
        }
        XCTAssertEqual(order, ["1:0+8", "3:0+1", "4:0+32", "4:32+1", "0:0+32", "0:32+32", "0:64+6", "2:0+32"])
        queue.close()
        XCTAssertNil(queue.pop(worker: 0, finished: true), "closed and drained")
        _ = batches
    }

    func testMaxActiveNeverExceedsWorkers() {
        XCTAssertEqual(CryptoQueue(capacity: 8, workers: 3, maxActive: 16).maxActive, 3)
        XCTAssertEqual(CryptoQueue(capacity: 8, workers: 3, maxActive: 0).maxActive, 1)
    }
}

final class ReceiveBudgetTests: XCTestCase {
    /// The reader gets room at once while under the limit, waits while over it, and is woken by a release.
    func testWaitsForRoomAndWakesOnRelease() {
        let budget = ReceiveBudget(limit: 512)
        XCTAssertEqual(budget.wait(atLeast: 64, nanoseconds: 1_000_000), 512)
        budget.took(500)
        XCTAssertEqual(budget.available, 12)
        // Not enough room and nobody releases: the wait times out with the room unchanged.
        XCTAssertEqual(budget.wait(atLeast: 64, nanoseconds: 2_000_000), 12)
        let releaser = PipelineThread(name: "budget-release") {
            usleep(20_000)
            budget.release(100)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let room = budget.wait(atLeast: 64, nanoseconds: 5_000_000_000)
        let waited = DispatchTime.now().uptimeNanoseconds - start
        releaser.join()
        XCTAssertEqual(room, 112)
        XCTAssertLessThan(waited, 2_000_000_000, "the release should wake the reader long before the timeout")
        budget.release(400)
        XCTAssertEqual(budget.available, 512)
    }
}

/// Starts `count` crypto workers on `queue`. Each runs `work(worker, job)` on every job it pops; the one that
/// finishes a batch's last chunk calls `batchDone()` and gives the batch back to `pool`.
private func startCryptoWorkers(_ count: Int, queue: CryptoQueue, pool: BatchPool, name: String,
                                work: @escaping @Sendable (Int, CryptoJob) -> Void,
                                batchDone: @escaping @Sendable () -> Void) -> [PipelineThread] {
    (0..<count).map { w in
        PipelineThread(name: "\(name)-\(w)") {
            var finished = false
            while let job = queue.pop(worker: w, finished: finished) {
                finished = true
                work(w, job)
                if job.batch.pendingChunks.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    batchDone()
                    pool.give(job.batch)
                }
            }
        }
    }
}
