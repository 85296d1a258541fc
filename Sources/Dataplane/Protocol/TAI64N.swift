// TAI64N timestamps, as carried (encrypted) in handshake initiations.
//
// 12 bytes: be64(2^62 + 10 + unix seconds) || be32(nanoseconds). When a timestamp is made, the low 24 bits of
// the nanoseconds are cleared: 2^24 ns (about 16.8 ms) is the largest power of two below the 20 ms between the
// 50 initiations per second a peer may send. The timestamp then hides the fine clock of its sender and cannot
// increase more often than that. A responder accepts an initiation only if its timestamp is greater than the
// last one it accepted from the same peer.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct TAI64N: Comparable, Hashable, Sendable {
    public static let size = 12

    /// The TAI64 label of the Unix epoch: 2^62 + 10 (TAI was 10 s ahead of UTC in 1970).
    public static let epochLabel: UInt64 = 0x4000_0000_0000_000a

    /// The first 8 bytes as an integer (TAI64 label).
    public let label: UInt64
    /// The last 4 bytes as an integer.
    public let nanoseconds: UInt32

    /// A timestamp for Unix time `seconds` + `nanoseconds`, with the low 24 bits of the nanoseconds cleared.
    public init(seconds: UInt64, nanoseconds: UInt32) {
        self.label = Self.epochLabel &+ seconds
        self.nanoseconds = nanoseconds & ~0x00ff_ffff
    }

    /// Takes the 12 bytes as they are (no rounding). Nil unless there are exactly 12.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self = bytes.withUnsafeBytes { TAI64N(reading: $0.baseAddress!) }
    }

    /// Reads 12 bytes as they are (no rounding).
    public init(reading p: UnsafeRawPointer) {
        label = UInt64(bigEndian: p.loadUnaligned(as: UInt64.self))
        nanoseconds = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }

    /// Writes the 12 bytes.
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: label.bigEndian, as: UInt64.self)
        p.storeBytes(of: nanoseconds.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.size) { buffer, count in
            write(to: UnsafeMutableRawPointer(buffer.baseAddress!))
            count = Self.size
        }
    }

    /// The current wall-clock time (CLOCK_REALTIME).
    public static func now() -> TAI64N {
        var ts = timespec()
        let rc = clock_gettime(CLOCK_REALTIME, &ts)
        precondition(rc == 0, "clock_gettime(CLOCK_REALTIME) failed")
        return TAI64N(seconds: UInt64(max(ts.tv_sec, 0)), nanoseconds: UInt32(ts.tv_nsec))
    }

    /// Byte order of the 12 big-endian bytes.
    public static func < (a: TAI64N, b: TAI64N) -> Bool {
        (a.label, a.nanoseconds) < (b.label, b.nanoseconds)
    }
}
