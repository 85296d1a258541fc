import XCTest
@testable import Dataplane

final class VirtioNetHeaderTests: XCTestCase {
    func testLayoutIsNativeEndianTenBytes() {
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: .tcpV6, headerLength: 0x0102,
                                     gsoSize: 0x0304, checksumStart: 0x0506, checksumOffset: 0x0708)
        var bytes = [UInt8](repeating: 0xee, count: 12)
        bytes.withUnsafeMutableBytes { header.write(to: $0.baseAddress!) }
        let expected: [UInt8] = 1.littleEndian == 1
            ? [1, 4, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x08, 0x07, 0xee, 0xee]
            : [1, 4, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xee, 0xee]
        XCTAssertEqual(bytes, expected, "exactly 10 bytes written")
        XCTAssertEqual(bytes.withUnsafeBytes { VirtioNetHeader(reading: $0.baseAddress!) }, header)
        XCTAssertEqual(header.gso, .tcpV6)
        XCTAssertEqual(VirtioNetHeader.size, 10)
    }

    func testZeroHeaderAndUnknownTypes() {
        let zero = [UInt8](repeating: 0, count: 10)
        XCTAssertEqual(zero.withUnsafeBytes { VirtioNetHeader(reading: $0.baseAddress!) }, VirtioNetHeader())
        var h = VirtioNetHeader()
        for (raw, type) in [(0, VirtioNetHeader.GSOType.none), (1, .tcpV4), (3, .udp), (4, .tcpV6), (5, .udpL4)] {
            h.gsoType = UInt8(raw)
            XCTAssertEqual(h.gso, type)
        }
        for raw: UInt8 in [2, 6, 0x81, 0x84] {
            h.gsoType = raw
            XCTAssertNil(h.gso, "type \(raw)")
        }
    }
}
