// The Internet checksum (RFC 1071): ones'-complement sums of big-endian 16-bit words.
//
// Sums here are "folded, not complemented" 16-bit values in the big-endian domain, so they can be added
// together (fold(UInt64(a) + UInt64(b))) as long as every piece starts at an even offset of the summed whole.
// A checksum field holds the complement of the folded sum; a region whose checksum is right sums to 0xffff.
//
// The bulk sum adds the buffer as native-order 64-bit words with end-around carry and swaps the folded result
// at the end: the ones'-complement sum is independent of byte order up to that final swap (RFC 1071 §2(B)).

public enum InternetChecksum {
    /// Folds a wide ones'-complement accumulator to 16 bits.
    @inline(__always)
    public static func fold(_ value: UInt64) -> UInt16 {
        var s = (value & 0xffff_ffff) &+ (value >> 32)   // ≤ 33 bits
        s = (s & 0xffff_ffff) &+ (s >> 32)               // ≤ 32 bits
        s = (s & 0xffff) &+ (s >> 16)                    // ≤ 17 bits
        s = (s & 0xffff) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    @inline(__always)
    static func addCarrying(_ acc: inout UInt64, _ x: UInt64) {
        let (s, overflow) = acc.addingReportingOverflow(x)
        acc = s &+ (overflow ? 1 : 0)   // cannot overflow again: s < x when overflow is set
    }

    /// The folded sum of `count` bytes at `p`, as big-endian 16-bit words (an odd last byte is padded with zero).
    public static func sum(_ p: UnsafeRawPointer, _ count: Int) -> UInt16 {
        var acc: UInt64 = 0
        var i = 0
        while i + 32 <= count {
            addCarrying(&acc, p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            addCarrying(&acc, p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
            addCarrying(&acc, p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
            addCarrying(&acc, p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
            i += 32
        }
        while i + 8 <= count {
            addCarrying(&acc, p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i + 4 <= count {
            addCarrying(&acc, UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
        }
        if i + 2 <= count {
            addCarrying(&acc, UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self)))
            i += 2
        }
        if i < count {
            // The byte is the high half of a big-endian word: where that lands in a native word.
            let byte = UInt16(p.load(fromByteOffset: i, as: UInt8.self))
            addCarrying(&acc, UInt64(UInt16(littleEndian: byte)))
        }
        return UInt16(bigEndian: fold(acc))
    }

    /// Adds folded sums.
    @inline(__always)
    public static func combine(_ a: UInt16, _ b: UInt16) -> UInt16 { fold(UInt64(a) &+ UInt64(b)) }

    @inline(__always)
    public static func combine(_ a: UInt16, _ b: UInt16, _ c: UInt16) -> UInt16 {
        fold(UInt64(a) &+ UInt64(b) &+ UInt64(c))
    }

    /// The folded IPv4 pseudo-header sum (addresses from the IPv4 header at `ip`, protocol, L4 length).
    @inline(__always)
    public static func pseudoHeaderV4(_ ip: UnsafeRawPointer, protocol proto: UInt8, length: Int) -> UInt16 {
        fold(UInt64(sum(ip + 12, 8)) &+ UInt64(proto) &+ UInt64(length))
    }

    /// The folded IPv6 pseudo-header sum (addresses from the IPv6 header at `ip`, next header, L4 length).
    @inline(__always)
    public static func pseudoHeaderV6(_ ip: UnsafeRawPointer, protocol proto: UInt8, length: Int) -> UInt16 {
        fold(UInt64(sum(ip + 8, 32)) &+ UInt64(proto) &+ UInt64(length >> 16) &+ UInt64(length & 0xffff))
    }

    /// The value for a checksum field: the complement of the folded sum.
    @inline(__always)
    public static func finish(_ folded: UInt16) -> UInt16 { ~folded }

    /// RFC 1624 eqn. 3: the checksum after a 16-bit word it covers changes from `old` to `new`.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new))
    }

    /// RFC 1624 for a 32-bit field (two words at an even offset), e.g. a TCP sequence number or an IPv4 address.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~UInt16(truncatingIfNeeded: old >> 16))
              &+ UInt64(~UInt16(truncatingIfNeeded: old)) &+ UInt64(new >> 16) &+ UInt64(new & 0xffff))
    }
}
