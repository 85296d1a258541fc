// Helpers for tests that run threads against each other: a deadline that turns a hang into a failure, per-thread
// result slots, random pauses.
import Dataplane
import Dispatch
import Glibc
import XCTest

/// Threads that must end within a deadline. On a miss the test fails and `rescue` (which closes the queue or
/// pool they block on) lets them end, so a lost wake-up shows as a failure, not a hung suite.
final class DeadlineThreads: @unchecked Sendable {  // the semaphore is thread-safe; `threads` is only used by the test thread
    private let ended = DispatchSemaphore(value: 0)
    private var threads: [PipelineThread] = []

    func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        threads.append(PipelineThread(name: name) { [ended] in
            body()
            ended.signal()
        })
    }

    /// Waits for every thread; returns false (after failing the test and calling `rescue`) if one overran.
    @discardableResult
    func join(within seconds: Double, _ what: String, rescue: () -> Void,
              file: StaticString = #filePath, line: UInt = #line) -> Bool {
        let deadline = DispatchTime.now() + seconds
        var ok = true
        for _ in threads where ended.wait(timeout: deadline) == .timedOut {
            XCTFail("\(what): not done within \(seconds) s (a lost wake-up?)", file: file, line: line)
            ok = false
            break
        }
        if !ok { rescue() }
        for t in threads { t.join() }
        threads.removeAll()
        return ok
    }
}

/// Values written by the threads of a test, read after they are joined.
final class ThreadResults: @unchecked Sendable {  // each thread writes only its own index; read after join
    var values: [[UInt64]]
    init(_ n: Int) { values = Array(repeating: [], count: n) }
}

/// Sleeps 0 to `maxMicroseconds` µs, half the time not at all (so both the fast and the parking paths run).
func randomPause(_ rng: inout SeededRandom, _ maxMicroseconds: UInt32) {
    let r = UInt32(truncatingIfNeeded: rng.next())
    if r & 1 == 0 { return }
    if r & 2 == 0 { sched_yield(); return }
    usleep((r >> 2) % (maxMicroseconds + 1))
}
