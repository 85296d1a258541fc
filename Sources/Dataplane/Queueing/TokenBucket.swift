// A token bucket on a nanosecond clock, for `--rate`: over any interval of T ns, what it lets through is at most
// rate · T + depth bytes (plus any debt a caller chose to run up with `consume` beyond `wait`'s answer).
//
// Kept as one number rather than a token count: `full` is the time at which the bucket would be full again if
// nothing more were sent (the "theoretical arrival time" of GCRA). Tokens in the bucket = depth − (full − now)·rate
// when full > now, else depth. Sending b bytes moves `full` forward by b / rate seconds (exactly: the division's
// remainder is carried, so many small packets cost the same as one large one). Integer arithmetic only: no
// allocation, no floating point, safe on the hot path.

public struct TokenBucket: Sendable {
    public let bytesPerSecond: UInt64
    public let depthBytes: UInt64
    /// How long the link takes to send `depthBytes` (ns).
    public let depthNanoseconds: UInt64
    /// When the bucket is full again (ns on the caller's clock).
    private var full: UInt64
    /// Remainder of bytes·10^9 / rate not yet charged, in units of 1/rate ns.
    private var remainder: UInt64 = 0

    /// A full bucket at `now`. `bytesPerSecond` and `depthBytes` must be positive.
    public init(bytesPerSecond: UInt64, depthBytes: UInt64, now: UInt64) {
        precondition(bytesPerSecond > 0 && depthBytes > 0)
        self.bytesPerSecond = bytesPerSecond
        self.depthBytes = depthBytes
        self.depthNanoseconds = TokenBucket.nanoseconds(forBytes: depthBytes, bytesPerSecond: bytesPerSecond)
        full = now
    }

    /// Nanoseconds the link takes to send `bytes` (rounded up).
    @inline(__always)
    public static func nanoseconds(forBytes bytes: UInt64, bytesPerSecond: UInt64) -> UInt64 {
        let (q, r) = (bytes &* 1_000_000_000).quotientAndRemainder(dividingBy: bytesPerSecond)
        return r == 0 ? q : q + 1
    }

    /// 0 if `bytes` can be sent at `now` without exceeding the bucket, else how many ns until they can.
    @inline(__always)
    public func wait(forBytes bytes: UInt64, now: UInt64) -> UInt64 {
        let end = max(full, now) &+ TokenBucket.nanoseconds(forBytes: bytes, bytesPerSecond: bytesPerSecond)
        let limit = now &+ depthNanoseconds
        return end <= limit ? 0 : end - limit
    }

    /// Bytes available at `now` (0 while in debt).
    public func available(now: UInt64) -> UInt64 {
        if full <= now { return depthBytes }
        let used = full - now
        if used >= depthNanoseconds { return 0 }
        return (depthNanoseconds - used) &* bytesPerSecond / 1_000_000_000
    }

    /// Takes `bytes` out of the bucket at `now`. May leave it in debt (then `wait` says how long it lasts).
    @inline(__always)
    public mutating func consume(bytes: UInt64, now: UInt64) {
        let total = bytes &* 1_000_000_000 &+ remainder
        let (ns, r) = total.quotientAndRemainder(dividingBy: bytesPerSecond)
        remainder = r
        full = max(full, now) &+ ns
    }
}
