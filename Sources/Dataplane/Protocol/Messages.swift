// WireGuard wire formats and protocol limits, all in one place (see shared/reference/wireguard.md).

/// Message types: a u8 followed by three zero bytes, read as a little-endian u32.
public enum MessageType: UInt32, Sendable {
    case initiation = 1
    case response = 2
    case cookieReply = 3
    case transport = 4
}

/// Sizes and offsets of the four messages.
public enum MessageLayout {
    public static let initiationSize = 148
    public static let responseSize = 92
    public static let cookieReplySize = 64
    /// type | receiver index | little-endian 64-bit counter
    public static let transportHeaderSize = 16
    public static let tagSize = 16
    /// A keepalive: header and the tag of an empty payload.
    public static let transportMinimumSize = transportHeaderSize + tagSize
    public static let macSize = 16
    public static let keySize = 32
    public static let timestampSize = 12
    public static let cookieNonceSize = 24
    /// Offsets of mac1 and mac2 in a handshake message of the given size.
    public static func mac1Offset(messageSize: Int) -> Int { messageSize - 2 * macSize }
    public static func mac2Offset(messageSize: Int) -> Int { messageSize - macSize }
    /// Inner packets are padded to a multiple of this.
    public static let paddingMultiple = 16
    /// The largest transport message a tunnel of this MTU sends: header, a full-MTU inner packet after padding,
    /// and the tag.
    public static func maxTransportSize(mtu: Int) -> Int {
        transportHeaderSize + (mtu + paddingMultiple - 1) / paddingMultiple * paddingMultiple + tagSize
    }
}

/// Protocol limits, named as in the WireGuard paper. Times are in nanoseconds.
public enum ProtocolLimits {
    public static let second: UInt64 = 1_000_000_000
    public static let millisecond: UInt64 = 1_000_000
    public static let rekeyAfterMessages: UInt64 = 1 << 60
    /// 2^64 − 2^13 − 1: no packet is sent or accepted with a counter at or above this.
    public static let rejectAfterMessages: UInt64 = UInt64.max - (1 << 13)
    public static let rekeyAfterTime: UInt64 = 120 * second
    public static let rejectAfterTime: UInt64 = 180 * second
    public static let rekeyAttemptTime: UInt64 = 90 * second
    public static let rekeyTimeout: UInt64 = 5 * second
    /// Up to this much random jitter is added to handshake retransmissions.
    public static let rekeyTimeoutJitterMax: UInt64 = 333 * millisecond
    public static let keepaliveTimeout: UInt64 = 10 * second
    public static let cookieRefreshTime: UInt64 = 120 * second
    /// An initiator whose mac2 cookie is older than this stops using it (kernel: 120 s minus a margin).
    public static let cookieValidity: UInt64 = 120 * second - 5 * second
    /// Initiations consumed per peer at most every 1/50 s.
    public static let handshakeInitiationRate: UInt64 = second / 50
    public static let maxTimerHandshakes = Int(rekeyAttemptTime / rekeyTimeout)   // 18
    public static let maxStagedPackets = 128
    /// Handshake messages waiting for the control thread; at 1/8 of this the device is under load.
    public static let maxQueuedHandshakes = 4096
    public static let underLoadQueueLength = maxQueuedHandshakes / 8
    public static let underLoadAfterTime: UInt64 = 1 * second
    /// Keys are erased this long after the last session was derived.
    public static let zeroKeysAfter: UInt64 = rejectAfterTime * 3
}

/// Noise protocol constants.
public enum NoiseConstants {
    public static let construction = Array("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".utf8)
    public static let identifier = Array("WireGuard v1 zx2c4 Jason@zx2c4.com".utf8)
    public static let labelMac1 = Array("mac1----".utf8)
    public static let labelCookie = Array("cookie--".utf8)
}

/// Little-endian and big-endian loads and stores on raw memory (unaligned).
@inline(__always) func loadLE32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}
@inline(__always) func loadLE64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}
@inline(__always) func storeLE32(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt32) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self)
}
@inline(__always) func storeLE64(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt64) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt64.self)
}
@inline(__always) func loadBE16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}
@inline(__always) func loadBE32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}
@inline(__always) func loadBE64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}
@inline(__always) func storeBE16(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt16) {
    p.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt16.self)
}
@inline(__always) func storeBE32(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt32) {
    p.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt32.self)
}

extension Array where Element == UInt8 {
    @inline(__always) func le32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
    mutating func putLE32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
}
