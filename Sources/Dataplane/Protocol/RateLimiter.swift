// A token bucket per source address for handshake initiations under load.
//
// Tokens are counted in nanoseconds of credit: each packet costs 1 s / packetsPerSecond, and a bucket holds at
// most `burst` packets' worth. A source seen for the first time starts with a full bucket and pays for its first
// packet. IPv6 sources are grouped by their /64, since a host usually owns a whole /64 and could otherwise
// pick a fresh address for every packet.
//
// The table has a fixed ceiling: when it is full a new source is refused (after trying to drop idle entries),
// so a flood of spoofed sources costs a fixed amount of memory. An entry idle for more than a second has a full
// bucket again, so dropping it changes nothing; call gc(now:) about once a second to keep the table small.
//
// Time is injected (monotonic nanoseconds), so tests drive a fake clock.

import Synchronization

public final class RateLimiter: Sendable {
    /// The bucket of one source.
    struct Entry {
        var lastTime: UInt64
        var tokens: UInt64
    }

    /// A v4 address or the /64 of a v6 address.
    enum Source: Hashable {
        case v4(UInt32)
        case v6(UInt64)
    }

    struct State {
        var entries: [Source: Entry] = [:]
        var lastGC: UInt64 = 0
    }

    /// An entry idle this long (1 s) is dropped by gc.
    public static let idleTimeout: UInt64 = 1_000_000_000

    /// Nanoseconds of credit one packet costs.
    public let packetCost: UInt64
    /// The most credit a bucket holds.
    public let tokenMax: UInt64
    public let maxEntries: Int
    private let state: Mutex<State>

    public init(packetsPerSecond: Int = 20, burst: Int = 5, maxEntries: Int = 8192) {
        precondition(packetsPerSecond > 0 && packetsPerSecond <= 1_000_000_000, "packetsPerSecond out of range")
        precondition(burst > 0 && maxEntries > 0, "burst and maxEntries must be positive")
        packetCost = 1_000_000_000 / UInt64(packetsPerSecond)
        tokenMax = packetCost * UInt64(burst)
        self.maxEntries = maxEntries
        var initial = State()
        initial.entries.reserveCapacity(min(maxEntries, 1024))
        state = Mutex(initial)
    }

    /// Whether a packet from `source` may be handled now, charging its bucket if so.
    public func allow(_ source: IPAddress, now: UInt64) -> Bool {
        let key: Source
        switch source {
        case .v4(let a): key = .v4(a)
        case .v6(let hi, _): key = .v6(hi)
        }
        return state.withLock { s in
            if var entry = s.entries[key] {
                // A clock that went backwards earns nothing.
                let elapsed = now > entry.lastTime ? now - entry.lastTime : 0
                entry.lastTime = max(entry.lastTime, now)
                entry.tokens = min(tokenMax, entry.tokens + min(elapsed, tokenMax))
                let allowed = entry.tokens >= packetCost
                if allowed { entry.tokens -= packetCost }
                s.entries[key] = entry
                return allowed
            }
            if s.entries.count >= maxEntries {
                if now &- s.lastGC >= Self.idleTimeout { collect(&s, now: now) }
                if s.entries.count >= maxEntries { return false }
            }
            s.entries[key] = Entry(lastTime: now, tokens: tokenMax - packetCost)
            return true
        }
    }

    /// Drops the entries idle for more than a second.
    public func gc(now: UInt64) {
        state.withLock { collect(&$0, now: now) }
    }

    /// Number of sources tracked.
    public var entryCount: Int {
        state.withLock { $0.entries.count }
    }

    private func collect(_ s: inout State, now: UInt64) {
        s.lastGC = now
        var idle: [Source] = []
        for (key, entry) in s.entries where now > entry.lastTime && now - entry.lastTime > Self.idleTimeout {
            idle.append(key)
        }
        for key in idle { s.entries.removeValue(forKey: key) }
    }
}
