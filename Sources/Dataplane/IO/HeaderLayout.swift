// Byte offsets and flag bits of the IPv4, IPv6, TCP and UDP headers, as the offload, ECN and flow-hash code
// reads them.

enum IPv4Field {
    static let minHeader = 20
    static let tos = 1
    static let totalLength = 2
    static let id = 4
    static let flagsFragment = 6     // 16 bits: reserved, DF, MF, 13-bit offset
    static let ttl = 8
    static let proto = 9
    static let checksum = 10
    static let source = 12
    static let destination = 16
    static let dontFragment: UInt16 = 0x4000
    static let fragmentMask: UInt16 = 0x3fff   // MF + offset: any of them set means a fragment
}

enum IPv6Field {
    static let header = 40
    static let payloadLength = 4
    static let nextHeader = 6
    static let hopLimit = 7
    static let source = 8
    static let destination = 24
    static let flowLabelMask: UInt32 = 0x000f_ffff   // of the first 32-bit word
}

/// IPv6 extension headers the flow hash walks past (RFC 8200 §4), and the fragment header's fields.
enum IPv6Extension {
    static let hopByHop: UInt8 = 0
    static let routing: UInt8 = 43
    static let fragment: UInt8 = 44
    static let destinationOptions: UInt8 = 60
    /// Other extension headers and protocols numbered as such (RFC 7045): AH, mobility, HIP, shim6 and the two
    /// experimental values.
    static let authentication: UInt8 = 51, mobility: UInt8 = 135, hip: UInt8 = 139, shim6: UInt8 = 140
    static let experimental1: UInt8 = 253, experimental2: UInt8 = 254
    /// Hop-by-hop, routing and destination options: next header, then length in 8-byte units not counting the
    /// first 8.
    static let lengthField = 1
    static let fragmentHeader = 8
    static let fragmentOffsetFlags = 2   // 16 bits: 13-bit offset, 2 reserved, M
    static let fragmentMask: UInt16 = 0xfff9   // offset + M: any of them set means a real fragment
}

enum TCPField {
    static let minHeader = 20
    static let seq = 4
    static let ack = 8
    static let dataOffset = 12       // high nibble: header length in 32-bit words
    static let flags = 13
    static let window = 14
    static let checksum = 16
}

enum TCPFlag {
    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08
    static let ack: UInt8 = 0x10, urg: UInt8 = 0x20, ece: UInt8 = 0x40, cwr: UInt8 = 0x80
}

enum UDPField {
    static let header = 8
    static let length = 4
    static let checksum = 6
}

enum IPProto {
    static let tcp: UInt8 = 6
    static let udp: UInt8 = 17
    static let icmp: UInt8 = 1
    static let dccp: UInt8 = 33
    static let esp: UInt8 = 50
    static let icmpv6: UInt8 = 58
    static let sctp: UInt8 = 132
    static let udpLite: UInt8 = 136
}
