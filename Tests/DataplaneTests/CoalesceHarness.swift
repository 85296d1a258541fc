// Runs GROCoalescer.plan on byte arrays and re-segments its writes the way the kernel would.
import XCTest
@testable import Dataplane
import TestSupport

extension Offload {
    // MARK: Coalesce

    struct Write: Equatable {
        var vnet: VirtioNetHeader
        var bytes: [UInt8]
        var slices: Int
    }

    /// Runs one GROCoalescer.plan over copies of `packets`; returns each write's vnet header and its bytes.
    static func plan(_ coalescer: inout GROCoalescer, _ packets: [[UInt8]]) -> [Write] {
        let buffers = packets.map { p -> UnsafeMutableRawPointer in
            let b = UnsafeMutableRawPointer.allocate(byteCount: max(p.count, 1), alignment: 16)
            p.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let lengths = packets.map { UInt32($0.count) }
        var writes: [TunWrite] = []
        var slices: [IOSlice] = []
        buffers.withUnsafeBufferPointer { b in
            lengths.withUnsafeBufferPointer { l in
                coalescer.plan(packets: b.baseAddress!, lengths: l.baseAddress!, count: packets.count,
                               writes: &writes, slices: &slices)
            }
        }
        return writes.map { w in
            var bytes: [UInt8] = []
            for s in slices[w.sliceStart..<w.sliceStart + w.sliceCount] {
                bytes += Array(UnsafeRawBufferPointer(start: s.base, count: s.length))
            }
            return Write(vnet: w.vnet, bytes: bytes, slices: w.sliceCount)
        }
    }

    // MARK: The kernel's side of a write

    /// Re-segments a TUN write as the kernel would: a plain write is one packet as is; a GSO write is cut by
    /// gsoSize, each piece with fixed lengths, IPv4 ID and header checksum, TCP sequence number, FIN/PSH only
    /// last and CWR only first, and its L4 checksum completed from the seeded pseudo-header sum (adjusted for
    /// the piece's length), over the checksum field as written — so a wrong seed gives a wrong checksum.
    static func resegment(_ write: Write) -> [[UInt8]] {
        let v = write.vnet
        guard v.gso != VirtioNetHeader.GSOType.none else { return [write.bytes] }
        let p = InspectedPacket(write.bytes)
        let ipLen = Int(v.checksumStart)
        let headers = Int(v.headerLength)
        let field = ipLen + Int(v.checksumOffset)
        let seed = UInt16(write.bytes[field]) << 8 | UInt16(write.bytes[field + 1])
        let totalL4 = write.bytes.count - ipLen
        let payload = Array(write.bytes[headers...])
        let gso = Int(v.gsoSize)
        var out: [[UInt8]] = []
        var offset = 0
        while offset < payload.count {
            let n = min(gso, payload.count - offset)
            let index = offset / gso
            let isLast = offset + n == payload.count
            var s = Array(write.bytes[0..<headers]) + payload[offset..<offset + n]
            let l4Len = headers - ipLen + n
            if p.isV4 {
                put16(&s, 2, UInt16(s.count))
                put16(&s, 4, p.ipv4ID &+ UInt16(index))
                put16(&s, 10, 0)
                put16(&s, 10, PacketBuilder.checksum(s[0..<ipLen]))
            } else {
                put16(&s, 4, UInt16(l4Len))
            }
            if v.gso == .udpL4 {
                put16(&s, ipLen + 4, UInt16(l4Len))
            } else {
                let seq = p.tcpSeq &+ UInt32(offset)
                put16(&s, ipLen + 4, UInt16(seq >> 16)); put16(&s, ipLen + 6, UInt16(seq & 0xffff))
                if !isLast { s[ipLen + 13] &= ~(PacketBuilder.TCPFlags.fin | PacketBuilder.TCPFlags.psh) }
                if index != 0 { s[ipLen + 13] &= ~PacketBuilder.TCPFlags.cwr }
            }
            // The seed covers the whole super-packet's L4 length; swap that length for this piece's.
            let adjusted = fold(UInt32(seed) + UInt32(~UInt16(totalL4 & 0xffff)) + UInt32(~UInt16(totalL4 >> 16))
                                + UInt32(l4Len & 0xffff) + UInt32(l4Len >> 16))
            put16(&s, field, adjusted)
            var check = PacketBuilder.checksum(s[ipLen...])
            if check == 0 && v.gso == .udpL4 { check = 0xffff }
            put16(&s, field, check)
            out.append(s)
            offset += n
        }
        return out
    }
}
