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
    private let capacity: Int
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

    /// Takes every queued event, waiting up to `nanoseconds` for the first. Also returns how many handshake
    /// messages were queued (the load signal for cookies).
    public func drain(waitNanoseconds: UInt64) -> (events: [ControlEvent], queuedMessages: Int)? {
        lock.withLock {
            if events.isEmpty && !closed && waitNanoseconds > 0 { lock.wait(nanoseconds: waitNanoseconds) }
            if closed { return nil }
            let out = events
            let n = messageCount
            events.removeAll(keepingCapacity: true)
            messageCount = 0
            return (out, n)
        }
    }

    public func close() { lock.withLock { closed = true; lock.broadcast() } }
}
