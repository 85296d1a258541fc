// Events for the control thread: handshake messages from the wire and requests from the data path.

public enum ControlEvent: Sendable {
    case message([UInt8], Endpoint)
    case wantHandshake(Int32)
    case flushStaged(Int32)
    /// Nothing to do but wake up: the control thread then runs the timers against the clock as it is now.
    case runTimers
}

public final class ControlQueue: @unchecked Sendable {  // `events` is only touched under `lock`
    private var events: [ControlEvent] = []
    private var messageCount = 0
    public let capacity: Int
    private let lock = ConditionLock()
    private var closed = false

    public init(capacity: Int) {
        self.capacity = capacity
        events.reserveCapacity(capacity)
    }

    /// Queues an event. Handshake messages beyond `capacity` are refused (returns false).
    @discardableResult
    public func post(_ e: ControlEvent) -> Bool {
        lock.withLock {
            if case .message = e {
                if messageCount >= capacity { return false }
                messageCount += 1
            }
            events.append(e)
            lock.signal()
            return true
        }
    }

    /// Moves every queued event into `out` (whose old contents are dropped), waiting up to `nanoseconds` for the
    /// first. Returns how many handshake messages were queued (the load signal for cookies); nil once closed.
    /// The two arrays trade storage, so a caller that keeps passing the same one allocates nothing.
    public func drain(into out: inout [ControlEvent], waitNanoseconds: UInt64) -> Int? {
        out.removeAll(keepingCapacity: true)
        return lock.withLock {
            if events.isEmpty && !closed && waitNanoseconds > 0 { lock.wait(nanoseconds: waitNanoseconds) }
            if closed { return nil }
            swap(&out, &events)
            let n = messageCount
            messageCount = 0
            return n
        }
    }

    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
