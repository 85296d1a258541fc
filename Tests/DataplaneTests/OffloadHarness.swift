// Shared by the GSO split and GRO coalesce tests: run the split on byte arrays, build vnet headers and
// super-packets as the kernel hands them over.
import XCTest
@testable import Dataplane
import TestSupport

enum Offload {
    static let a4: UInt32 = 0x0a00_0001, b4: UInt32 = 0x0a00_0002
    static let a6: (UInt64, UInt64) = (0xfd00_0000_0000_0000, 1), b6: (UInt64, UInt64) = (0xfd00_0000_0000_0000, 2)

    // MARK: Split

    /// Runs GSOSplit.split on a copy of `packet` (first `length` bytes, default all).
    static func split(_ packet: [UInt8], _ header: VirtioNetHeader, length: Int? = nil, capacity: Int = 65536,
                      maxSegments: Int = 64, inPlace: Bool = false) -> Result<[[UInt8]], OffloadDrop> {
        var input = packet
        let slots = max(maxSegments, 1)
        let outputs = (0..<slots).map { _ in UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16) }
        defer { outputs.forEach { $0.deallocate() } }
        var lengths = [UInt32](repeating: 0, count: slots)
        return input.withUnsafeMutableBytes { bytes in
            var pointers = outputs
            if inPlace { pointers[0] = bytes.baseAddress! }
            let result = pointers.withUnsafeBufferPointer { o in
                lengths.withUnsafeMutableBufferPointer { l in
                    GSOSplit.split(header: header, packet: bytes.baseAddress!, length: length ?? packet.count,
                                   outputs: o.baseAddress!, capacity: capacity, outLengths: l.baseAddress!,
                                   maxSegments: maxSegments)
                }
            }
            return result.map { n in
                (0..<n).map { Array(UnsafeRawBufferPointer(start: pointers[$0], count: Int(lengths[$0]))) }
            }
        }
    }

    /// The vnet header the kernel gives a GSO super-packet `packet` (NEEDS_CSUM at the L4 checksum field).
    static func gsoHeader(for packet: [UInt8], gsoSize: Int) -> VirtioNetHeader {
        let p = InspectedPacket(packet)
        let type: VirtioNetHeader.GSOType = p.proto == 17 ? .udpL4 : (p.isV4 ? .tcpV4 : .tcpV6)
        return VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: type,
                               headerLength: UInt16(p.headerLength), gsoSize: UInt16(gsoSize),
                               checksumStart: UInt16(p.ipHeaderLength), checksumOffset: p.proto == 17 ? 6 : 16)
    }

    /// `packet` with its L4 checksum field replaced by the folded pseudo-header sum, as a CHECKSUM_PARTIAL
    /// packet leaves the kernel.
    static func seededPartial(_ packet: [UInt8]) -> [UInt8] {
        let p = InspectedPacket(packet)
        var out = packet
        let field = p.ipHeaderLength + (p.proto == 17 ? 6 : 16)
        out[field] = 0; out[field + 1] = 0
        let seed = ~PacketBuilder.l4Checksum(ip: out, l4: [], proto: p.proto)   // pseudo-header sum, length 0
        let l4Length = UInt32(packet.count - p.ipHeaderLength)
        let folded = fold(UInt32(seed) + (l4Length >> 16) + (l4Length & 0xffff))
        out[field] = UInt8(folded >> 8); out[field + 1] = UInt8(folded & 0xff)
        return out
    }

    static func fold(_ v: UInt32) -> UInt16 {
        var s = v
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return UInt16(s)
    }

    static func put16(_ p: inout [UInt8], _ o: Int, _ v: UInt16) { p[o] = UInt8(v >> 8); p[o + 1] = UInt8(v & 0xff) }

    static func randomBytes(_ n: Int, _ rng: inout SeededRandom) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}
