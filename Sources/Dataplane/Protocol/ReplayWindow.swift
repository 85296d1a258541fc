// The receive-side replay check for transport counters (RFC 6479 without bit shifting).
//
// The window is a ring of 128 blocks of 64 bits; bit (c mod 64) of block (c / 64 mod 128) says whether counter c
// has been seen. Moving the window forward clears only the blocks it enters, so no bits are ever shifted. One
// block is always partly ahead of the newest counter, which leaves 127 * 64 = 8128 counters of history behind it,
// the same window as wireguard-go and the kernel on 64-bit machines.
//
// Run it only after the packet has authenticated: an unauthenticated counter must not move the window.

public struct ReplayWindow: Sendable {
    static let blockBits: UInt64 = 64
    static let blockCount = 128

    /// How far behind the newest counter a counter may be and still be accepted.
    public static let windowSize: UInt64 = (UInt64(blockCount) - 1) * blockBits

    /// REJECT_AFTER_MESSAGES, 2^64 - 2^13 - 1: counters at or past this are never accepted.
    public static let rejectAfterMessages: UInt64 = UInt64.max &- (1 << 13)

    /// The highest counter accepted so far (0 before any).
    private var newest: UInt64 = 0
    private var blocks = InlineArray<128, UInt64>(repeating: 0)

    public init() {}

    public mutating func reset() {
        newest = 0
        for i in 0..<Self.blockCount { blocks[i] = 0 }
    }

    /// Returns true and records `counter` if it is new and inside the window; false if replayed, too old, or
    /// >= rejectAfterMessages.
    public mutating func check(_ counter: UInt64) -> Bool {
        guard counter < Self.rejectAfterMessages else { return false }
        let block = counter / Self.blockBits
        if counter > newest {
            // Clear the blocks the window moves into: at most the whole ring.
            let current = newest / Self.blockBits
            let steps = min(block - current, UInt64(Self.blockCount))
            var b = current
            for _ in 0..<steps {
                b += 1
                blocks[Self.slot(b)] = 0
            }
            newest = counter
        } else if newest - counter > Self.windowSize {
            return false
        }
        let slot = Self.slot(block)
        let mask: UInt64 = 1 << (counter % Self.blockBits)
        let old = blocks[slot]
        blocks[slot] = old | mask
        return old & mask == 0
    }

    @inline(__always)
    private static func slot(_ block: UInt64) -> Int {
        Int(truncatingIfNeeded: block) & (blockCount - 1)
    }
}
