// Builders for inner IP packets with correct header and L4 checksums. Addresses are host-order integers:
// IPv4 as UInt32, IPv6 as (high, low) 64-bit halves.

public enum PacketBuilder {
    /// TCP flag bits.
    public enum TCPFlags {
        public static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08
        public static let ack: UInt8 = 0x10, urg: UInt8 = 0x20, ece: UInt8 = 0x40, cwr: UInt8 = 0x80
    }

    /// The TCP header fields after the ports. `options` is padded with zeros (end of options) to 4 bytes.
    public struct TCP: Sendable {
        public var srcPort: UInt16
        public var dstPort: UInt16
        public var seq: UInt32
        public var ack: UInt32
        public var flags: UInt8
        public var window: UInt16
        public var options: [UInt8]

        public init(srcPort: UInt16 = 40000, dstPort: UInt16 = 443, seq: UInt32 = 1, ack: UInt32 = 1,
                    flags: UInt8 = TCPFlags.ack, window: UInt16 = 502, options: [UInt8] = []) {
            self.srcPort = srcPort; self.dstPort = dstPort; self.seq = seq; self.ack = ack
            self.flags = flags; self.window = window; self.options = options
        }
    }

    // MARK: UDP

    /// An IPv4 UDP packet from `src` to `dst` carrying `payload`, with a valid UDP checksum.
    public static func ipv4UDP(src: UInt32, dst: UInt32, srcPort: UInt16 = 40000, dstPort: UInt16 = 9,
                               payload: [UInt8], tos: UInt8 = 0, ttl: UInt8 = 64, id: UInt16 = 0,
                               dontFragment: Bool = true) -> [UInt8] {
        ipv4(src: src, dst: dst, proto: 17, l4: udp(srcPort, dstPort, payload), tos: tos, ttl: ttl, id: id,
             dontFragment: dontFragment, options: [])
    }

    /// An IPv6 UDP packet with a valid UDP checksum.
    public static func ipv6UDP(src: (UInt64, UInt64), dst: (UInt64, UInt64), srcPort: UInt16 = 40000,
                               dstPort: UInt16 = 9, payload: [UInt8], trafficClass: UInt8 = 0,
                               hopLimit: UInt8 = 64) -> [UInt8] {
        ipv6(src: src, dst: dst, proto: 17, l4: udp(srcPort, dstPort, payload), trafficClass: trafficClass,
             hopLimit: hopLimit)
    }

    // MARK: TCP

    /// An IPv4 TCP packet with valid header and TCP checksums; `ipOptions` padded to 4 bytes.
    public static func ipv4TCP(src: UInt32, dst: UInt32, tcp: TCP = TCP(), payload: [UInt8], tos: UInt8 = 0,
                               ttl: UInt8 = 64, id: UInt16 = 0, dontFragment: Bool = true,
                               ipOptions: [UInt8] = []) -> [UInt8] {
        ipv4(src: src, dst: dst, proto: 6, l4: tcpSegment(tcp, payload), tos: tos, ttl: ttl, id: id,
             dontFragment: dontFragment, options: ipOptions)
    }

    /// An IPv6 TCP packet with a valid TCP checksum.
    public static func ipv6TCP(src: (UInt64, UInt64), dst: (UInt64, UInt64), tcp: TCP = TCP(), payload: [UInt8],
                               trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, hopLimit: UInt8 = 64) -> [UInt8] {
        ipv6(src: src, dst: dst, proto: 6, l4: tcpSegment(tcp, payload), trafficClass: trafficClass,
             flowLabel: flowLabel, hopLimit: hopLimit)
    }

    // MARK: Checksums

    /// The Internet checksum of `bytes` (complement of the ones'-complement sum of big-endian words),
    /// computed the slow, obvious way.
    public static func checksum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        var sum = initial
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// The TCP/UDP checksum of the L4 bytes `l4` (checksum field included as it is) under the pseudo-header
    /// of the IP packet `ip`.
    public static func l4Checksum(ip: [UInt8], l4: ArraySlice<UInt8>, proto: UInt8) -> UInt16 {
        let pseudo: [UInt8]
        if ip[0] >> 4 == 4 {
            pseudo = Array(ip[12..<20]) + [0, proto] + be16(UInt16(l4.count))
        } else {
            pseudo = Array(ip[8..<40]) + be32(UInt32(l4.count)) + [0, 0, 0, proto]
        }
        return checksum((pseudo + Array(l4))[...])
    }

    // MARK: Assembly

    private static func udp(_ srcPort: UInt16, _ dstPort: UInt16, _ payload: [UInt8]) -> [UInt8] {
        be16(srcPort) + be16(dstPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    private static func tcpSegment(_ t: TCP, _ payload: [UInt8]) -> [UInt8] {
        var options = t.options
        while options.count % 4 != 0 { options.append(0) }
        precondition(options.count <= 40, "TCP options are at most 40 bytes")
        let dataOffset = UInt8((20 + options.count) / 4) << 4
        return be16(t.srcPort) + be16(t.dstPort) + be32(t.seq) + be32(t.ack) + [dataOffset, t.flags]
            + be16(t.window) + [0, 0, 0, 0] + options + payload
    }

    /// Prepends an IPv4 header to `l4` and fills in both checksums.
    private static func ipv4(src: UInt32, dst: UInt32, proto: UInt8, l4: [UInt8], tos: UInt8, ttl: UInt8,
                             id: UInt16, dontFragment: Bool, options: [UInt8]) -> [UInt8] {
        var options = options
        while options.count % 4 != 0 { options.append(0) }
        precondition(options.count <= 40, "IPv4 options are at most 40 bytes")
        let headerLength = 20 + options.count
        var p = [0x40 | UInt8(headerLength / 4), tos] + be16(UInt16(headerLength + l4.count)) + be16(id)
            + [dontFragment ? 0x40 : 0, 0, ttl, proto, 0, 0] + be32(src) + be32(dst) + options
        p.replaceSubrange(10..<12, with: be16(checksum(p[0..<headerLength])))
        return withL4Checksum(p + l4, l4Offset: headerLength, proto: proto)
    }

    /// Prepends an IPv6 header to `l4` and fills in the L4 checksum.
    private static func ipv6(src: (UInt64, UInt64), dst: (UInt64, UInt64), proto: UInt8, l4: [UInt8],
                             trafficClass: UInt8, flowLabel: UInt32 = 0, hopLimit: UInt8) -> [UInt8] {
        let first = 6 << 28 | UInt32(trafficClass) << 20 | flowLabel & 0xf_ffff
        let p = be32(first) + be16(UInt16(l4.count)) + [proto, hopLimit]
            + be64(src.0) + be64(src.1) + be64(dst.0) + be64(dst.1)
        return withL4Checksum(p + l4, l4Offset: 40, proto: proto)
    }

    private static func withL4Checksum(_ packet: [UInt8], l4Offset: Int, proto: UInt8) -> [UInt8] {
        var p = packet
        let field = l4Offset + (proto == 6 ? 16 : 6)
        var sum = l4Checksum(ip: p, l4: p[l4Offset...], proto: proto)
        if sum == 0 && proto == 17 { sum = 0xffff }
        p.replaceSubrange(field..<field + 2, with: be16(sum))
        return p
    }

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    public static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    public static func be64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
}
