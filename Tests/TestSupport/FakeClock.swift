// A monotonic clock that moves only when the test says so.
import Dataplane
import Synchronization

public final class FakeClock: MonotonicClock, @unchecked Sendable {  // the time is an atomic
    private let time: Atomic<UInt64>
    public init(start: UInt64 = 1_000_000_000_000) { time = Atomic(start) }
    public func now() -> UInt64 { time.load(ordering: .relaxed) }
    public func advance(nanoseconds: UInt64) { time.add(nanoseconds, ordering: .relaxed) }
    public func advance(seconds: Double) { advance(nanoseconds: UInt64(seconds * 1e9)) }
}
