// Reads back the fields of an IPv4/IPv6 TCP/UDP packet (no IPv6 extension headers) and checks its checksums
// with PacketBuilder's slow reference sum, independent of the data plane's checksum code.

public struct InspectedPacket {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var version: UInt8 { bytes[0] >> 4 }
    public var isV4: Bool { version == 4 }
    public var ipHeaderLength: Int { isV4 ? Int(bytes[0] & 0x0f) * 4 : 40 }
    public var proto: UInt8 { isV4 ? bytes[9] : bytes[6] }
    /// IPv4 total length, or 40 + IPv6 payload length.
    public var ipLength: Int { isV4 ? Int(be16(2)) : 40 + Int(be16(4)) }
    public var ipv4ID: UInt16 { be16(4) }
    public var l4HeaderLength: Int { proto == 6 ? Int(bytes[ipHeaderLength + 12] >> 4) * 4 : 8 }
    public var headerLength: Int { ipHeaderLength + l4HeaderLength }
    public var payload: ArraySlice<UInt8> { bytes[headerLength...] }

    public var tcpSeq: UInt32 { be32(ipHeaderLength + 4) }
    public var tcpAck: UInt32 { be32(ipHeaderLength + 8) }
    public var tcpFlags: UInt8 { bytes[ipHeaderLength + 13] }
    public var udpLength: Int { Int(be16(ipHeaderLength + 4)) }
    public var l4ChecksumField: UInt16 { be16(ipHeaderLength + (proto == 6 ? 16 : 6)) }

    /// True for IPv6, which has no header checksum.
    public var ipChecksumValid: Bool {
        !isV4 || PacketBuilder.checksum(bytes[0..<ipHeaderLength]) == 0
    }

    /// The TCP/UDP checksum verifies (a UDP checksum of 0, "none", does not count as valid here).
    public var l4ChecksumValid: Bool {
        if proto == 17 && l4ChecksumField == 0 { return false }
        return PacketBuilder.l4Checksum(ip: bytes, l4: bytes[ipHeaderLength...], proto: proto) == 0
    }

    public func be16(_ o: Int) -> UInt16 { UInt16(bytes[o]) << 8 | UInt16(bytes[o + 1]) }
    public func be32(_ o: Int) -> UInt32 { UInt32(be16(o)) << 16 | UInt32(be16(o + 2)) }
}
