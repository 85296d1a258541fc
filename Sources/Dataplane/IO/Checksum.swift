// The Internet checksum (RFC 1071): ones'-complement sums of big-endian 16-bit words.
//
// Sums here are "folded, not complemented" 16-bit values in the big-endian domain, so they can be added
// together (fold(UInt64(a) + UInt64(b))) as long as every piece starts at an even offset of the summed whole.
// A checksum field holds the complement of the folded sum; a region whose checksum is right sums to 0xffff.
//
// The bulk sum (CShims/csum.c) adds the buffer as native-order 32-bit words in several 64-bit accumulators and
// swaps the folded result at the end: the ones'-complement sum is independent of byte order up to that final
// swap (RFC 1071 §2(B)).

import CShims

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

    /// The folded sum of `count` bytes at `p`, as big-endian 16-bit words (an odd last byte is padded with zero).
    /// Vector code in CShims/csum.c.
    @inline(__always)
    public static func sum(_ p: UnsafeRawPointer, _ count: Int) -> UInt16 { vf_csum(p, count) }

    /// Copies `count` bytes from `source` to `destination` (which must not overlap) and returns their folded sum,
    /// reading the bytes once.
    @inline(__always)
    public static func copySum(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer,
                               _ count: Int) -> UInt16 {
        vf_copy_csum(destination, source, count)
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
