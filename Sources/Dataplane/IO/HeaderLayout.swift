// Byte offsets and flag bits of the IPv4, IPv6, TCP and UDP headers, as the offload code reads them.

enum IPv4Field {
    static let minHeader = 20
    static let tos = 1
    static let totalLength = 2
    static let id = 4
    static let flagsFragment = 6     // 16 bits: reserved, DF, MF, 13-bit offset
    static let ttl = 8
    static let proto = 9
    static let checksum = 10
    static let dontFragment: UInt16 = 0x4000
    static let fragmentMask: UInt16 = 0x3fff   // MF + offset: any of them set means a fragment
}

enum IPv6Field {
    static let header = 40
    static let payloadLength = 4
    static let nextHeader = 6
    static let hopLimit = 7
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
}
