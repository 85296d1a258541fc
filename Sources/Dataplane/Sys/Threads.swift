// Plain pthreads for the pipeline stages (no async/await on the data path).
import Glibc
import CShims

/// A started pthread running a closure once. `join()` waits for it.
public final class PipelineThread: @unchecked Sendable {  // the handle is written once before start and read by join
    private var handle = pthread_t()
    private let box: Box

    private final class Box {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        box = Box(name: name, body: body)
        let arg = Unmanaged.passRetained(box).toOpaque()
        let rc = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.name.withCString { vf_thread_set_name($0) }
            box.body()
            return nil
        }, arg)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    public func join() { pthread_join(handle, nil) }
}

/// The clock the protocol runs on: monotonic nanoseconds. Tests inject a fake one.
public protocol MonotonicClock: Sendable {
    func now() -> UInt64
}

public struct SystemClock: MonotonicClock {
    public init() {}
    @inline(__always) public func now() -> UInt64 { vf_monotonic_ns() }
}

/// Wall-clock time in nanoseconds since the Unix epoch (for TAI64N and "last handshake" reports).
@inline(__always) public func realtimeNanoseconds() -> UInt64 { vf_realtime_ns() }
