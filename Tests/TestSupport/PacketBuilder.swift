// Builders for inner IP packets with correct header checksums.

public enum PacketBuilder {
    /// An IPv4 UDP packet from `src` to `dst` (host-order addresses) carrying `payload`.
    public static func ipv4UDP(src: UInt32, dst: UInt32, srcPort: UInt16 = 40000, dstPort: UInt16 = 9,
                               payload: [UInt8], tos: UInt8 = 0, ttl: UInt8 = 64, id: UInt16 = 0) -> [UInt8] {
        let total = 20 + 8 + payload.count
        var p = [UInt8](repeating: 0, count: total)
        p[0] = 0x45
        p[1] = tos
        put16(&p, 2, UInt16(total))
        put16(&p, 4, id)
        p[6] = 0x40  // DF
        p[8] = ttl
        p[9] = 17
        put32(&p, 12, src)
        put32(&p, 16, dst)
        put16(&p, 10, checksum(p[0..<20]))
        put16(&p, 20, srcPort)
        put16(&p, 22, dstPort)
        put16(&p, 24, UInt16(8 + payload.count))
        p.replaceSubrange(28..<total, with: payload)
        return p
    }

    /// An IPv6 UDP packet; addresses as (high, low) 64-bit halves.
    public static func ipv6UDP(src: (UInt64, UInt64), dst: (UInt64, UInt64), srcPort: UInt16 = 40000,
                               dstPort: UInt16 = 9, payload: [UInt8], hopLimit: UInt8 = 64) -> [UInt8] {
        let total = 40 + 8 + payload.count
        var p = [UInt8](repeating: 0, count: total)
        p[0] = 0x60
        put16(&p, 4, UInt16(8 + payload.count))
        p[6] = 17
        p[7] = hopLimit
        put64(&p, 8, src.0); put64(&p, 16, src.1)
        put64(&p, 24, dst.0); put64(&p, 32, dst.1)
        put16(&p, 40, srcPort)
        put16(&p, 42, dstPort)
        put16(&p, 44, UInt16(8 + payload.count))
        p.replaceSubrange(48..<total, with: payload)
        return p
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func put16(_ p: inout [UInt8], _ o: Int, _ v: UInt16) { p[o] = UInt8(v >> 8); p[o + 1] = UInt8(v & 0xff) }
    static func put32(_ p: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { p[o + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
    }
    static func put64(_ p: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { p[o + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) }
    }
}
